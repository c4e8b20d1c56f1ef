"""Enqueueing jobs on Redis/RQ with the JSON serializer (never pickle)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from rq import Callback, Queue
from rq.serializers import JSONSerializer

from aksdns import jobsign
from aksdns.errors import QueueUnavailable
from aksdns.jobspec import JobSpec
from aksdns.keys import capture_stop_key, queue_name

log = logging.getLogger(__name__)

# Jobs are referenced by dotted name so no code object is ever serialized.
RUN_JOB = "workers.runner.run_job"
ON_FAILURE = "workers.runner.on_failure"
RESULT_TTL_S = 3600
FAILURE_TTL_S = 7 * 24 * 3600
REDIS_TIMEOUT_S = 2.0
JOB_TIMEOUT_MARGIN_S = 300  # beyond a capture's duration: start-up, merge, analysis, upload


def connect(url: str, *, socket_timeout_s: float = REDIS_TIMEOUT_S) -> redis.Redis:
    """A Redis client that fails fast instead of hanging the listener."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=socket_timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )


@dataclass(frozen=True)
class Duplicate:
    """The same command is already queued or running in this thread."""

    job_id: str
    channel: str
    status_ts: str


class JobQueue:
    """Puts job specs on the cluster's queue and remembers running ones for deduplication."""

    def __init__(self, connection: redis.Redis, *, job_timeout_s: float, signing_key: str = "") -> None:
        self.connection = connection
        self.job_timeout_s = job_timeout_s
        self.signing_key = signing_key  # workers run only specs signed with it (aksdns.jobsign)

    def ping(self) -> None:
        """Raise QueueUnavailable when Redis does not answer."""
        try:
            self.connection.ping()
        except redis.RedisError as exc:
            log.warning("redis unreachable", extra={"error": type(exc).__name__})
            raise QueueUnavailable(
                "The job queue (Redis) is unreachable, so nothing was queued. Try again in a minute."
            ) from None

    def claim(self, key: str, placeholder: str) -> Duplicate | None:
        """Reserve a dedup key; returns the holder when the command already runs."""
        try:
            ok = self.connection.set(key, placeholder, nx=True, ex=int(self.job_timeout_s) + 60)
            if ok:
                return None
            raw = self.connection.get(key)
        except redis.RedisError as exc:
            raise QueueUnavailable("The job queue (Redis) is unreachable, so nothing was queued.") from exc
        try:
            held = json.loads(raw or b"{}")
            return Duplicate(
                str(held["job_id"]), str(held.get("channel", "")), str(held.get("status_ts", ""))
            )
        except (ValueError, KeyError, TypeError):
            return Duplicate("pending", "", "")

    def release(self, key: str) -> None:
        try:
            self.connection.delete(key)
        except redis.RedisError:
            log.warning("could not release dedup key", extra={"key": key})

    def request_stop(self, job_id: str, ttl_s: int = 3600) -> bool:
        """Ask a running job to stop early (a capture's Stop button); False when it is no longer running."""
        try:
            from rq.job import Job, JobStatus

            try:
                status = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer).get_status()
            except Exception:  # no such job (expired, or never queued): nothing to stop
                return False
            if status not in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
                return False
            self.connection.set(capture_stop_key(job_id), "1", ex=ttl_s)
        except redis.RedisError as exc:
            raise QueueUnavailable("The job queue (Redis) is unreachable; the capture ends at its deadline.") from exc
        return True

    def schedule(self, spec: JobSpec, delay_s: float) -> None:
        """Queue the job in ``delay_s`` seconds with RQ's scheduler (kept in Redis: survives worker restarts)."""
        queue, payload, options = self._job(spec, None)
        try:
            queue.enqueue_in(timedelta(seconds=delay_s), RUN_JOB, payload, **options)
        except redis.RedisError as exc:
            raise QueueUnavailable("The job queue (Redis) is unreachable, so the next run was not scheduled.") from exc

    def _job(self, spec: JobSpec, dedup: str | None) -> tuple[Queue, dict[str, Any], dict[str, Any]]:
        """The cluster's queue, the JSON payload and RQ's options of one job (never a code object)."""
        queue = Queue(queue_name(spec.cluster), connection=self.connection, serializer=JSONSerializer)
        # A capture runs for its duration before its work starts: its time-out grows with it.
        duration = getattr(spec.command, "duration_s", None)
        timeout = self.job_timeout_s if duration is None else max(self.job_timeout_s, duration + JOB_TIMEOUT_MARGIN_S)
        payload = spec.to_dict()
        payload["dedup_key"] = dedup
        payload = jobsign.sign(payload, self.signing_key, now=time.time())
        options = {
            "job_id": spec.id,
            "job_timeout": int(timeout),
            "result_ttl": RESULT_TTL_S,
            "failure_ttl": FAILURE_TTL_S,
            "on_failure": Callback(ON_FAILURE, timeout=30),
            "description": f"{spec.command.verb.value} by {spec.user}",
        }
        return queue, payload, options

    def enqueue(self, spec: JobSpec, *, dedup: str | None = None) -> None:
        """Queue the job; ``dedup`` is the key the worker deletes when the job ends."""
        queue, payload, options = self._job(spec, dedup)
        try:
            if dedup:
                thread = spec.thread
                holder = {
                    "job_id": spec.id,
                    "channel": thread.channel if thread else "",
                    "status_ts": thread.status_ts if thread else "",
                }
                self.connection.set(dedup, json.dumps(holder), ex=int(options["job_timeout"]) + 60)
            queue.enqueue(RUN_JOB, payload, **options)
        except redis.RedisError as exc:
            raise QueueUnavailable("The job queue (Redis) is unreachable, so nothing was queued.") from exc
