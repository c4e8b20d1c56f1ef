"""The results store: what every job in a thread gave, the Re-run bases, and the audit stream.

One module, used by both sides: the worker records each job's outcome in its thread's history
and keeps a command's Re-run basis; the bot appends every command, button and authorization
decision to the audit stream. Everything lives in Redis under the names of ``aksdns.keys``, with
retention (a thread's history 14 days by default, the audit stream 90), so that `handoff` and
`audit` can read an incident back without cluster access.

Storing is best effort and never fails a job or an answer: a Redis error is logged and the caller
goes on (the job's result is still posted).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from aksdns.keys import AUDIT_STREAM, channel_threads_key, rerun_basis_key, rerun_identity, thread_history_key

log = logging.getLogger(__name__)

DAY_S = 24 * 3600
HISTORY_RETENTION_S = 14 * DAY_S
AUDIT_RETENTION_S = 90 * DAY_S
MAX_OUTCOMES_PER_THREAD = 500  # an incident thread with more jobs than this keeps the newest
MAX_BASIS_BYTES = 2 * 1024 * 1024
MAX_FINDINGS_KEPT = 5
MAX_LINES_KEPT = 3  # evidence lines and actions per finding kept in the history


@dataclass(frozen=True)
class Outcome:
    """One job's outcome in its thread: the incident record's line."""

    job_id: str
    verb: str
    command: dict[str, Any]  # Command.to_dict(): what ran, to run it again
    text: str  # the one-line description the parent message showed
    cluster: str
    user: str
    channel: str
    thread_ts: str
    started_at: float
    finished_at: float
    status: str  # a report's status (ok, warn, fail, info), "error" (a clear refusal) or "failed"
    summary: str
    findings: tuple[dict[str, Any], ...] = ()  # the top findings (workers.findings.Finding.to_dict, trimmed)
    attachments: tuple[str, ...] = ()  # file names posted in the thread
    figures: dict[str, float] = field(default_factory=dict)  # numbers a Re-run compares
    changes: tuple[str, ...] = ()  # what changed since the previous run of this command here, one line each
    ruled_out: tuple[dict[str, str], ...] = ()  # {hypothesis, evidence} this run's evidence speaks against
    requested_as: str = ""  # "", "rerun" (button or `again`), "watch" (a run of a watch), ...

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["findings"] = tuple(data.get("findings", ()))
        known["attachments"] = tuple(data.get("attachments", ()))
        known["changes"] = tuple(str(c) for c in data.get("changes", ()))
        known["ruled_out"] = tuple(dict(r) for r in data.get("ruled_out", ()) if isinstance(r, dict))
        return cls(**known)


def trim_finding(finding: dict[str, Any]) -> dict[str, Any]:
    """What the history keeps of a finding: enough to retell it, not every evidence line."""
    keep = dict(finding)
    for key in ("evidence", "actions"):
        keep[key] = list(keep.get(key, ()))[:MAX_LINES_KEPT]
    return keep


class ResultsStore:
    """A thread's history and Re-run bases in Redis."""

    def __init__(self, connection: redis.Redis, *, retention_s: float = HISTORY_RETENTION_S) -> None:
        self.connection = connection
        self.retention_s = int(retention_s)

    def record(self, outcome: Outcome, *, basis: dict[str, Any] | None = None) -> bool:
        """Append a job's outcome to its thread's history; keep its Re-run basis when it has one.

        False when Redis did not take it (the caller may wait for Redis and try again).
        """
        key = thread_history_key(outcome.channel, outcome.thread_ts)
        try:
            pipe = self.connection.pipeline(transaction=False)
            pipe.rpush(key, outcome.to_json())
            pipe.ltrim(key, -MAX_OUTCOMES_PER_THREAD, -1)
            pipe.expire(key, self.retention_s)
            threads = channel_threads_key(outcome.channel)
            pipe.zadd(threads, {outcome.thread_ts: outcome.finished_at})
            pipe.zremrangebyscore(threads, 0, outcome.finished_at - self.retention_s)
            pipe.expire(threads, self.retention_s)
            raw = json.dumps(basis, default=str) if basis is not None else None
            if raw is not None and len(raw) <= MAX_BASIS_BYTES:
                identity = rerun_identity(outcome.command)
                pipe.set(
                    rerun_basis_key(outcome.cluster, outcome.channel, outcome.thread_ts, identity),
                    raw,
                    ex=self.retention_s,
                )
            pipe.execute()
            return True
        except (redis.RedisError, TypeError, ValueError) as exc:
            log.warning("could not record the job in its thread's history",
                        extra={"job": outcome.job_id, "error": type(exc).__name__})
            return False

    def history(self, channel: str, thread_ts: str) -> list[Outcome]:
        """Every recorded outcome of a thread, oldest first (unreadable entries are skipped)."""
        raw = self.connection.lrange(thread_history_key(channel, thread_ts), 0, -1)
        out = []
        for item in raw:
            try:
                out.append(Outcome.from_dict(json.loads(item)))
            except (ValueError, TypeError):
                log.warning("skipped an unreadable history entry", extra={"thread": thread_ts})
        return out

    def incident_history(self, channel: str, thread_ts: str) -> list[Outcome]:
        """This thread's history; for a thread without any (a new `/aksdns handoff` message), the
        history of the channel's most recently active thread."""
        own = self.history(channel, thread_ts)
        if own:
            return own
        try:
            latest = self.connection.zrevrange(channel_threads_key(channel), 0, 1)
        except redis.RedisError:
            return []
        for ts in (_text(t) for t in latest):
            if ts != thread_ts:
                return self.history(channel, ts)
        return []

    def previous_basis(
        self, cluster: str, channel: str, thread_ts: str, command: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The Re-run basis the last run of this command (``Command.to_dict()``) in this thread left.

        None: its first run here, or gone. "This command" is the verb with the same arguments: a
        `dig` of another name is another command, with nothing to compare.
        """
        try:
            raw = self.connection.get(rerun_basis_key(cluster, channel, thread_ts, rerun_identity(command)))
            loaded = json.loads(raw) if raw else None
        except (redis.RedisError, ValueError):
            return None
        return loaded if isinstance(loaded, dict) else None


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit stream."""

    kind: str  # "command" | "button" | "refused" (usage error, forged data) | ...
    user: str
    channel: str
    verb: str
    allowed: bool
    reason: str  # the authorization decision's reason, or why it was refused
    text: str = ""  # the command's safe description (never the raw text a user typed)
    cluster: str = ""
    at: float = field(default_factory=time.time)

    def fields(self) -> dict[str, str]:
        return {k: str(int(v) if isinstance(v, bool) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_fields(cls, data: dict[str, str]) -> AuditEvent:
        return cls(
            kind=data.get("kind", ""),
            user=data.get("user", ""),
            channel=data.get("channel", ""),
            verb=data.get("verb", ""),
            allowed=data.get("allowed") == "1",
            reason=data.get("reason", ""),
            text=data.get("text", ""),
            cluster=data.get("cluster", ""),
            at=float(data.get("at", "0") or 0),
        )


class AuditLog:
    """Append-only Redis stream of commands, buttons and authorization decisions, with retention."""

    def __init__(self, connection: redis.Redis, *, retention_s: float = AUDIT_RETENTION_S) -> None:
        self.connection = connection
        self.retention_s = retention_s

    def append(self, event: AuditEvent) -> None:
        """Add an event; entries older than the retention are trimmed on the way (MINID)."""
        oldest_ms = int((event.at - self.retention_s) * 1000)
        try:
            # Exact trimming: entries leave one by one as they age, so it stays cheap.
            self.connection.xadd(AUDIT_STREAM, event.fields(), minid=oldest_ms, approximate=False)  # type: ignore[arg-type]
        except redis.RedisError as exc:
            log.warning("could not append to the audit stream", extra={"error": type(exc).__name__})

    def read(self, *, since: float = 0.0, user: str | None = None, limit: int = 200) -> list[AuditEvent]:
        """Events at or after ``since`` (epoch seconds), of one user or all, oldest first."""
        out: list[AuditEvent] = []
        start = f"{int(since * 1000)}-0"
        while len(out) < limit:
            batch = self.connection.xrange(AUDIT_STREAM, min=start, max="+", count=500)
            if not batch:
                break
            for _entry_id, raw in batch:
                data = {_text(k): _text(v) for k, v in (raw or {}).items()}
                event = AuditEvent.from_fields(data)
                # Entry ids are append times: the range is a superset, ``at`` decides.
                if event.at >= since and (user is None or event.user == user):
                    out.append(event)
            last = _text(batch[-1][0])
            ms, _, seq = last.partition("-")
            start = f"{ms}-{int(seq or 0) + 1}"
        return out[:limit]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
