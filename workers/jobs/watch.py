"""`watch CMD --every M --for H`: run a read-only command again and again, post only what changed.

Each run is one job: it runs the watched command (``workers.jobs.run``, compared with the watch's
previous run), keeps the new basis in the watch's state (``aksdns.watches``), and schedules the
next run with RQ's scheduler, so the chain lives in Redis and survives a worker restart. The first
run posts the command's whole reply with a Stop button; later runs reply only when something
changed (the parent message says "no change" otherwise); the last one says the watch ended.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from aksdns import grammar
from aksdns.commands import WatchCommand
from aksdns.errors import AksDnsError
from aksdns.jobspec import JobSpec
from aksdns.spans import span_text
from aksdns.watches import Watch, WatchContext, new_watch, run_job_id, watch_id_of
from workers import jobs
from workers.analysis import rerun_diff
from workers.analysis.rerun_diff import Basis
from workers.jobenv import JobEnv
from workers.report import Button, Markdown, Report, Section, Status

STOP = "aksdns_watch_stop"


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(epoch))


def stop_button(watch_id: str) -> Button:
    return Button(STOP, "Stop watching", json.dumps({"watch": watch_id}), "danger")


def next_run_at(watch: Watch, now: float) -> float | None:
    """When the next run starts (every ``every_s`` from the start), or None when the watch is over."""
    at = watch.started_at + watch.runs * watch.every_s
    at = max(at, now)
    return None if watch.stopped or at > watch.until else at


def _schedule_next(watch: Watch, context: WatchContext, now: float) -> Watch:
    at = next_run_at(watch, now)
    if at is None:
        return watch
    job_id = run_job_id(watch.id, watch.runs + 1)
    spec = JobSpec(id=job_id, command=context.spec.command, cluster=context.spec.cluster,
                   user=context.spec.user, thread=context.spec.thread)
    context.schedule(spec, at - now)
    return replace(watch, next_job=job_id)


def _start(cmd: WatchCommand, context: WatchContext, now: float) -> Watch:
    thread = context.spec.thread
    if thread is None:
        raise AksDnsError("`watch` answers in a Slack thread; from the CLI, run the command itself")
    return new_watch(
        watch_id_of(context.spec.id),
        channel=thread.channel,
        thread_ts=thread.thread_ts,
        status_ts=thread.status_ts,
        cluster=context.spec.cluster,
        user=context.spec.user,
        target=cmd.target,
        every_s=cmd.every_s,
        for_s=cmd.for_s,
        now=now,
    )


def execute(cmd: WatchCommand, env: JobEnv) -> Report:
    context = env.watches
    if context is None:
        raise AksDnsError("`watch` answers in a Slack thread; from the CLI, run the command itself")
    now = time.time()
    watch_id = watch_id_of(context.spec.id)
    watch = context.store.get(watch_id)
    if watch is None:
        if watch_id != context.spec.id:
            raise AksDnsError("this watch's state is gone (it expired); start it again")
        watch = _start(cmd, context, now)
    if watch.stopped:
        return Report(f"watch {cmd.target}", Status.INFO, f"stopped by <@{watch.stopped_by}>", quiet=True)

    inner = replace(grammar.parse(cmd.target), cluster=cmd.cluster)
    previous = watch.basis
    report = jobs.run(inner, replace(env, previous=previous))
    first = watch.runs == 0
    changed = bool(report.changes) or (not first and report.basis is not None and watch.basis is None)
    watch = replace(
        watch,
        runs=watch.runs + 1,
        changes=watch.changes + (1 if changed else 0),
        basis=report.basis if report.basis is not None else watch.basis,
    )
    watch = _schedule_next(watch, context, now)
    context.store.save(watch)
    last = next_run_at(watch, now) is None
    what_changed: list[Section] = []
    if changed and previous is not None and report.basis is not None:
        what_changed = rerun_diff.sections(rerun_diff.diff(Basis.from_dict(previous), Basis.from_dict(report.basis)))
    return _watch_report(cmd, watch, report, what_changed, first=first, last=last)


def _watch_report(
    cmd: WatchCommand, watch: Watch, inner: Report, what_changed: list[Section], *, first: bool, last: bool
) -> Report:
    total = watch.total_runs
    head = f"run {watch.runs}/{total}"
    plan = f"`{cmd.target}` every {span_text(cmd.every_s)} until {_clock(watch.until)}"
    following = "" if last else f"; next run {_clock(watch.started_at + watch.runs * watch.every_s)}"
    if first:
        report = inner
        report.title = f"👀 Watching {cmd.target}"
        report.summary = f"{head}: {inner.summary}"
        report.sections.insert(0, Markdown(f"Watching {plan}. Only changes will be posted here{following}."))
        report.buttons = [stop_button(watch.id)]
        return report
    if last:
        verdict = f"watch over after {watch.runs} runs; {watch.changes} of them saw a change. Last: {inner.summary}"
        sections = [Markdown(f"*Watch of {plan} is over.*"), *what_changed]
        return Report(f"👀 Watch over: {cmd.target}", inner.status, verdict, sections=sections,
                      findings=inner.findings, basis=inner.basis, changes=inner.changes)
    if not what_changed:
        return Report(f"👀 {cmd.target}", inner.status, f"{head}: no change since the previous run{following}",
                      quiet=True, basis=inner.basis)
    summary = f"{head}: changed — {inner.changes[0] if inner.changes else inner.summary}"
    return Report(
        f"👀 Watch {head}: {cmd.target}",
        inner.status,
        summary,
        sections=[*what_changed, Markdown(f"_{inner.summary}_{following}.")],
        buttons=[stop_button(watch.id)],
        findings=inner.findings,
        basis=inner.basis,
        changes=inner.changes,
    )


def after_failure(cmd: WatchCommand, context: WatchContext) -> None:
    """A run failed (killed worker, time-out): count it and schedule the next one, so the watch goes on."""
    watch = context.store.get(watch_id_of(context.spec.id))
    if watch is None or watch.stopped:
        return
    now = time.time()
    watch = _schedule_next(replace(watch, runs=watch.runs + 1), context, now)
    context.store.save(watch)
