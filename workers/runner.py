"""The functions RQ runs, referenced by dotted name from the bot (never pickled).

``run_job`` takes the JSON job spec, runs the command's job, renders the report and
posts it in the thread.  ``on_failure`` is RQ's failure callback: time-outs, crashes and
jobs abandoned by a killed worker are reported in their thread, never dropped.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis

from aksdns.describe import emoji
from aksdns.errors import AksDnsError, user_message
from aksdns.jobspec import JobSpec
from aksdns.queue import connect
from aksdns.settings import Settings
from workers import jobs
from workers.jobenv import JobEnv
from workers.render.blocks import render_blocks
from workers.slack_post import ThreadPoster, make_client
from workers.thread_files import fetch_thread_captures

log = logging.getLogger(__name__)

@dataclass
class WorkerContext:
    """What the worker process built once at start (workers.main) for every job."""

    settings: Settings
    env: JobEnv


_context: WorkerContext | None = None


def configure(context: WorkerContext) -> None:
    """Called by workers.main before work(); forked work-horses inherit it."""
    global _context
    _context = context


def _ctx() -> WorkerContext:
    if _context is None:  # started by a bare `rq worker`: build from the environment now
        settings = Settings.from_env(os.environ)
        configure(WorkerContext(settings, base_env(settings)))
    assert _context is not None
    return _context


def base_env(settings: Settings) -> JobEnv:
    """The JobEnv every job of this worker starts from."""
    return JobEnv(
        cluster=settings.cluster,
        namespace=settings.namespace,
        kubeconfig=settings.kubeconfig,
        azure_dns=settings.azure_dns,
        external_name=settings.external_name,
        probe_image=settings.probe_image,
        resolv_conf=Path(settings.resolv_conf),
    )


def _poster(settings: Settings, spec: JobSpec) -> ThreadPoster | None:
    if spec.thread is None or not settings.slack_bot_token:
        return None
    return ThreadPoster(make_client(settings.slack_bot_token, settings.slack_api_url), spec.thread)


def _release(settings: Settings, key: str | None) -> None:
    if not key:
        return
    try:
        _redis(settings).delete(key)
    except redis.RedisError:
        log.warning("could not release dedup key", extra={"key": key})


LAST_RESULT_TTL_S = 7 * 24 * 3600
LAST_RESULT_MAX_BYTES = 2 * 1024 * 1024


def _last_key(spec: JobSpec) -> str | None:
    """Where a thread keeps the previous result of a command, for Re-run differences."""
    if spec.thread is None:
        return None
    return f"aksdns:last:{spec.cluster}:{spec.thread.channel}:{spec.thread.thread_ts}:{spec.command.verb.value}"


def _load_previous(settings: Settings, spec: JobSpec) -> dict[str, Any] | None:
    key = _last_key(spec)
    if key is None:
        return None
    try:
        raw = _redis(settings).get(key)
        loaded = json.loads(raw) if raw else None
    except (redis.RedisError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _store_result(settings: Settings, spec: JobSpec, data: dict[str, Any]) -> None:
    key = _last_key(spec)
    if key is None:
        return
    try:
        raw = json.dumps(data, default=str)
        if len(raw) <= LAST_RESULT_MAX_BYTES:
            _redis(settings).set(key, raw, ex=LAST_RESULT_TTL_S)
    except (redis.RedisError, TypeError, ValueError):
        log.warning("could not keep the result for a re-run", extra={"job": spec.id})


def _redis(settings: Settings) -> redis.Redis:
    return connect(settings.redis_url)


def run_job(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: run one job and answer in its thread; returns the JSON result."""
    ctx = _ctx()
    spec = JobSpec.from_dict(payload)
    verb = spec.command.verb.value
    poster = _poster(ctx.settings, spec)
    mark = emoji(spec.command)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"aksdns-{spec.id[:8]}-"))
    log.info("job started", extra={"job": spec.id, "verb": verb, "user": spec.user, "cluster": spec.cluster})

    def progress(text: str) -> None:
        if poster:
            poster.status(f"{mark} `{verb}` on `{spec.cluster}`: {text}")

    extras: dict[str, Any] = {"source": "slack", "job_id": spec.id}
    previous = _load_previous(ctx.settings, spec)
    if previous is not None:
        extras[f"previous_{verb}"] = previous  # e.g. previous_check: the Re-run shows what changed
    env = replace(ctx.env, progress=progress, workdir=workdir, extras=extras)
    if poster and spec.thread:
        thread, client = spec.thread, poster.client
        wanted = getattr(spec.command, "files", ())
        env.thread_files = lambda: fetch_thread_captures(
            client,
            thread,
            workdir,
            token=ctx.settings.slack_bot_token,
            api_url=ctx.settings.slack_api_url,
            wanted=tuple(wanted),
        )
    elif spec.thread is None:
        env.extras["source"] = "cli"
    progress("running…")
    try:
        report = jobs.execute(spec.command, env)
        basis = jobs.rerun_basis(spec.command, report.data)
        if basis is not None:
            _store_result(ctx.settings, spec, basis)
        elapsed = time.monotonic() - started
        if poster:
            poster.post(render_blocks(report))
            poster.status(f"{report.status.mark} `{verb}` done in {elapsed:.1f}s — {report.summary}")
        log.info("job done", extra={"job": spec.id, "verb": verb, "seconds": round(elapsed, 3)})
        return {"status": report.status.value, "summary": report.summary, "data": report.data}
    except AksDnsError as exc:
        # Expected failures (bad file, 403, nothing to analyze): a clear line, job "done".
        log.info("job ended with a user error", extra={"job": spec.id, "error": exc.message})
        if poster:
            poster.reply(f"❌ {user_message(exc)}")
            poster.status(f"❌ `{verb}` could not finish: {user_message(exc)}")
        return {"status": "error", "summary": user_message(exc), "data": {}}
    finally:
        _release(ctx.settings, payload.get("dedup_key"))
        shutil.rmtree(workdir, ignore_errors=True)


def on_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    """RQ failure callback: time-out, crash, or abandoned by a killed worker."""
    ctx = _ctx()
    try:
        payload = job.args[0]
        spec = JobSpec.from_dict(payload)
    except (IndexError, ValueError, TypeError):
        log.error("failed job with an unreadable spec", extra={"job": getattr(job, "id", "?")})
        return
    name = getattr(exc_type, "__name__", str(exc_type))
    if name == "JobTimeoutException":
        reason = f"it timed out after {int(job.timeout or 0)} s"
    elif name == "AbandonedJobError":
        reason = "the worker running it stopped (killed or restarted)"
    else:
        reason = user_message(exc_value) if isinstance(exc_value, BaseException) else "an internal error"
    log.error("job failed", extra={"job": spec.id, "verb": spec.command.verb.value, "reason": name})
    poster = _poster(ctx.settings, spec)
    if poster:
        verb = spec.command.verb.value
        poster.reply(f"❌ `{verb}` failed: {reason}. Nothing else was changed; you can run it again.")
        poster.status(f"❌ `{verb}` failed: {reason}")
    _release(ctx.settings, payload.get("dedup_key"))
