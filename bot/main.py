"""`aksdns bot`: the composition root of the Slack side.

Reads settings once and builds every client. Socket Mode when SLACK_APP_TOKEN is set
(in-cluster installs need no ingress); HTTP mode with --http.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping

from aksdns import jobsign, logs, metrics
from aksdns.errors import AksDnsError
from aksdns.limits import Limits, RateLimiter
from aksdns.queue import JobQueue, connect
from aksdns.results import DAY_S, AuditLog
from aksdns.settings import Settings
from aksdns.slackclient import web_client
from bot.app import AksDnsApp, redis_event_dedup
from bot.dispatch import Dispatcher
from bot.guard import ReplayCheck, RequestGuard, redis_signature_seen
from bot.http import GunicornServer, WsgiApp, wsgi_app
from bot.priority import RequestGate

log = logging.getLogger(__name__)
SLACK_TIMEOUT_S = 10
SLACK_RETRIES = 3
SLACK_MAX_WAIT_S = 5.0


def build(settings: Settings, gate: RequestGate | None = None) -> AksDnsApp:
    """Every client the bot needs, built here and nowhere else."""
    # Slack's 429 and 5xx are retried (bounded: a follow-up waits at most a few seconds) before
    # the user is told that nothing was queued.
    client = web_client(settings.slack_bot_token, settings.slack_api_url, timeout_s=SLACK_TIMEOUT_S,
                        retries=SLACK_RETRIES, max_wait_s=SLACK_MAX_WAIT_S)
    connection = connect(settings.redis_url)
    queue = JobQueue(connection, job_timeout_s=settings.job_timeout_s, signing_key=settings.job_signing_key)
    limits = Limits(per_user=settings.rate_per_user, per_channel=settings.rate_per_channel)
    dispatcher = Dispatcher(settings, queue, client, RateLimiter(connection, limits))
    audit = AuditLog(connection, retention_s=settings.audit_days * DAY_S)
    return AksDnsApp(
        settings,
        dispatcher,
        client=client,
        event_seen=redis_event_dedup(connection),
        before_followup=_before_followup(gate, ReplayCheck(redis_signature_seen(connection))) if gate else None,
        audit=audit.append,
    )


def _before_followup(gate: RequestGate, replayed: ReplayCheck) -> Callable[[], bool]:
    """HTTP mode, before each follow-up: let in-flight acks go first; False for a replayed request."""

    def before() -> bool:
        gate.wait_idle()
        return not replayed()

    return before


def serve_metrics(settings: Settings) -> None:
    """/metrics: the bot's counters, plus queue depth and live workers of every cluster (from Redis)."""
    connection = connect(settings.redis_url)
    metrics.serve(settings.metrics_port, settings.metrics_host,
                  metrics.RedisCollector(connection, lambda: set(settings.clusters)))


def main(env: Mapping[str, str], *, http: bool, host: str, port: int, workers: int, threads: int) -> int:
    settings = Settings.from_env(env)
    logs.configure(settings.log_level)
    log.info("bot starting", extra={"mode": "http" if http else "socket", "settings": settings.redacted()})
    problem = jobsign.key_problem(settings.job_signing_key)
    if problem:  # workers refuse unsigned jobs: fail at start rather than on every command
        raise AksDnsError(f"{problem}; the chart sets it from a Secret")
    if http:
        if not settings.slack_signing_secret:
            raise AksDnsError("HTTP mode needs SLACK_SIGNING_SECRET")
        if settings.metrics_port:
            # gunicorn's processes count into files here; the master serves their sum.
            metrics.use_multiprocess(tempfile.mkdtemp(prefix="aksdns-metrics-"))
            serve_metrics(settings)

        def factory() -> WsgiApp:
            gate = RequestGate()  # one per gunicorn worker process
            bot = build(settings, gate)
            return wsgi_app(bot.app, gate, RequestGuard(settings.slack_signing_secret))

        server = GunicornServer(factory, host=host, port=port, workers=workers, threads=threads)
        server.cfg.set("child_exit", lambda _arbiter, worker: metrics.child_exit(worker.pid))
        server.run()
        return 0
    if not settings.slack_app_token:
        raise AksDnsError("Socket Mode needs SLACK_APP_TOKEN (or run with --http)")
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    if settings.metrics_port:
        serve_metrics(settings)
    SocketModeHandler(build(settings).app, settings.slack_app_token).start()  # type: ignore[no-untyped-call]
    return 0
