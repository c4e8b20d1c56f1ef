"""`aksdns worker`: the composition root of the worker process.

Reads settings once, builds the job environment, clears leftovers of earlier runs (probe
pods), then serves the cluster's queue with RQ and the JSON serializer.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from aksdns import logs
from aksdns.keys import queue_name
from aksdns.queue import connect
from aksdns.settings import Settings
from workers import runner

log = logging.getLogger(__name__)
JOB_MONITORING_INTERVAL_S = 5
MAINTENANCE_INTERVAL_S = 15
WORKER_TTL_S = 30


def worker_name(cluster: str) -> str:
    return f"aksdns-{cluster}-{socket.gethostname()}-{os.getpid()}"


def run_janitor(settings: Settings) -> None:
    """Remove pods a previous worker left behind (it may have been killed)."""
    try:
        from workers.probes import kube, pods

        removed = pods.janitor(kube.connect(settings.kubeconfig).core, settings.namespace)
        log.info("janitor done", extra={"removed": removed})
        from workers.capture import spool

        spool.sweep()  # capture files a killed worker left behind, past their retention
    except Exception as exc:  # the janitor must never keep the worker from serving
        log.warning("janitor skipped", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})


def main(env: Mapping[str, str], *, cluster: str | None = None, burst: bool = False) -> int:
    """Serve one cluster's queue until stopped (or until empty with ``burst``)."""
    settings = Settings.from_env(env)
    if cluster:
        settings = Settings(**{**settings.__dict__, "cluster": cluster})
    logs.configure(settings.log_level)
    log.info("worker starting", extra={"settings": settings.redacted()})
    runner.configure(runner.WorkerContext(settings, runner.base_env(settings)))
    connection = connect(settings.redis_url)
    try:
        connection.ping()
    except redis.RedisError:
        log.error("redis unreachable at start")
        print("aksdns worker: Redis is unreachable at", settings.redacted()["redis_url"])
        return 1
    if settings.kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST"):
        run_janitor(settings)
    queue = Queue(queue_name(settings.cluster), connection=connection, serializer=JSONSerializer)
    worker = Worker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        name=worker_name(settings.cluster),
        # A killed worker's job is found by its expired heartbeat (interval + 60 s in RQ), and
        # reported in its thread by the next maintenance pass: keep both short.
        job_monitoring_interval=JOB_MONITORING_INTERVAL_S,
        maintenance_interval=MAINTENANCE_INTERVAL_S,
        worker_ttl=WORKER_TTL_S,  # an idle worker wakes every worker_ttl - 15 s, so maintenance runs
    )
    worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)
    return 0


def healthcheck(env: Mapping[str, str]) -> int:
    """Liveness: Redis answers and a worker of this host is registered on our queue."""
    settings = Settings.from_env(env)
    connection = connect(settings.redis_url)
    try:
        connection.ping()
        queue = Queue(queue_name(settings.cluster), connection=connection, serializer=JSONSerializer)
        prefix = f"aksdns-{settings.cluster}-{socket.gethostname()}-"
        alive = any(w.name.startswith(prefix) for w in Worker.all(queue=queue))
    except redis.RedisError:
        print("unhealthy: redis unreachable")
        return 1
    print("healthy" if alive else "unhealthy: no worker registered on this host")
    return 0 if alive else 1
