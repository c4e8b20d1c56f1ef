"""Job metrics counted where they can be served: in the RQ worker's main process.

RQ runs each job in a forked work-horse that exits when the job ends, so counters it increments
die with it. The main process sees every job start and end (``execute_job`` forks the horse and
waits for it), so it counts jobs by verb and status and times them; the worker's /metrics serves
these together with queue depth and live workers read from Redis.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aksdns import metrics

log = logging.getLogger(__name__)


def _verb(job: Any) -> str:
    try:
        return str(job.args[0]["command"]["verb"])
    except (AttributeError, IndexError, KeyError, TypeError):
        return "unknown"


def job_status(job: Any) -> str:
    """ok / warn / fail / info / error (the job's own verdict), or failed (time-out, crash)."""
    try:
        state = job.get_status(refresh=True)
    except Exception:
        return "unknown"
    if str(getattr(state, "value", state)) != "finished":
        return "failed"
    try:
        result = job.return_value()
        return str(result.get("status", "ok")) if isinstance(result, dict) else "ok"
    except Exception:
        return "ok"


def failure_reason(job: Any) -> str:
    try:
        text = job.latest_result().exc_string or ""
    except Exception:
        text = ""
    return "timeout" if "JobTimeoutException" in text else "crash"


class JobMetrics:
    """Mixin for an RQ Worker class: count and time every job the worker runs."""

    def execute_job(self, job: Any, queue: Any) -> None:
        started = time.monotonic()
        try:
            super().execute_job(job, queue)  # type: ignore[misc]
        finally:
            observe(job, time.monotonic() - started)


def observe(job: Any, seconds: float) -> None:
    verb, status = _verb(job), job_status(job)
    try:
        m = metrics.get()
        m.jobs.labels(verb, status).inc()
        m.job_seconds.labels(verb).observe(seconds)
        if status == "failed":
            m.job_failures.labels(verb, failure_reason(job)).inc()
    except Exception:  # a metric never costs a job
        log.debug("job metrics not counted", exc_info=True)


def abandoned(verb: str) -> None:
    """A job whose worker died (found by another worker's maintenance, in its main process)."""
    try:
        metrics.get().job_failures.labels(verb, "worker_lost").inc()
        metrics.get().jobs.labels(verb, "failed").inc()
    except Exception:
        log.debug("job metrics not counted", exc_info=True)
