"""The worker runs aksdns's own job entry points, on signed specs, and nothing else.

RQ resolves a job's function (and its callbacks) by importing whatever dotted name the job
hash in Redis carries; the JSON serializer limits the arguments, not the function.  So the
worker's queues use :class:`GuardedJob`, which resolves only the names below:

- ``workers.runner.run_job``, called with one argument: a job spec signed by the bot
  (:mod:`aksdns.jobsign`), whose id is the RQ job's id, issued within a day, never run before;
- ``workers.runner.on_failure`` as the failure callback, which posts only for signed specs.

Anything else is refused loudly: logged as an error, the job failed, nothing imported or run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from rq.job import Job

from aksdns import jobsign
from aksdns.keys import ran_key
from aksdns.queue import ON_FAILURE, RUN_JOB
from aksdns.validate import clip

log = logging.getLogger(__name__)


class ForeignJobRefused(Exception):
    """The job names something this worker does not run, or carries an unsigned spec."""


_signing_key = ""


def configure(signing_key: str) -> None:
    """Called by workers.main before work(); forked work-horses inherit it."""
    global _signing_key
    _signing_key = signing_key


def _refuse(job: Job, reason: str) -> ForeignJobRefused:
    log.error(
        "refused a job that aksdns did not queue",
        extra={"job": clip(str(job.id), 80), "origin": clip(str(job.origin), 80), "reason": reason},
    )
    return ForeignJobRefused(f"refused by aksdns: {reason}")


def _name(job: Job) -> str:
    return clip(str(job.func_name), 80)


def _run_signed(job: Job, target: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """``target(spec)``, once the spec proves to be the bot's and fresh."""

    def run(*args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) != 1:
            raise _refuse(job, f"{_name(job)} called with unexpected arguments")
        try:
            payload = jobsign.verify(args[0], _signing_key, job_id=job.id)
            jobsign.check_age(payload, now=time.time())
        except jobsign.UnsignedJob as exc:
            raise _refuse(job, str(exc)) from None
        if not _first_run(job):
            raise _refuse(job, "this job id ran before (a replayed job)")
        return target(payload)

    return run


def _first_run(job: Job) -> bool:
    try:
        return bool(job.connection.set(ran_key(job.id), 1, nx=True, ex=int(jobsign.MAX_AGE_S) + 3600))
    except redis.RedisError:
        return True  # Redis went away mid-job: RQ itself cannot hand this job out twice then


def _failure_if_signed(job: Job, target: Callable[..., Any]) -> Callable[..., Any]:
    """The failure callback runs for genuine specs only: a forged one must not make us post."""

    def callback(failed: Job, connection: Any, *exc_info: Any) -> Any:
        if exc_info and exc_info[0] is ForeignJobRefused:
            return None  # refused before it ran (e.g. a replayed genuine job): nothing to tell its thread
        try:
            jobsign.verify(failed.args[0] if failed.args else None, _signing_key, job_id=failed.id)
        except (jobsign.UnsignedJob, IndexError):
            log.error("not reporting a failed job that aksdns did not queue", extra={"job": clip(str(failed.id), 80)})
            return None
        return target(failed, connection, *exc_info)

    return callback


def _refused_function(job: Job, reason: str) -> Callable[..., Any]:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise _refuse(job, reason)

    return refuse


class GuardedJob(Job):
    """An RQ job that resolves only aksdns's entry points (see the module's docstring)."""

    @property
    def func(self) -> Callable[..., Any]:
        name = self.func_name
        if name != RUN_JOB:
            return _refused_function(self, f"function {clip(str(name), 80)} is not an aksdns job entry point")
        if self.instance is not None:
            return _refused_function(self, "a job on an instance is not an aksdns job")
        from workers import runner  # imported here: the worker's import graph stays as it was

        return _run_signed(self, runner.run_job)

    @property
    def failure_callback(self) -> Callable[..., Any] | None:
        name = self._failure_callback_name
        if not name:
            return None
        if name != ON_FAILURE:
            _refuse(self, f"failure callback {clip(name, 80)} is not aksdns's")
            return None
        from workers import runner

        return _failure_if_signed(self, runner.on_failure)

    @property
    def success_callback(self) -> Callable[..., Any] | None:
        if self._success_callback_name:
            _refuse(self, f"success callback {clip(self._success_callback_name, 80)} is not aksdns's")
        return None

    @property
    def stopped_callback(self) -> Callable[..., Any] | None:
        if self._stopped_callback_name:
            _refuse(self, f"stopped callback {clip(self._stopped_callback_name, 80)} is not aksdns's")
        return None
