"""RQ's worker with what aksdns needs on top: registered while it serves, and an outbox flushed.

- **Registered while serving.** RQ registers a worker once, at start. When Redis restarts
  (without persistence) the registration is gone while the worker goes on serving its queue,
  so `aksdns healthcheck worker` (the chart's liveness probe) would kill a working worker and
  its job. Every heartbeat here checks the registration and writes it again when it is missing:
  "registered on the queue" keeps meaning "serving the queue".
- **Outbox.** Each maintenance pass (every ``maintenance_interval`` while idle) posts the
  thread messages Slack did not take earlier (:mod:`workers.outbox`).
- **Outlives a Redis outage.** RQ retries Redis only while it waits for a job; a heartbeat that
  fails while a job runs (every ``job_monitoring_interval``), the heartbeat after a job, the
  suspension check or a maintenance pass end its ``work()`` loop ("found an unhandled
  exception, quitting"), with the job still running in its work-horse and the queue left
  unserved. Here those steps log the outage and go on: the job finishes, posts its answer and
  records its outcome once Redis is back, within the time it has left (:func:`workers.runner.run_job`),
  the next dequeue waits for Redis, and a lost registration is written again. RQ's scheduler
  process still ends on the outage; RQ's own maintenance pass starts it again once Redis answers.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from redis.client import Pipeline
from rq import Worker, worker_registration

from aksdns.settings import Settings
from workers.slack_post import flush_outbox

log = logging.getLogger(__name__)

OUTAGE_PAUSE_S = 2.0  # between tries of a dequeue while Redis is unreachable (RQ's own pause)
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@contextlib.contextmanager
def outage_logged(step: str, job: Any = None) -> Iterator[None]:
    """Run one of the worker's own Redis steps; an outage is logged instead of ending the worker."""
    try:
        yield
    except REDIS_DOWN as exc:
        log.warning("Redis unreachable: step skipped, the worker goes on",
                    extra={"step": step, "job": getattr(job, "id", None), "error": type(exc).__name__})


class AksDnsWorker(Worker):
    """An RQ worker for one cluster's queue (see the module's docstring)."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:  # part of RQ's own transaction: its caller handles the outcome
            super().heartbeat(timeout, pipeline)
            return
        with outage_logged("heartbeat"):
            super().heartbeat(timeout, pipeline)
            self.ensure_registered()

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        with outage_logged("heartbeat while a job runs", job):  # the work-horse goes on with the job
            super().maintain_heartbeats(job, execution)
            self.ensure_registered()  # also while a long job runs

    def execute_job(self, job: Any, queue: Any) -> None:
        # Before the fork or after the work-horse ended: RQ's bookkeeping of this job. A job whose
        # end could not be written is found by the maintenance pass once Redis answers again.
        with outage_logged("job bookkeeping", job):
            super().execute_job(job, queue)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        # RQ's dequeue waits out an outage in its loop, but writes the worker's state before it.
        while True:
            with outage_logged("dequeue"):
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            time.sleep(OUTAGE_PAUSE_S)

    def check_for_suspension(self, burst: bool) -> None:
        with outage_logged("suspension check"):  # the dequeue that follows waits for Redis
            super().check_for_suspension(burst)

    def ensure_registered(self) -> bool:
        """Register again when Redis lost the registration; True when it had to."""
        missing = [name for name in self.queue_names()
                   if not self.connection.sismember(worker_registration.WORKERS_BY_QUEUE_KEY % name, self.key)]
        if not missing:
            return False
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        log.warning("worker registered again (Redis had lost the registration)", extra={"queues": missing})
        return True

    def run_maintenance_tasks(self) -> None:
        with outage_logged("maintenance"):
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        posted = flush_outbox(self.settings, owner=self.name)
        if posted:
            log.info("results Slack did not take earlier are posted", extra={"jobs": posted})
