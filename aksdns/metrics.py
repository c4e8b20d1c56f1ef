"""Prometheus metrics of the bot and the worker, and the HTTP endpoint that serves them.

What is counted (docs/incident.md lists every series):
  bot     aksdns_commands_total{verb,outcome}, aksdns_ack_seconds{kind} (histogram)
  worker  aksdns_jobs_total{verb,status}, aksdns_job_duration_seconds{verb} (histogram),
          aksdns_job_failures_total{verb,reason}
  both    aksdns_queue_depth{cluster}, aksdns_live_workers{cluster}, aksdns_jobs_running{cluster},
          read from Redis when scraped (so every bot replica and worker reports the same truth)

prometheus_client is imported on first use, not at import: the bot's HTTP mode runs several gunicorn
processes, which share their counters through prometheus_client's multiprocess mode, and that
mode is chosen (PROMETHEUS_MULTIPROC_DIR) before the library is first imported.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import redis

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
JOB_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """The series of one process (created once, on first use)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.commands = Counter("aksdns_commands_total", "Commands, buttons and mentions by verb and outcome",
                                ["verb", "outcome"])
        self.ack_seconds = Histogram("aksdns_ack_seconds", "Time to acknowledge a Slack request",
                                     ["kind"], buckets=ACK_BUCKETS)
        self.jobs = Counter("aksdns_jobs_total", "Jobs finished by verb and status", ["verb", "status"])
        self.job_seconds = Histogram("aksdns_job_duration_seconds", "Job duration as the worker ran it",
                                     ["verb"], buckets=JOB_BUCKETS)
        self.job_failures = Counter("aksdns_job_failures_total", "Jobs that failed (time-out, crash, killed worker)",
                                    ["verb", "reason"])


_metrics: Metrics | None = None
_lock = threading.Lock()


def get() -> Metrics:
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = Metrics()
        return _metrics


def command(verb: str, outcome: str) -> None:
    """Count one command (never raises: metrics must not cost an answer)."""
    try:
        get().commands.labels(verb or "-", outcome).inc()
    except Exception:  # pragma: no cover - defensive
        log.debug("metric not counted", exc_info=True)


class RedisCollector:
    """Queue depth, live workers and running jobs per cluster, read from Redis at scrape time."""

    def __init__(self, connection: redis.Redis, clusters: Callable[[], set[str]]) -> None:
        self.connection = connection
        self.clusters = clusters

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from aksdns.liveness import cluster_views

        depth = GaugeMetricFamily("aksdns_queue_depth", "Jobs waiting on a cluster's queue", labels=["cluster"])
        live = GaugeMetricFamily("aksdns_live_workers", "Workers that beat within 30 s", labels=["cluster"])
        running = GaugeMetricFamily("aksdns_jobs_running", "Jobs running on a cluster's workers", labels=["cluster"])
        up = GaugeMetricFamily("aksdns_redis_up", "1 when Redis answered this scrape")
        try:
            views = cluster_views(self.connection, frozenset(self.clusters()))
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for v in views:
            depth.add_metric([v.cluster], v.queued)
            live.add_metric([v.cluster], len(v.workers))
            running.add_metric([v.cluster], v.busy)
        yield from (depth, live, running, up)


def use_multiprocess(directory: str) -> None:
    """Before prometheus_client is first imported: processes forked from here share their counters."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):  # counters of an earlier run are not ours
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))
    os.environ[MULTIPROC_ENV] = directory


def child_exit(pid: int) -> None:
    """gunicorn's child_exit hook: drop the live gauges of a dead worker process."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def serve(port: int, host: str, collector: RedisCollector | None) -> Any:
    """Serve /metrics on ``host:port`` from a thread; returns the server (``.shutdown()`` stops it)."""
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry: Any = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if collector is not None:
        registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics served", extra={"port": port, "host": host})
    return server
