"""Commands the bot answers itself, from Redis, without a worker: `again`, `use`, `clusters`, `audit`,
and the Stop button of a `watch`.

The verb registry names these functions (``VerbSpec.bot``); each takes the :class:`Desk` (what the
bot shares with them), the parsed command and who asked where, and returns the text to answer
privately ("" when it answered in the channel itself).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from aksdns import grammar
from aksdns.commands import AgainCommand, AuditCommand, Command, UseCommand, WatchCommand
from aksdns.errors import UsageError
from aksdns.keys import channel_cluster_key, queue_name
from aksdns.liveness import cluster_views
from aksdns.results import AuditLog, ResultsStore
from aksdns.settings import Settings
from aksdns.spans import since_epoch
from aksdns.verbs import spec_of
from aksdns.watches import WatchStore
from bot.authz import Decision
from bot.dispatch import Dispatcher

log = logging.getLogger(__name__)
AUDIT_LINES = 40
NOT_AGAIN = {"again", "handoff", "help", "use", "clusters", "audit", "watch"}  # `again` repeats diagnoses


@dataclass(frozen=True)
class Ask:
    user: str
    channel: str
    thread_ts: str | None  # None: a slash command (no thread)


@dataclass
class Desk:
    settings: Settings
    connection: redis.Redis
    dispatcher: Dispatcher
    client: WebClient
    authorize: Callable[[str, str, Command], Decision]
    audit: Callable[[str, str, str, Command | None, bool, str], None]  # (kind, user, channel, command, allowed, reason)


def answer(desk: Desk, command: Command, ask: Ask) -> str:
    """Run a bot-side command (its registry entry names the function)."""
    target = spec_of(command).bot
    assert target is not None
    module, _, name = target.partition(":")
    import importlib

    function: Callable[[Desk, Any, Ask], str] = getattr(importlib.import_module(module), name)
    try:
        return function(desk, command, ask)
    except redis.RedisError:
        return "❌ Redis (where aksdns keeps its state) is unreachable right now; try again in a minute."


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(epoch))


def _say(desk: Desk, ask: Ask, text: str) -> bool:
    try:
        desk.client.chat_postMessage(channel=ask.channel, thread_ts=ask.thread_ts, text=text)
        return True
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("reply failed", extra={"channel": ask.channel, "error": type(exc).__name__})
        return False


# ---------------------------------------------------------------------------- again


def again(desk: Desk, command: AgainCommand, ask: Ask) -> str:
    """The thread's last command (of that kind), queued again: its reply says what changed."""
    if ask.thread_ts is None:
        return "`again` runs a thread's last command again: mention me in the incident thread (`@aksdns again`)."
    history = ResultsStore(desk.connection).history(ask.channel, ask.thread_ts)
    wanted = [o for o in history if o.verb not in NOT_AGAIN and (command.what is None or o.verb == command.what)]
    if not wanted:
        what = f"`{command.what}`" if command.what else "command"
        return f"No {what} has run in this thread yet, so there is nothing to run again."
    last = wanted[-1]
    try:
        rebuilt = grammar.command_from_dict(last.command)
    except UsageError as exc:
        return f"⚠️ The last `{last.verb}` cannot be run again ({exc.message}); type it instead."
    if command.cluster:
        rebuilt = _on(rebuilt, command.cluster)
    elif rebuilt.cluster is None and last.cluster and last.cluster != desk.dispatcher.cluster_for(rebuilt, ask.channel):
        rebuilt = _on(rebuilt, last.cluster)  # again where it ran, though the channel's default changed since
    decision = desk.authorize(ask.user, ask.channel, rebuilt)
    desk.audit("again", ask.user, ask.channel, rebuilt, decision.allowed, decision.reason)
    if not decision.allowed:
        return f"🚫 {decision.reason}"
    outcome = desk.dispatcher.dispatch(rebuilt, user=ask.user, channel=ask.channel, thread_ts=ask.thread_ts)
    if outcome.refused:
        desk.audit("again", ask.user, ask.channel, rebuilt, False, outcome.refused)
    return outcome.ephemeral or ""


def _on(command: Command, cluster: str) -> Command:
    from dataclasses import replace

    return replace(command, cluster=cluster)


# ---------------------------------------------------------------------------- use, clusters


def use(desk: Desk, command: UseCommand, ask: Ask) -> str:
    current = desk.dispatcher.cluster_for(UseCommand(), ask.channel)
    if command.target is None:
        return f"🎯 Commands in this channel go to cluster `{current}` unless they say `--cluster C`."
    if command.target not in desk.settings.clusters:
        known = ", ".join(sorted(desk.settings.clusters))
        return f"Unknown cluster `{command.target}`; known clusters: {known}."
    if command.target == desk.settings.cluster:
        desk.connection.delete(channel_cluster_key(ask.channel))
    else:
        desk.connection.set(channel_cluster_key(ask.channel), command.target)
    said = _say(desk, ask, f"🎯 <@{ask.user}> set this channel's default cluster to `{command.target}` "
                           f"(was `{current}`).")
    return "" if said else f"🎯 This channel's default cluster is now `{command.target}`."


def clusters(desk: Desk, command: Command, ask: Ask) -> str:
    views = cluster_views(desk.connection, desk.settings.clusters)
    current = desk.dispatcher.cluster_for(UseCommand(), ask.channel)
    lines = ["*Clusters* (workers that beat within 30 s)"]
    now = time.time()
    for v in views:
        mark = "✅" if v.workers else "❌"
        here = " ← this channel's default" if v.cluster == current else ""
        lines.append(f"{mark} `{v.cluster}`{here}: {len(v.workers)} worker(s), {v.busy} busy, "
                     f"{v.queued} job(s) queued")
        for w in v.workers:
            job = f", running job {w.job[:8]}" if w.job else ", idle"
            lines.append(f"    • {w.host} (pid {w.pid}) aksdns {w.version}, beat {now - w.at:.0f} s ago, "
                         f"up {(now - w.started_at) / 60:.0f} min{job}")
        if v.cluster not in desk.settings.clusters:
            lines.append("    _(not in AKSDNS_CLUSTERS: the bot does not send it commands)_")
    if not views:
        lines.append("No cluster has a live worker.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- audit


def audit(desk: Desk, command: AuditCommand, ask: Ask) -> str:
    since = since_epoch(command.since)
    events = AuditLog(desk.connection).read(since=since, user=command.user, limit=2000)
    who = f" by <@{command.user}>" if command.user else ""
    head = f"*Audit*{who} since {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(since))}: {len(events)} entries"
    if not events:
        return head
    shown = events[-AUDIT_LINES:]
    lines = [head + (f" (the last {len(shown)})" if len(shown) < len(events) else "")]
    for e in shown:
        mark = "✅" if e.allowed else "🚫"
        text = f" `{e.text}`" if e.text else ""
        where = f" on {e.cluster}" if e.cluster else ""
        lines.append(f"{mark} {time.strftime('%m-%d %H:%M', time.gmtime(e.at))} <@{e.user}> {e.kind}{text}{where}"
                     f" in <#{e.channel}> — {e.reason}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- watch Stop


def stop_watch(desk: Desk, value: str, ask: Ask) -> str:
    """The Stop button of a watch: no further run starts; its next run leaves the schedule."""
    try:
        watch_id = str(json.loads(value)["watch"])
    except (ValueError, KeyError, TypeError):
        return "⚠️ That button no longer works."
    store = WatchStore(desk.connection)
    watch = store.get(watch_id)
    if watch is None:
        return "That watch is over (or expired)."
    command = WatchCommand(cluster=watch.cluster, target=watch.target, every_s=watch.every_s)
    decision = desk.authorize(ask.user, ask.channel, command)
    desk.audit("button", ask.user, ask.channel, command, decision.allowed, f"stop watch: {decision.reason}")
    if not decision.allowed:
        return f"🚫 {decision.reason}"
    if watch.stopped:
        return f"That watch was already stopped by <@{watch.stopped_by}>."
    stopped = store.stop(watch_id, ask.user)
    if watch.next_job:
        _unschedule(desk.connection, watch.cluster, watch.next_job)
    runs = stopped.runs if stopped else watch.runs
    text = f"⏹ <@{ask.user}> stopped watching `{watch.target}` after {runs} run(s)."
    _say(desk, Ask(ask.user, watch.channel, watch.thread_ts), text)
    try:
        desk.client.chat_update(channel=watch.channel, ts=watch.status_ts,
                                text=f"⏹ `watch {watch.target}` stopped by <@{ask.user}> after {runs} run(s)")
    except (SlackApiError, SlackClientError, OSError):
        log.warning("chat.update failed", extra={"channel": watch.channel})
    return ""


def _unschedule(connection: redis.Redis, cluster: str, job_id: str) -> None:
    """Take a watch's next run off RQ's schedule (a run that starts anyway sees the stop and ends)."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry
    from rq.serializers import JSONSerializer

    try:
        queue = Queue(queue_name(cluster), connection=connection, serializer=JSONSerializer)
        ScheduledJobRegistry(queue=queue).remove(job_id, delete_job=True)  # type: ignore[no-untyped-call]
    except Exception as exc:  # the stop flag is what counts; this only saves a run
        log.info("scheduled watch run not removed", extra={"job": job_id, "error": type(exc).__name__})
