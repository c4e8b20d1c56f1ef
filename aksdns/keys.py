"""Every Redis key aksdns writes, in one place.

RQ keeps its own keys under ``rq:`` (the queue of cluster C is the list ``rq:queue:aksdns:C``, which
the chart's KEDA trigger reads); everything else aksdns stores is named here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

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


def ran_key(job_id: str) -> str:
    """A job id a worker started: the same signed job put back in the queue is not run twice."""
    return f"{PREFIX}:ran:{job_id}"


def request_signature_key(signature: str) -> str:
    """A Slack request signature seen in HTTP mode: the same signed bytes again are a replay."""
    return f"{PREFIX}:slacksig:{signature}"


def outbox_key(cluster: str) -> str:
    """A cluster's thread messages Slack did not take yet: a sorted set of job ids by next attempt;
    each job's messages under ``<key>:<job id>:ops`` and its thread and status under ``<key>:<job id>``."""
    return f"{PREFIX}:outbox:{cluster}"


def rerun_basis_key(cluster: str, channel: str, thread_ts: str, identity: str) -> str:
    """What the last run of a command (``rerun_identity``) in a thread left for the next run to compare against."""
    return f"{PREFIX}:last:{cluster}:{channel}:{thread_ts}:{identity}"


def rerun_identity(command: Mapping[str, Any]) -> str:
    """A command (``Command.to_dict()``) as "the same command": its verb and arguments, not its cluster."""
    args = {k: v for k, v in dict(command.get("args") or {}).items() if k != "cluster"}
    text = json.dumps({"verb": command.get("verb"), "args": args}, sort_keys=True, separators=(",", ":"), default=str)
    return f"{command.get('verb')}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def watch_key(watch_id: str) -> str:
    """One `watch`'s state: where it answers, until when, its runs, its last basis, who stopped it."""
    return f"{PREFIX}:watch:{watch_id}"


WORKERS_ZSET = f"{PREFIX}:workers"  # worker name → its last heartbeat (epoch seconds)


def worker_key(name: str) -> str:
    """A worker's heartbeat: its cluster, version, host, current job; expires when it stops beating."""
    return f"{PREFIX}:worker:{name}"


def channel_cluster_key(channel: str) -> str:
    """The cluster a channel's commands go to without --cluster (`use`)."""
    return f"{PREFIX}:use:{channel}"


def rate_key(scope: str, who: str) -> str:
    """Recent commands of a user or a channel (a sorted set of times) for the rate limits."""
    return f"{PREFIX}:rate:{scope}:{who}"


def channel_threads_key(channel: str) -> str:
    """A channel's threads with recorded jobs, scored by their last job's end (`/aksdns handoff` outside a thread)."""
    return f"{PREFIX}:threads:{channel}"


def capture_stop_key(job_id: str) -> str:
    """Set by the bot when someone presses a capture's Stop button; the worker ends that capture."""
    return f"{PREFIX}:capture:stop:{job_id}"
