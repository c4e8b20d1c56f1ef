"""Every Redis key aksdns writes, in one place.

RQ keeps its own keys under ``rq:`` (the queue of cluster C is the list ``rq:queue:aksdns:C``, which
the chart's KEDA trigger reads); everything else aksdns stores is named here.
"""

from __future__ import annotations

import hashlib

from aksdns.commands import Command

PREFIX = "aksdns"
AUDIT_STREAM = f"{PREFIX}:audit"  # append-only: commands, buttons, authorization decisions


def queue_name(cluster: str) -> str:
    """One RQ queue per cluster, so a worker only takes its own cluster's jobs."""
    return f"{PREFIX}:{cluster}"


def dedup_key(cluster: str, channel: str, thread_ts: str | None, command: Command) -> str:
    """"This command in this thread": a second one while the first is queued or runs is a duplicate."""
    digest = hashlib.sha256(command.canonical().encode()).hexdigest()[:24]
    return f"{PREFIX}:dedup:{cluster}:{channel}:{thread_ts or '-'}:{digest}"


def event_key(event_id: str) -> str:
    """A Slack event already handled (Slack retries events it thinks were missed)."""
    return f"{PREFIX}:event:{event_id}"


def thread_history_key(channel: str, thread_ts: str) -> str:
    """Every job's outcome in one thread, oldest first (the incident record)."""
    return f"{PREFIX}:thread:{channel}:{thread_ts}"


def rerun_basis_key(cluster: str, channel: str, thread_ts: str, verb: str) -> str:
    """What the last run of a command in a thread left for the next Re-run to compare against."""
    return f"{PREFIX}:last:{cluster}:{channel}:{thread_ts}:{verb}"


def capture_stop_key(job_id: str) -> str:
    """Set by the bot when someone presses a capture's Stop button; the worker ends that capture."""
    return f"{PREFIX}:capture:stop:{job_id}"
