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
- **Settles what an outage left open.** A job that ended while Redis stayed down has answered in
  its thread, but neither its record nor RQ's end of it could be written. Its work-horse kept them
  on disk (:mod:`workers.unsettled`); once Redis answers, before the next maintenance pass, this
  process records them and ends the job in RQ as finished — else that pass would report the
  answered job as stopped with its worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from redis.client import Pipeline
from rq import Worker, worker_registration
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import JobStatus

from aksdns.results import DAY_S, ResultsStore
from aksdns.settings import Settings
from workers import runner, unsettled
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


@dataclasses.dataclass(frozen=True)
class Unsettled:
    """A job whose work-horse ended while this process could not write the job's end."""

    job: Any
    queue: Any
    execution: Any


class AksDnsWorker(Worker):
    """An RQ worker for one cluster's queue (see the module's docstring)."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.unsettled: list[Unsettled] = []
        self._execution: Any = None

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

    def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any) -> None:
        # RQ calls no failure callback here: a work-horse the kernel's OOM killer (or a crash, or
        # RQ past the time-out) ended would leave its thread at "running…" for good.
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]
        if unsettled.take(self.name, job.id) is not None:  # it answered: only its end is unwritten
            return
        started = getattr(job, "started_at", None)
        ran_s = (datetime.datetime.now(datetime.UTC) - started).total_seconds() if started else 0.0
        runner.on_horse_killed(job, ret_val, ran_s)

    def prepare_execution(self, job: Any) -> Any:
        self._execution = super().prepare_execution(job)  # what RQ needs to end the job later
        return self._execution

    def execute_job(self, job: Any, queue: Any) -> None:
        # Before the fork or after the work-horse ended: RQ's bookkeeping of this job. A job whose
        # end could not be written is settled once Redis answers again (see settle).
        self._execution = None
        with outage_logged("job bookkeeping", job):
            super().execute_job(job, queue)
        if self._execution is not None:  # a work-horse ran it: did it leave anything unwritten?
            self.unsettled.append(Unsettled(job, queue, self._execution))
        self.settle()

    def settle(self) -> None:
        """Write what the work-horses of jobs that ended in a Redis outage left on disk; the jobs
        whose writes still meet the outage wait for the next call."""
        left = []
        for item in self.unsettled:
            try:
                self._settle(item)
            except REDIS_DOWN as exc:
                log.warning("Redis unreachable: a job's end is settled later",
                            extra={"job": item.job.id, "error": type(exc).__name__})
                left.append(item)
        self.unsettled = left

    def _settle(self, item: Unsettled) -> None:
        job = item.job
        kept = unsettled.take(self.name, job.id)
        if kept is None:  # ended normally, or its work-horse died without an answer (RQ reports that)
            return
        if kept.outcome is not None:
            store = ResultsStore(self.connection, retention_s=self.settings.history_days * DAY_S)
            if not store.record(kept.outcome, basis=kept.basis):
                raise redis.exceptions.ConnectionError("the results store did not take the record")
            unsettled.keep(job.id, dataclasses.replace(kept, outcome=None, basis=None), worker=self.name)
        try:
            status = job.get_status(refresh=True)
        except (InvalidJobOperation, NoSuchJobError):  # expired meanwhile: nothing left to end
            status = None
        if status == JobStatus.STARTED:  # as the work-horse would have ended it with Redis up
            job.ended_at = datetime.datetime.fromtimestamp(kept.ended_at, datetime.UTC)
            job._result = kept.result
            job._status = JobStatus.FINISHED
            self.handle_job_success(job, item.queue, item.queue.started_job_registry, item.execution)
        unsettled.discard(self.name, job.id)
        log.info("a job's end written after a Redis outage", extra={"job": job.id, "rq_status": str(status)})

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        # RQ's dequeue waits out an outage in its loop, but writes the worker's state before it.
        while True:
            self.settle()
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
        self.settle()  # first: the pass would report a job this worker has not ended yet as stopped
        with outage_logged("maintenance"):
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        posted = flush_outbox(self.settings, owner=self.name)
        if posted:
            log.info("results Slack did not take earlier are posted", extra={"jobs": posted})
