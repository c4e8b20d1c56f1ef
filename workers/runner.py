"""The functions RQ runs, referenced by dotted name from the bot (never pickled).

``run_job`` takes the JSON job spec, runs the command's job, renders the report and
posts it in the thread.  ``on_failure`` is RQ's failure callback: time-outs, crashes and
jobs abandoned by a killed worker are reported in their thread, never dropped.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis

from aksdns.commands import WatchCommand
from aksdns.describe import describe, emoji
from aksdns.dig_policy import DigPolicy
from aksdns.errors import AksDnsError, PolicyRefused, user_message
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.keys import capture_stop_key
from aksdns.queue import JobQueue, connect
from aksdns.reconnect import wait_for_redis
from aksdns.results import DAY_S, MAX_FINDINGS_KEPT, AuditEvent, AuditLog, Outcome, ResultsStore, trim_finding
from aksdns.settings import Settings
from aksdns.watches import WatchContext, WatchStore
from workers import jobs, unsettled, worker_metrics
from workers.analysis.rerun_diff import Basis
from workers.jobenv import JobEnv
from workers.render.blocks import render_blocks
from workers.report import Report
from workers.slack_post import ThreadPoster, public_text, thread_poster
from workers.thread_actions import add_thread_buttons
from workers.thread_files import fetch_thread_captures

log = logging.getLogger(__name__)
RECORD_WAIT_S = 60.0  # how long a finished job waits for Redis to come back to record its outcome
RECORD_MARGIN_S = 5.0  # of the job's time-out, left for RQ's own bookkeeping after a late record


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
        dig_policy=DigPolicy.from_setting(settings.dig_allow),
        capture_max_bytes=settings.capture_max_bytes,
        capture_snaplen=settings.capture_snaplen,
        capture_retention_s=settings.capture_retention_s,
        azure=settings.azure,
    )


def _poster(settings: Settings, spec: JobSpec) -> ThreadPoster | None:
    return thread_poster(settings, spec)  # what Slack does not take is kept in Redis and posted later


def _release(settings: Settings, key: str | None) -> None:
    if not key:
        return
    try:
        _redis(settings).delete(key)
    except redis.RedisError:
        log.warning("could not release dedup key", extra={"key": key})


def _redis(settings: Settings) -> redis.Redis:
    return connect(settings.redis_url)


def _store(settings: Settings) -> ResultsStore:
    return ResultsStore(_redis(settings), retention_s=settings.history_days * DAY_S)


def _outcome(spec: JobSpec, started_at: float, status: str, summary: str, report: Report | None = None) -> Outcome:
    """The line this job adds to its thread's history."""
    thread = spec.thread
    basis = Basis.from_dict(report.basis) if report is not None and report.basis else Basis()
    return Outcome(
        job_id=spec.id,
        verb=spec.command.verb.value,
        command=spec.command.to_dict(),
        text=describe(spec.command),
        cluster=spec.cluster,
        user=spec.user,
        channel=thread.channel if thread else "",
        thread_ts=thread.thread_ts if thread else "",
        started_at=started_at,
        finished_at=time.time(),
        status=status,
        summary=public_text(summary),  # the history is read back into threads: no worker paths
        findings=_findings(report, basis),
        attachments=tuple(a.filename for a in (report.attachments if report else [])),
        figures=dict(basis.figures),
        changes=report.changes if report else (),
        ruled_out=tuple(r.to_dict() for r in basis.ruled_out),
    )


def _findings(report: Report | None, basis: Basis) -> tuple[dict[str, Any], ...]:
    """The top findings for the history: the report's own, else what its basis names (dig's servers)."""
    if report is not None and report.findings:
        return tuple(trim_finding(f.to_dict()) for f in report.findings[:MAX_FINDINGS_KEPT])
    scores = {"critical": 80, "warning": 40}
    return tuple(
        {**m.to_dict(), "score": scores.get(m.severity, 10), "evidence": [m.evidence] if m.evidence else [],
         "subjects": [], "confidence": "high", "actions": [], "links": []}
        for m in basis.findings[:MAX_FINDINGS_KEPT]
    )


def _record(settings: Settings, spec: JobSpec, outcome: Outcome, basis: dict[str, Any] | None = None,
            wait_s: float = RECORD_WAIT_S) -> bool:
    """Into the thread's history; across a Redis restart (waiting at most ``wait_s``), since the
    handoff reads it. False when Redis did not take it."""
    if spec.thread is None:  # CLI runs have no thread to remember them in
        return True
    store = _store(settings)
    if store.record(outcome, basis=basis):
        return True
    return wait_s > 0 and wait_for_redis(store.connection, wait_s) and store.record(outcome, basis=basis)


def _keep_unless_up(settings: Settings, spec: JobSpec, result: dict[str, Any], outcome: Outcome | None,
                    basis: dict[str, Any] | None, recorded: bool) -> None:
    """The job has answered in its thread. When Redis is down now, RQ cannot write the job's end
    either: keep what is unwritten for the worker's main process to settle once Redis is back,
    or RQ would later report this answered job as stopped (:mod:`workers.unsettled`)."""
    if recorded and _reachable(settings):  # asked only when Redis just took the record: no wait for a dead one
        return
    if recorded:  # the record is in: only RQ's end of the job is unwritten
        outcome, basis = None, None
    if unsettled.keep(spec.id, unsettled.Kept(result, time.time(), outcome, basis)) is not None:
        log.warning("Redis unreachable at the job's end: its record is kept for the worker to settle",
                    extra={"job": spec.id})


def _reachable(settings: Settings) -> bool:
    try:
        return bool(_redis(settings).ping())
    except redis.RedisError:
        return False


def _time_left_s(settings: Settings, started: float) -> float:
    """What a job may still spend before RQ's time-out ends it (less a margin for RQ's own steps)."""
    return min(RECORD_WAIT_S, settings.job_timeout_s - (time.monotonic() - started) - RECORD_MARGIN_S)


def _watch_context(settings: Settings, spec: JobSpec) -> WatchContext | None:
    """What a `watch` run needs: its state and the scheduler (RQ's, in Redis) for its next run."""
    if spec.thread is None:
        return None
    connection = _redis(settings)
    queue = JobQueue(connection, job_timeout_s=settings.job_timeout_s, signing_key=settings.job_signing_key)
    return WatchContext(WatchStore(connection), spec, queue.schedule)


def _audit_refusal(settings: Settings, spec: JobSpec, exc: PolicyRefused) -> None:
    """What the worker's policy refused goes to the audit stream, like the bot's refusals."""
    thread = spec.thread
    AuditLog(_redis(settings), retention_s=settings.audit_days * DAY_S).append(
        AuditEvent(
            kind="policy",
            user=spec.user,
            channel=thread.channel if thread else "",
            verb=spec.command.verb.value,
            allowed=False,
            reason=exc.message,
            text=describe(spec.command),
            cluster=spec.cluster,
        )
    )


def _schedule(settings: Settings, spec: JobSpec, command: Any, delay_s: float) -> str:
    """Queue ``command`` as due work in the same thread, on behalf of the same user."""
    child = JobSpec.new(command, cluster=spec.cluster, user=spec.user, thread=spec.thread)
    JobQueue(_redis(settings), job_timeout_s=settings.job_timeout_s,
             signing_key=settings.job_signing_key).schedule(child, delay_s)
    return child.id


def _audit_job(settings: Settings, spec: JobSpec, kind: str, allowed: bool, reason: str) -> None:
    """What a job itself changed in the cluster (coredns-log), in the audit stream next to the bot's entries."""
    thread = spec.thread
    try:
        AuditLog(_redis(settings), retention_s=settings.audit_days * DAY_S).append(AuditEvent(
            kind=kind, user=spec.user, channel=thread.channel if thread else "", verb=spec.command.verb.value,
            allowed=allowed, reason=reason, text=describe(spec.command), cluster=spec.cluster))
    except redis.RedisError:
        log.warning("audit entry lost: redis unreachable", extra={"job": spec.id, "kind": kind})
def _stop_flag(settings: Settings, job_id: str) -> Callable[[], bool]:
    """Has someone pressed this job's Stop button? (A Redis key the bot sets; a Redis hiccup is a no.)"""

    def requested() -> bool:
        try:
            return bool(_redis(settings).exists(capture_stop_key(job_id)))
        except redis.RedisError:
            return False

    return requested


def _thread_upload(settings: Settings, poster: ThreadPoster, thread: SlackThread) -> Callable[[Path, str, str], str]:
    """A large file from disk into the thread, streamed (workers.capture.upload); says what happened."""

    def deliver(path: Path, filename: str, title: str) -> str:
        from workers.capture.upload import UploadRefused, prepare, stream_upload
        from workers.thread_files import allowed_upload_url

        ready = prepare(path, filename)
        allowed = allowed_upload_url(settings.slack_api_url)
        try:
            stream_upload(poster.client, thread.channel, thread.thread_ts, ready, title, allowed)
        except UploadRefused as exc:
            return f"not attached: {exc.message}"
        return f"`{ready.filename}` ({ready.size / 1024 / 1024:.1f} MiB{', gzip' if ready.compressed else ''})"

    return deliver


def run_job(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: run one job and answer in its thread; returns the JSON result."""
    ctx = _ctx()
    spec = JobSpec.from_dict(payload)
    verb = spec.command.verb.value
    poster = _poster(ctx.settings, spec)
    mark = emoji(spec.command)
    started, started_at = time.monotonic(), time.time()
    workdir = Path(tempfile.mkdtemp(prefix=f"aksdns-{spec.id[:8]}-"))
    log.info("job started", extra={"job": spec.id, "verb": verb, "user": spec.user, "cluster": spec.cluster})

    def progress(text: str) -> None:
        if poster:
            poster.progress(f"{mark} `{verb}` on `{spec.cluster}`: {text}")

    thread = spec.thread
    store = _store(ctx.settings)
    previous = (
        store.previous_basis(spec.cluster, thread.channel, thread.thread_ts, spec.command.to_dict()) if thread else None
    )
    env = replace(
        ctx.env,
        progress=progress,
        workdir=workdir,
        source="slack" if thread else "cli",
        job_id=spec.id,
        requested_by=spec.user,
        previous=previous,
        thread_history=(lambda: store.incident_history(thread.channel, thread.thread_ts)) if thread else list,
        job_thread=thread.thread_ts if thread else "",
        watches=_watch_context(ctx.settings, spec),
        schedule=lambda command, delay_s: _schedule(ctx.settings, spec, command, delay_s),
        audit=lambda kind, allowed, reason: _audit_job(ctx.settings, spec, kind, allowed, reason),
    )
    env.stop_requested = _stop_flag(ctx.settings, spec.id)
    if poster and thread:
        env.post_report = lambda report: poster.post(render_blocks(report))
        env.deliver_file = _thread_upload(ctx.settings, poster, thread)
    if poster and thread:
        client = poster.client
        wanted = getattr(spec.command, "files", ())
        env.thread_files = lambda: fetch_thread_captures(
            client,
            thread,
            workdir,
            token=ctx.settings.slack_bot_token,
            api_url=ctx.settings.slack_api_url,
            wanted=tuple(wanted),
        )
    progress("running…")
    try:
        report = jobs.run(spec.command, env)
        elapsed = time.monotonic() - started
        if poster:
            add_thread_buttons(spec.command, report)
        outcome, recorded = None, True
        if not report.quiet:  # recorded before it is posted: `again` or a handoff right after it sees it
            outcome = _outcome(spec, started_at, report.status.value, report.summary, report)
            recorded = _record(ctx.settings, spec, outcome, report.basis, wait_s=0)
        if poster:
            if not report.quiet:
                poster.post(render_blocks(report))
            poster.status(f"{report.status.mark} `{verb}` done in {elapsed:.1f}s — {report.summary}")
        if outcome is not None and not recorded:
            # Redis is down: the answer went to the thread first (a wait here could outlast the
            # job's time-out and lose it); the record waits for Redis within the time left.
            recorded = _record(ctx.settings, spec, outcome, report.basis, wait_s=_time_left_s(ctx.settings, started))
        log.info("job done", extra={"job": spec.id, "verb": verb, "seconds": round(elapsed, 3)})
        result = {"status": report.status.value, "summary": report.summary, "data": report.data}
        _keep_unless_up(ctx.settings, spec, result, outcome, report.basis, recorded)
        return result
    except AksDnsError as exc:
        # Expected failures (bad file, 403, nothing to analyze): a clear line, job "done".
        log.info("job ended with a user error", extra={"job": spec.id, "error": exc.message})
        if isinstance(exc, PolicyRefused):
            _audit_refusal(ctx.settings, spec, exc)
        if poster:
            poster.reply(f"❌ {user_message(exc)}")
            poster.status(f"❌ `{verb}` could not finish: {user_message(exc)}")
        outcome = _outcome(spec, started_at, "error", user_message(exc))
        recorded = _record(ctx.settings, spec, outcome, wait_s=_time_left_s(ctx.settings, started))
        result = {"status": "error", "summary": user_message(exc), "data": {}}
        _keep_unless_up(ctx.settings, spec, result, outcome, None, recorded)
        return result
    finally:
        _release(ctx.settings, payload.get("dedup_key"))
        shutil.rmtree(workdir, ignore_errors=True)


class WorkHorseEnded(AksDnsError):
    """The process running a job ended without an answer (RQ's main process saw it go)."""


def horse_end(wait_status: int | None, ran_s: float, timeout_s: float) -> str:
    """Why a job's process ended, as the thread reads it (``wait_status`` as ``os.wait4`` gave it)."""
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        if number == signal.SIGKILL:
            if timeout_s > 0 and ran_s > timeout_s:
                return f"its process was stopped after running past its {int(timeout_s)} s time-out"
            # The kernel's OOM killer sends SIGKILL, and a container at its memory limit is its usual target.
            return ("its process was killed (SIGKILL), most often at the worker's memory limit: "
                    "`kubectl describe pod` on the worker shows OOMKilled")
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"its process ended on {name}"
    if wait_status is not None and os.WIFEXITED(wait_status):
        return f"its process exited with code {os.WEXITSTATUS(wait_status)} before answering"
    return "its process ended before answering"


def on_horse_killed(job: Any, wait_status: int | None, ran_s: float) -> None:
    """RQ reports a work-horse that dies (OOM-killed, crashed, stopped past its time-out) to no
    callback: the thread would show "running…" for good. Report it as RQ's own failures are."""
    reason = horse_end(wait_status, ran_s, float(getattr(job, "timeout", 0) or 0))
    on_failure(job, None, WorkHorseEnded, WorkHorseEnded(reason), None)


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
        worker_metrics.abandoned(spec.command.verb.value)  # found by this worker's main process
    else:
        reason = user_message(exc_value) if isinstance(exc_value, BaseException) else "an internal error"
    log.error("job failed", extra={"job": spec.id, "verb": spec.command.verb.value, "reason": name})
    poster = _poster(ctx.settings, spec)
    if poster:
        verb = spec.command.verb.value
        poster.reply(f"❌ `{verb}` failed: {reason}. Nothing else was changed; you can run it again.")
        poster.status(f"❌ `{verb}` failed: {reason}")
    started_at = job.started_at.timestamp() if getattr(job, "started_at", None) else time.time()
    _record(ctx.settings, spec, _outcome(spec, started_at, "failed", reason))
    _release(ctx.settings, payload.get("dedup_key"))
    if isinstance(spec.command, WatchCommand):  # one failed run does not end a watch: the next is scheduled
        from workers.jobs import watch

        context = _watch_context(ctx.settings, spec)
        if context is not None:
            watch.after_failure(spec.command, context)
