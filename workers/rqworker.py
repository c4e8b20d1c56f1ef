"""RQ's worker with what aksdns needs on top: registered while it serves, and an outbox flushed.

- **Registered while serving.** RQ registers a worker once, at start. When Redis restarts
  (without persistence) the registration is gone while the worker goes on serving its queue,
  so `aksdns healthcheck worker` (the chart's liveness probe) would kill a working worker and
  its job. Every heartbeat here checks the registration and writes it again when it is missing:
  "registered on the queue" keeps meaning "serving the queue".
- **Outbox.** Each maintenance pass (every ``maintenance_interval`` while idle) posts the
  thread messages Slack did not take earlier (:mod:`workers.outbox`).
"""

from __future__ import annotations

import logging
from typing import Any

from redis.client import Pipeline
from rq import Worker, worker_registration

from aksdns.settings import Settings
from workers.slack_post import flush_outbox

log = logging.getLogger(__name__)


class AksDnsWorker(Worker):
    """An RQ worker for one cluster's queue (see the module's docstring)."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self.ensure_registered()

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        super().maintain_heartbeats(job, execution)
        self.ensure_registered()  # also while a long job runs

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
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        posted = flush_outbox(self.settings, owner=self.name)
        if posted:
            log.info("results Slack did not take earlier are posted", extra={"jobs": posted})
