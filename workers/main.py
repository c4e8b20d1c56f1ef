"""`aksdns worker`: the composition root of the worker process.

Reads settings once, builds the job environment, clears leftovers of earlier runs (probe
pods), then serves the cluster's queue with RQ and the JSON serializer.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from aksdns import __version__, jobsign, logs, metrics
from aksdns.keys import queue_name
from aksdns.liveness import Beat, Heartbeat
from aksdns.queue import connect
from aksdns.settings import Settings
from workers import jobguard, runner
from workers.jobguard import GuardedJob
from workers.rqworker import AksDnsWorker
from workers.worker_metrics import JobMetrics

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
    problem = jobsign.key_problem(settings.job_signing_key)
    if problem:  # without the key every job would be refused: say so at start, not per job
        log.error("job signing key missing", extra={"problem": problem})
        print(f"aksdns worker: {problem}; the chart sets it from a Secret")
        return 1
    jobguard.configure(settings.job_signing_key)
    runner.configure(runner.WorkerContext(settings, runner.base_env(settings)))
    # Loaded once here, so the job processes RQ forks inherit it and no `analyze` pays the import.
    from workers.analysis.traffic import warm

    warm.preload()
    # RQ blocks on the queue for up to worker_ttl - 15 s: its socket waits longer than that (RQ
    # raises the pool's timeout for new connections only, and the PING below opens one first).
    connection = connect(settings.redis_url, socket_timeout_s=WORKER_TTL_S + 30)
    try:
        connection.ping()
    except redis.RedisError:
        log.error("redis unreachable at start")
        print("aksdns worker: Redis is unreachable at", settings.redacted()["redis_url"])
        return 1
    queue = Queue(queue_name(settings.cluster), connection=connection, serializer=JSONSerializer, job_class=GuardedJob)
    worker = MeteredWorker(
        [queue],
        settings=settings,
        connection=connection,
        serializer=JSONSerializer,
        job_class=GuardedJob,  # only aksdns's own entry points, on signed specs
        name=worker_name(settings.cluster),
        # A killed worker's job is found by its expired heartbeat (interval + 60 s in RQ), and
        # reported in its thread by the next maintenance pass: keep both short.
        job_monitoring_interval=JOB_MONITORING_INTERVAL_S,
        maintenance_interval=MAINTENANCE_INTERVAL_S,
        worker_ttl=WORKER_TTL_S,  # an idle worker wakes every worker_ttl - 15 s, so maintenance runs
    )
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host,
                      metrics.RedisCollector(connection, lambda: {settings.cluster}))
    # Beat first: the bot answers "no worker is serving" for a cluster without a beat.
    heartbeat = Heartbeat(connect(settings.redis_url), _beat(worker, settings.cluster, time.time())).start()
    if settings.kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST"):
        run_janitor(settings)
    try:
        # The scheduler moves due jobs (a watch's next run) from RQ's schedule in Redis to the
        # queue: what is scheduled outlives this process.
        worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
    finally:
        heartbeat.stop()
    return 0


class MeteredWorker(JobMetrics, AksDnsWorker):
    """aksdns's RQ worker, counting and timing the jobs it runs (workers.worker_metrics)."""


def _beat(worker: Worker, cluster: str, started_at: float) -> Callable[[], Beat]:
    host, pid = socket.gethostname(), os.getpid()

    def make() -> Beat:
        job = worker.get_current_job_id() or ""
        return Beat(worker.name, cluster, __version__, host, pid, started_at, time.time(), str(job))

    return make


def healthcheck(env: Mapping[str, str]) -> int:
    """Liveness: Redis answers and a worker of this host is registered on our queue.

    Registered means serving: the worker writes its registration again on every heartbeat
    when Redis lost it (workers.rqworker), e.g. after a restart without persistence.
    """
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
