"""`watch`: the state of each watch in Redis, shared by the worker (runs) and the bot (Stop).

A watch is a chain of jobs: each run of the watched command schedules the next one with RQ's
scheduler (``Queue.enqueue_in``), so a watch lives in Redis, not in a worker's memory, and survives
a worker restart. Its state (``aksdns.keys.watch_key``) holds where it answers, until when, how
many runs, the Re-run basis of its last run (what the next run is compared with), and whether
someone pressed Stop. The bot's Stop sets ``stopped_by`` and takes the next run off the schedule;
a run that starts anyway sees it and ends the chain.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from aksdns.jobspec import JobSpec
from aksdns.keys import watch_key

log = logging.getLogger(__name__)
KEEP_AFTER_END_S = 24 * 3600  # a finished watch's state stays a day (its Stop button answers "already over")
RUN_ID_MARK = "-w"  # the job id of run n of watch W is "W-w<n>"


def run_job_id(watch_id: str, run: int) -> str:
    return f"{watch_id}{RUN_ID_MARK}{run}"


def watch_id_of(job_id: str) -> str:
    """The watch a run's job id belongs to (the first run's job id is the watch's id)."""
    return job_id.split(RUN_ID_MARK, 1)[0]


@dataclass(frozen=True)
class Watch:
    """One watch, as stored."""

    id: str
    channel: str
    thread_ts: str
    status_ts: str
    cluster: str
    user: str
    target: str  # the watched command's words
    every_s: int
    until: float  # epoch seconds: no run starts after this
    runs: int = 0
    changes: int = 0  # runs that found something changed
    stopped_by: str = ""
    next_job: str = ""
    basis: dict[str, Any] | None = None

    @property
    def stopped(self) -> bool:
        return bool(self.stopped_by)

    @property
    def total_runs(self) -> int:
        """Runs a watch of this length makes (the first at once, then every ``every_s``)."""
        return max(1, int((self.until - self.started_at) // self.every_s) + 1)

    length_s: int = 0  # --for

    @property
    def started_at(self) -> float:
        return self.until - self.length_s

    def to_fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "channel": self.channel,
            "thread_ts": self.thread_ts,
            "status_ts": self.status_ts,
            "cluster": self.cluster,
            "user": self.user,
            "target": self.target,
            "every_s": str(self.every_s),
            "until": repr(self.until),
            "length_s": str(self.length_s),
            "runs": str(self.runs),
            "changes": str(self.changes),
            "stopped_by": self.stopped_by,
            "next_job": self.next_job,
            "basis": json.dumps(self.basis) if self.basis is not None else "",
        }

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> Watch:
        d = {_text(k): _text(v) for k, v in raw.items()}
        basis = json.loads(d["basis"]) if d.get("basis") else None
        return cls(
            id=d["id"],
            channel=d.get("channel", ""),
            thread_ts=d.get("thread_ts", ""),
            status_ts=d.get("status_ts", ""),
            cluster=d.get("cluster", ""),
            user=d.get("user", ""),
            target=d.get("target", ""),
            every_s=int(d.get("every_s", "300")),
            until=float(d.get("until", "0")),
            runs=int(d.get("runs", "0")),
            changes=int(d.get("changes", "0")),
            stopped_by=d.get("stopped_by", ""),
            next_job=d.get("next_job", ""),
            basis=basis if isinstance(basis, dict) else None,
            length_s=int(d.get("length_s", "0")),
        )


def new_watch(
    watch_id: str,
    *,
    channel: str,
    thread_ts: str,
    status_ts: str,
    cluster: str,
    user: str,
    target: str,
    every_s: int,
    for_s: int,
    now: float,
) -> Watch:
    return Watch(
        id=watch_id,
        channel=channel,
        thread_ts=thread_ts,
        status_ts=status_ts,
        cluster=cluster,
        user=user,
        target=target,
        every_s=every_s,
        until=now + for_s,
        length_s=for_s,
    )


class WatchStore:
    """Watches in Redis (one hash each), with a TTL past their end."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def get(self, watch_id: str) -> Watch | None:
        raw = self.connection.hgetall(watch_key(watch_id))
        if not raw:
            return None
        try:
            return Watch.from_fields(raw)
        except (KeyError, ValueError):
            log.warning("unreadable watch state", extra={"watch": watch_id})
            return None

    def save(self, watch: Watch) -> None:
        key = watch_key(watch.id)
        ttl = max(60, int(watch.until - time.time()) + KEEP_AFTER_END_S)
        pipe = self.connection.pipeline(transaction=True)
        pipe.hset(key, mapping=watch.to_fields())  # type: ignore[arg-type]
        pipe.expire(key, ttl)
        pipe.execute()

    def stop(self, watch_id: str, user: str) -> Watch | None:
        """Mark a watch stopped (the first Stop wins); its state, or None when it is unknown."""
        key = watch_key(watch_id)
        if not self.connection.exists(key):
            return None
        if not self.connection.hget(key, "stopped_by"):
            self.connection.hset(key, "stopped_by", user)
        return self.get(watch_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class WatchContext:
    """What a `watch` run is handed: the store, its own job spec, and how to schedule a job later."""

    store: WatchStore
    spec: JobSpec
    schedule: Callable[[JobSpec, float], None]  # (spec of the next run, delay in seconds)
