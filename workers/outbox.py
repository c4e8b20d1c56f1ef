"""What Slack would not take yet: a job's thread messages, kept in Redis until they are posted.

A job that finishes while Slack answers 429s, 5xx or nothing at all has still run; its result
must reach the thread once Slack answers again. :class:`ThreadPoster` hands such messages to
the outbox (in order, per job); the worker's maintenance pass calls :meth:`Outbox.flush`, which
posts them, oldest job first, with back-off while Slack still fails.

Retention is bounded: a job's messages live at most ``RETENTION_S`` (then they are dropped,
and logged), at most ``MAX_JOBS`` jobs are held per cluster, and attachments that would make a
held message larger than ``MAX_OP_BYTES`` are left out (the thread is told so).

Keys (per cluster C): ``aksdns:outbox:C`` sorted set of job ids by next attempt time;
``aksdns:outbox:C:<job>`` hash (thread, latest status text, attempts, reason);
``aksdns:outbox:C:<job>:ops`` list of messages, oldest first.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from aksdns.jobspec import SlackThread
from aksdns.keys import outbox_key

log = logging.getLogger(__name__)

RETENTION_S = 24 * 3600
MAX_JOBS = 500
MAX_OP_BYTES = 4 * 1024 * 1024
FIRST_RETRY_S = 10.0
MAX_RETRY_S = 300.0
LOCK_S = 120
JOBS_PER_PASS = 10


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 10, 20, 40 … at most 5 min."""
    return float(min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** max(0, attempts)))


def encode_files(files: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"filename": str(f["filename"]), "title": str(f.get("title") or f["filename"]),
         "content": base64.b64encode(f["content"]).decode("ascii")}
        for f in files
    ]


def decode_files(files: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"filename": f["filename"], "title": f["title"], "content": base64.b64decode(f["content"])}
            for f in files]


class Refused(Exception):
    """Slack refused a message for good (e.g. not_in_channel, is_archived): it is dropped, logged."""


class Undelivered(Exception):
    """Slack still does not take messages (a transient failure): try again later."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass
class Outbox:
    """One cluster's held messages in Redis."""

    connection: redis.Redis
    cluster: str

    @property
    def index_key(self) -> str:
        return outbox_key(self.cluster)

    def _job_key(self, job_id: str) -> str:
        return f"{self.index_key}:{job_id}"

    # -- holding (the job's side) --------------------------------------------------------------
    def hold(self, job_id: str, thread: SlackThread, op: dict[str, Any], *, reason: str) -> bool:
        """Keep one message for later; False when it could not be kept (logged)."""
        raw = json.dumps(op)
        if len(raw) > MAX_OP_BYTES and op.get("files"):
            op = {**op, "files": [], "dropped_files": len(op["files"])}
            raw = json.dumps(op)
        if len(raw) > MAX_OP_BYTES:
            log.error("result too large to keep for a later post", extra={"job": job_id, "bytes": len(raw)})
            return False
        return self._register(job_id, thread, reason, lambda pipe: pipe.rpush(self._job_key(job_id) + ":ops", raw))

    def hold_status(self, job_id: str, thread: SlackThread, text: str, *, reason: str) -> bool:
        """Keep the parent message's latest text (only the latest is ever posted)."""
        return self._register(job_id, thread, reason, lambda pipe: pipe.hset(self._job_key(job_id), "status", text))

    def _register(self, job_id: str, thread: SlackThread, reason: str, write: Callable[[Any], object]) -> bool:
        key = self._job_key(job_id)
        try:
            known = self.connection.zscore(self.index_key, job_id) is not None
            if not known and self.connection.zcard(self.index_key) >= MAX_JOBS:
                log.error("outbox full: a result is not kept", extra={"job": job_id, "max_jobs": MAX_JOBS})
                return False
            with self.connection.pipeline() as pipe:
                pipe.hsetnx(key, "thread", json.dumps(thread.to_dict()))
                pipe.hsetnx(key, "held_at", str(int(time.time())))
                pipe.hset(key, "reason", reason)
                write(pipe)
                pipe.expire(key, RETENTION_S)
                pipe.expire(key + ":ops", RETENTION_S)
                pipe.zadd(self.index_key, {job_id: time.time() + FIRST_RETRY_S}, nx=True)
                pipe.execute()
        except redis.RedisError as exc:
            log.error("could not keep a result for a later post", extra={"job": job_id, "error": type(exc).__name__})
            return False
        log.warning("Slack did not take a message; kept for later", extra={"job": job_id, "reason": reason})
        return True

    def pending(self) -> int:
        return int(self.connection.zcard(self.index_key))

    # -- flushing (the worker's maintenance pass) ----------------------------------------------
    def flush(self, deliver: Callable[[SlackThread, dict[str, Any]], dict[str, Any] | None],
              update: Callable[[SlackThread, str], None], *, now: float, owner: str) -> int:
        """Post what is due; returns the number of jobs completed. Stops at the first transient failure.

        ``deliver(thread, op)`` posts one message and returns None, or the rest of it still to
        post (e.g. its files after the message went out); ``update`` rewrites the parent
        message. Both raise :class:`Undelivered` while Slack does not take messages and
        :class:`Refused` when Slack will never take that message (it is dropped, logged). Any
        other exception leaves everything kept and propagates.
        """
        done = 0
        for raw_id in self.connection.zrangebyscore(self.index_key, "-inf", now, start=0, num=JOBS_PER_PASS):
            job_id = _text(raw_id)
            lock = self._job_key(job_id) + ":lock"
            if not self.connection.set(lock, owner, nx=True, ex=LOCK_S):
                continue  # another worker of this cluster is posting it
            try:
                state = self._flush_job(job_id, deliver, update, now=now)
            finally:
                self.connection.delete(lock)
            if state == "done":
                done += 1
            elif state == "undelivered":
                break  # Slack still does not answer: the other jobs wait for the next pass
        return done

    def _flush_job(self, job_id: str, deliver: Callable[[SlackThread, dict[str, Any]], dict[str, Any] | None],
                   update: Callable[[SlackThread, str], None], *, now: float) -> str:
        key = self._job_key(job_id)
        meta = {_text(k): _text(v) for k, v in self.connection.hgetall(key).items()}
        if "thread" not in meta:  # retention ran out
            self.connection.zrem(self.index_key, job_id)
            log.error("a kept result expired before Slack took it", extra={"job": job_id})
            return "expired"
        thread = SlackThread(**json.loads(meta["thread"]))
        try:
            while (raw := self.connection.lindex(key + ":ops", 0)) is not None:
                rest = self._deliver_one(job_id, thread, json.loads(raw), deliver)
                if rest is None:
                    self.connection.lpop(key + ":ops")
                else:
                    self.connection.lset(key + ":ops", 0, json.dumps(rest))
            if meta.get("status"):
                update(thread, meta["status"])
        except Undelivered as exc:
            attempts = int(self.connection.hincrby(key, "attempts", 1))
            wait = max(backoff_s(attempts), exc.retry_after_s or 0.0)
            self.connection.zadd(self.index_key, {job_id: now + wait})
            log.info("Slack still does not take messages", extra={"job": job_id, "reason": exc.reason,
                                                                    "retry_in_s": wait})
            return "undelivered"
        self.connection.delete(key, key + ":ops")
        self.connection.zrem(self.index_key, job_id)
        log.info("kept messages posted", extra={"job": job_id, "held_since": meta.get("held_at")})
        return "done"

    def _deliver_one(self, job_id: str, thread: SlackThread, op: dict[str, Any],
                     deliver: Callable[[SlackThread, dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any] | None:
        try:
            return deliver(thread, op)
        except Refused as exc:  # e.g. the bot was removed from the channel meanwhile: drop, keep the rest
            log.error("a kept message was refused by Slack; dropped",
                      extra={"job": job_id, "kind": op.get("kind"), "error": str(exc)[:200]})
            return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
