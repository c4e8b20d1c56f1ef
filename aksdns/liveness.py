"""Which workers are alive, for which cluster, running which version: heartbeats in Redis.

Each worker process beats every ``BEAT_S`` from a thread of its own (not from jobs, so a long job
does not make it look dead): a hash with its cluster, aksdns version, host and current job that
expires after ``ALIVE_S``, and its name in a sorted set scored by the beat's time. A worker that
stops beating (killed, its node gone) drops out within ``ALIVE_S``; the bot then answers a command
for its cluster at once ("no worker is serving cluster X") instead of queueing it into silence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from aksdns.keys import WORKERS_ZSET, queue_name, worker_key

log = logging.getLogger(__name__)
BEAT_S = 10.0
ALIVE_S = 30.0  # three beats missed: gone
FORGET_S = 24 * 3600  # a dead worker's name is dropped from the set after this


@dataclass(frozen=True)
class Beat:
    name: str
    cluster: str
    version: str
    host: str
    pid: int
    started_at: float
    at: float
    job: str = ""  # the job it is running ("" when idle)

    def fields(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_fields(cls, raw: dict[bytes | str, bytes | str]) -> Beat:
        d = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            name=d["name"],
            cluster=d.get("cluster", ""),
            version=d.get("version", ""),
            host=d.get("host", ""),
            pid=int(d.get("pid", "0") or 0),
            started_at=float(d.get("started_at", "0") or 0),
            at=float(d.get("at", "0") or 0),
            job=d.get("job", ""),
        )


def beat(connection: redis.Redis, b: Beat) -> None:
    pipe = connection.pipeline(transaction=False)
    pipe.hset(worker_key(b.name), mapping=b.fields())  # type: ignore[arg-type]
    pipe.expire(worker_key(b.name), int(ALIVE_S))
    pipe.zadd(WORKERS_ZSET, {_member(b.cluster, b.name): b.at})
    pipe.execute()


def _member(cluster: str, name: str) -> str:
    return f"{cluster}|{name}"  # cluster names never hold "|" (aksdns.validate.cluster_name)


def forget(connection: redis.Redis, cluster: str, name: str) -> None:
    """A worker that stops cleanly says so at once."""
    pipe = connection.pipeline(transaction=False)
    pipe.delete(worker_key(name))
    pipe.zrem(WORKERS_ZSET, _member(cluster, name))
    pipe.execute()


def live_workers(connection: redis.Redis, *, now: float | None = None) -> list[Beat]:
    """Every worker that beat within ``ALIVE_S`` (raises redis.RedisError when Redis is down)."""
    now = time.time() if now is None else now
    members: list[Any] = connection.zrangebyscore(WORKERS_ZSET, now - ALIVE_S, "+inf")
    if not members:
        return []
    pipe = connection.pipeline(transaction=False)
    for member in members:
        pipe.hgetall(worker_key(_text(member).partition("|")[2]))
    out = [Beat.from_fields(raw) for raw in pipe.execute() if raw]
    connection.zremrangebyscore(WORKERS_ZSET, "-inf", now - FORGET_S)
    return sorted(out, key=lambda b: (b.cluster, b.name))


def last_seen(connection: redis.Redis, cluster: str) -> float | None:
    """When a worker of ``cluster`` last beat (within a day), or None."""
    best = None
    rows: list[Any] = connection.zrangebyscore(WORKERS_ZSET, "-inf", "+inf", withscores=True)
    for member, score in rows:
        if _text(member).partition("|")[0] == cluster:
            best = max(best or 0.0, float(score))
    return best


@dataclass(frozen=True)
class ClusterView:
    cluster: str
    workers: tuple[Beat, ...]
    queued: int  # jobs waiting on the cluster's queue

    @property
    def busy(self) -> int:
        return sum(1 for w in self.workers if w.job)


def cluster_views(connection: redis.Redis, clusters: set[str] | frozenset[str] = frozenset()) -> list[ClusterView]:
    """Every cluster that has a live worker or is named, with its workers and queue depth."""
    workers = live_workers(connection)
    names = sorted(set(clusters) | {w.cluster for w in workers})
    pipe = connection.pipeline(transaction=False)
    for c in names:
        pipe.llen(f"rq:queue:{queue_name(c)}")
    depths = pipe.execute()
    return [
        ClusterView(c, tuple(w for w in workers if w.cluster == c), int(d or 0))
        for c, d in zip(names, depths, strict=True)
    ]


class Heartbeat:
    """The worker's beating thread: started before the worker serves, stopped (and forgotten) after."""

    def __init__(
        self, connection: redis.Redis, make: Callable[[], Beat], *, interval_s: float = BEAT_S
    ) -> None:
        self.connection = connection
        self.make = make
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aksdns-heartbeat", daemon=True)
        self.name = ""
        self.cluster = ""

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 2)
        if self.name:
            try:
                forget(self.connection, self.cluster, self.name)
            except redis.RedisError:
                pass

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                b = self.make()
                self.name, self.cluster = b.name, b.cluster
                beat(self.connection, b)
                if failing:
                    log.info("heartbeat back: Redis answers again")
                failing = False
            except redis.RedisError as exc:  # Redis restarting: beat again next time
                if not failing:
                    log.warning("heartbeat failed", extra={"error": type(exc).__name__})
                failing = True
            except Exception:  # never let the heartbeat thread die silently
                log.exception("heartbeat error")
            self._stop.wait(self.interval_s)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
