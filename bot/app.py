"""The Bolt app: listeners that ack, parse, authorize and hand over to the dispatcher.

Slash commands cannot be used inside threads, so an @mention runs the same grammar and
answers in the thread it was written in.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from slack_bolt import Ack, App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from aksdns import grammar, metrics
from aksdns.commands import Command, HelpCommand
from aksdns.describe import describe
from aksdns.errors import NotAvailableYet, QueueUnavailable, UsageError
from aksdns.help import help_text
from aksdns.keys import event_key
from aksdns.results import AuditEvent
from aksdns.settings import Settings
from aksdns.verbs import spec_of
from bot import capture_flow, incident
from bot.authz import Decision, GroupDirectory, Policy, authorize
from bot.dispatch import Dispatcher
from bot.incident import Desk

log = logging.getLogger(__name__)
EVENT_DEDUP_TTL_S = 600
FOLLOWUP_THREADS = 4


@dataclass(frozen=True)
class Interpretation:
    """A parsed command ready to dispatch, or the text to answer instead."""

    command: Command | None
    reply: str | None
    refused: str = ""  # why a command was not accepted (for the audit); "" for help and accepted ones
    parsed: Command | None = None  # a command that parsed but was not accepted (not available yet)


def _unconfirmed(command: Command | None) -> Command | None:
    """Typed text never skips a confirmation (`--yes` is for the command line): Slack asks with a button."""
    if command is not None and getattr(command, "confirmed", False):
        return dataclasses.replace(command, confirmed=False)  # type: ignore[call-arg]
    return command


def interpret(text: str, *, prefix: str) -> Interpretation:
    """Text → command, or the help / usage-error / not-available answer (pure)."""
    try:
        command = grammar.parse(grammar.unescape_slack(text))
    except UsageError as exc:
        hint = f" — try `{prefix} help {exc.command}`" if exc.command else f" — try `{prefix} help`"
        return Interpretation(None, f"⚠️ {exc.message}{hint}", refused=exc.message)
    if isinstance(command, HelpCommand):
        return Interpretation(None, help_text(command.topic, prefix=prefix))
    if not spec_of(command).available:
        message = NotAvailableYet(command.verb.value).message
        return Interpretation(None, message, refused=message, parsed=command)
    return Interpretation(_unconfirmed(command), None)


class AksDnsApp:
    """Builds the Bolt app and holds what its listeners share."""

    def __init__(
        self,
        settings: Settings,
        dispatcher: Dispatcher,
        *,
        client: WebClient,
        event_seen: Callable[[str], bool] | None = None,
        before_followup: Callable[[], object] | None = None,
        audit: Callable[[AuditEvent], None] | None = None,
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.policy = Policy.from_settings(settings)
        self.directory = (
            GroupDirectory(self._group_members, settings.privileged_groups) if settings.privileged_groups else None
        )
        self.event_seen = event_seen or (lambda _event_id: False)
        self.before_followup = before_followup  # HTTP mode: let in-flight acks go first
        self.audit = audit  # the audit stream (aksdns.results.AuditLog.append)
        self.app = App(
            token=settings.slack_bot_token,
            signing_secret=settings.slack_signing_secret,
            client=client,
            # Ack first, from the pure steps only; the queueing runs afterwards on the follow-up
            # pool. (With process_before_response=False Bolt polls for the ack every 10 ms.)
            process_before_response=True,
            token_verification_enabled=bool(settings.slack_bot_token),
        )
        # Follow-up work (parent message, Redis) runs on a small pool of its own: under a burst,
        # the threads answering Slack are not outnumbered by threads doing follow-ups, so acks
        # keep their place in the interpreter and stay fast; follow-ups queue up behind.
        self.followups = ThreadPoolExecutor(max_workers=FOLLOWUP_THREADS, thread_name_prefix="aksdns-followup")
        self.app.command("/aksdns")(self.ack_slash_command)
        self.app.event("app_mention")(self._later(self.on_mention))
        self.app.action("aksdns_rerun")(self._later(self.on_button))
        self.app.action("aksdns_capture")(self._later(self.on_button))
        self.app.action("aksdns_handoff")(self._later(self.on_button))
        self.app.action("aksdns_watch_stop")(self._later(self.on_stop))
        self.app.action(capture_flow.START)(self._later(self.on_start))
        self.app.action(capture_flow.CANCEL)(self._later(self.on_cancel))
        self.app.action(capture_flow.STOP)(self._later(self.on_capture_stop))
        self.app.use(self._time_ack)
        # coredns-log's confirmation: Start runs the confirmed command (authorized again for the clicker).
        self.app.action("aksdns_confirm")(self._later(self.on_button))
        self.app.action("aksdns_cancel")(self._later(self.on_confirm_cancel))
        self.app.error(self.on_error)
        self.desk = (
            Desk(settings, dispatcher.queue.connection, dispatcher, client,
                 lambda user, channel, command: self._authorize(user, channel, command), self._audit)
        )

    # -- listeners -------------------------------------------------------------------------
    def ack_slash_command(self, ack: Ack, body: dict[str, Any]) -> None:
        """Within Slack's 3 s: parse and authorize (pure), answer errors and help ephemerally."""
        user, channel = str(body.get("user_id", "")), str(body.get("channel_id", ""))
        step = interpret(str(body.get("text", "")), prefix="/aksdns")
        if step.command is None:
            ack(text=step.reply or "", response_type="ephemeral")
            metrics.command(step.parsed.verb.value if step.parsed else "", "refused" if step.refused else "help")
            if step.refused:
                self._submit(self._audit, "command", user, channel, step.parsed, False, step.refused)
            return
        decision = authorize(self.policy, self.directory, user=user, channel=channel, command=step.command)
        if not decision.allowed:
            ack(text=f"🚫 {decision.reason}", response_type="ephemeral")
            metrics.command(step.command.verb.value, "denied")
            self._submit(self._audit, "command", user, channel, step.command, False, decision.reason)
            return
        ack()
        # The audit write waits for the follow-up pool too: Redis is never on the ack's path.
        self._submit(self._audit, "command", user, channel, step.command, True, decision.reason)
        self._submit(self.on_slash_command, step.command, user, channel)

    def on_slash_command(self, command: Command, user: str, channel: str) -> None:
        """After the ack: post the parent message and queue the job (or answer a bot-side command)."""
        self._run(command, "command", user, channel, None)

    def _run(self, command: Command, kind: str, user: str, channel: str, thread_ts: str | None) -> None:
        """An authorized command: answered here (`use`, `clusters`, ...), confirmed first (`capture`) or queued."""
        if spec_of(command).confirm:
            self.confirm(command, user, channel, thread_ts)
            return
        if spec_of(command).bot is not None:
            text = incident.answer(self.desk, command, incident.Ask(user, channel, thread_ts))
            metrics.command(command.verb.value, "answered")
        else:
            outcome = self.dispatcher.dispatch(command, user=user, channel=channel, thread_ts=thread_ts)
            text = outcome.ephemeral or ""
            if outcome.refused:
                self._audit(kind, user, channel, command, False, outcome.refused)
        if text:
            self._ephemeral(channel, user, thread_ts, text)

    def on_mention(self, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        event_id = str(body.get("event_id", ""))
        if event_id and self.event_seen(event_id):
            return  # Slack retried an event we already handled
        user, channel = str(event.get("user", "")), str(event.get("channel", ""))
        # Answer in the thread the mention was written in, or start one under it.
        thread_ts = str(event.get("thread_ts") or event.get("ts") or "") or None
        step = interpret(str(event.get("text", "")), prefix="@aksdns")
        if step.command is None:
            if step.refused:
                self._audit("mention", user, channel, step.parsed, False, step.refused)
            self._ephemeral(channel, user, thread_ts, step.reply or "")
            return
        decision = authorize(self.policy, self.directory, user=user, channel=channel, command=step.command)
        self._audit("mention", user, channel, step.command, decision.allowed, decision.reason)
        if not decision.allowed:
            metrics.command(step.command.verb.value, "denied")
            self._ephemeral(channel, user, thread_ts, f"🚫 {decision.reason}")
            return
        self._run(step.command, "mention", user, channel, thread_ts)

    def on_button(self, body: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        message = body.get("message") or {}
        thread_ts = str(message.get("thread_ts") or message.get("ts") or "") or None
        try:
            action = (body.get("actions") or [{}])[0]
            # A button's value is data a client can forge: it passes the grammar's checks like typed text.
            command = grammar.command_from_dict(json.loads(str(action.get("value", ""))))
        except UsageError as exc:
            log.warning("button refused", extra={"user": user, "channel": channel, "error": exc.message})
            self._audit("button", user, channel, None, False, f"invalid button value: {exc.message}")
            self._ephemeral(channel, user, thread_ts, f"⚠️ That button's command is not valid ({exc.message}).")
            return
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            self._ephemeral(channel, user, thread_ts, "⚠️ That button no longer works; type the command instead.")
            return
        if not spec_of(command).available:
            self._ephemeral(channel, user, thread_ts, NotAvailableYet(command.verb.value).message)
            return
        # Buttons are authorized again for whoever clicks them.
        decision = authorize(self.policy, self.directory, user=user, channel=channel, command=command)
        self._audit("button", user, channel, command, decision.allowed, decision.reason)
        if not decision.allowed:
            metrics.command(command.verb.value, "denied")
            self._ephemeral(channel, user, thread_ts, f"🚫 {decision.reason}")
            return
        self._run(command, "button", user, channel, thread_ts)

    def on_stop(self, body: dict[str, Any]) -> None:
        """A watch's Stop button."""
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        message = body.get("message") or {}
        thread_ts = str(message.get("thread_ts") or message.get("ts") or "") or None
        value = str(((body.get("actions") or [{}])[0] or {}).get("value", ""))
        text = incident.stop_watch(self.desk, value, incident.Ask(user, channel, thread_ts))
        metrics.command("watch", "stopped")
        if text:
            self._ephemeral(channel, user, thread_ts, text)

    def _authorize(self, user: str, channel: str, command: Command) -> Decision:
        return authorize(self.policy, self.directory, user=user, channel=channel, command=command)

    def _time_ack(self, body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
        """Bolt middleware: how long Slack waits for its answer (listeners ack before follow-ups)."""
        started = time.perf_counter()
        try:
            return next()
        finally:
            kind = "command" if body.get("command") else str(body.get("type") or "event")
            try:
                metrics.get().ack_seconds.labels(kind).observe(time.perf_counter() - started)
            except Exception:  # never let a metric cost an answer
                log.debug("ack latency not observed", exc_info=True)

    def on_confirm_cancel(self, body: dict[str, Any]) -> None:
        """coredns-log's Cancel button: nothing runs; the decision is audited and said in the thread."""
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        message = body.get("message") or {}
        thread_ts = str(message.get("thread_ts") or message.get("ts") or "") or None
        try:
            command: Command | None = grammar.command_from_dict(json.loads(str((body.get("actions") or [{}])[0]
                                                                               .get("value", ""))))
        except (UsageError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            command = None
        self._audit("button", user, channel, command, False, "cancelled by the user")
        self._ephemeral(channel, user, thread_ts, "Cancelled: nothing was changed.")

    # -- guarded commands: confirm, Start / Cancel, Stop (bot.capture_flow) ------------------------
    def confirm(self, command: Command, user: str, channel: str, thread_ts: str | None) -> None:
        """Post the confirmation (what, where, how long) with Start and Cancel; nothing is queued yet."""
        cluster = self.dispatcher.cluster_for(command, channel)
        if cluster not in self.settings.clusters:
            known = ", ".join(sorted(self.settings.clusters))
            self._ephemeral(channel, user, thread_ts, f"Unknown cluster `{cluster}`; known clusters: {known}.")
            return
        text, blocks = capture_flow.confirmation(command, user=user, cluster=cluster)
        try:
            self.app.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("confirmation not posted", extra={"channel": channel, "error": type(exc).__name__})
            self._ephemeral(channel, user, thread_ts,
                            "I cannot post in this channel: invite me with `/invite @aksdns`.")

    def _clicked(self, body: dict[str, Any]) -> tuple[str, str, str, str | None, str]:
        """(user, channel, message ts, thread ts, button value) of a click."""
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        message = body.get("message") or {}
        ts = str(message.get("ts") or (body.get("container") or {}).get("message_ts") or "")
        thread_ts = str(message.get("thread_ts") or "") or None
        value = str(((body.get("actions") or [{}])[0]).get("value", ""))
        return user, channel, ts, thread_ts, value

    def _clicked_command(self, body: dict[str, Any], value: str) -> Command | None:
        user, channel, _ts, thread_ts, _v = self._clicked(body)
        try:
            command = grammar.command_from_dict(json.loads(value))
        except UsageError as exc:
            self._audit("button", user, channel, None, False, f"invalid button value: {exc.message}")
            self._ephemeral(channel, user, thread_ts, f"⚠️ That button's command is not valid ({exc.message}).")
            return None
        except (ValueError, TypeError, KeyError, AttributeError):
            self._ephemeral(channel, user, thread_ts, "⚠️ That button no longer works; type the command instead.")
            return None
        if not spec_of(command).confirm:
            self._ephemeral(channel, user, thread_ts, "⚠️ That button does not start this command.")
            return None
        return command

    def _decide(self, user: str, channel: str, thread_ts: str | None, command: Command, what: str) -> bool:
        decision = authorize(self.policy, self.directory, user=user, channel=channel, command=command)
        self._audit("button", user, channel, command, decision.allowed, f"{what}: {decision.reason}")
        if not decision.allowed:
            self._ephemeral(channel, user, thread_ts, f"🚫 {decision.reason}")
        return decision.allowed

    def on_start(self, body: dict[str, Any]) -> None:
        """Start: authorized again for whoever clicks; then queued in the confirmation's thread."""
        user, channel, ts, thread_ts, value = self._clicked(body)
        command = self._clicked_command(body, value)
        if command is None or not self._decide(user, channel, thread_ts, command, "start"):
            return
        cluster = self.dispatcher.cluster_for(command, channel)
        self._update(channel, ts, *capture_flow.closed(f"⏳ Starting, asked by <@{user}>…"))
        outcome = self.dispatcher.dispatch(command, user=user, channel=channel, thread_ts=thread_ts or ts)
        if outcome.job_id is None:
            self._update(channel, ts, *capture_flow.closed(f"❌ Not started: {outcome.ephemeral or 'not queued'}"))
            if outcome.ephemeral:
                self._ephemeral(channel, user, thread_ts, outcome.ephemeral)
            return
        self._update(channel, ts, *capture_flow.started(command, user=user, cluster=cluster, job_id=outcome.job_id))

    def on_cancel(self, body: dict[str, Any]) -> None:
        user, channel, ts, thread_ts, value = self._clicked(body)
        command = self._clicked_command(body, value)
        if command is None or not self._decide(user, channel, thread_ts, command, "cancel"):
            return
        self._update(channel, ts, *capture_flow.closed(f"✖️ Cancelled by <@{user}>; nothing was started."))

    def on_capture_stop(self, body: dict[str, Any]) -> None:
        """A capture's Stop: authorized like the command itself; the worker sees the flag within a second."""
        user, channel, ts, thread_ts, value = self._clicked(body)
        try:
            job_id, data = capture_flow.read_stop_value(value)
            command = grammar.command_from_dict(data)
        except (UsageError, ValueError, TypeError, KeyError, AttributeError):
            self._ephemeral(channel, user, thread_ts, "⚠️ That Stop button is not valid.")
            return
        if not self._decide(user, channel, thread_ts, command, "stop"):
            return
        try:
            running = self.dispatcher.queue.request_stop(job_id)
        except QueueUnavailable as exc:
            self._ephemeral(channel, user, thread_ts, f"❌ {exc.message}")
            return
        if not running:
            self._update(channel, ts, *capture_flow.closed(f"⏹ That run had already ended (Stop by <@{user}>)."))
            return
        self._update(channel, ts, *capture_flow.closed(f"⏹ Stop requested by <@{user}>; the results follow."))

    def _update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        if not ts:
            return
        try:
            self.app.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("chat.update failed", extra={"channel": channel, "error": type(exc).__name__})

    def on_error(self, error: Exception, body: dict[str, Any]) -> BoltResponse:
        # Never a traceback to the user; the log has it.
        log.error("listener error", exc_info=error)
        return BoltResponse(status=200, body="⚠️ aksdns hit an internal error; it is in the bot's log.")

    # -- helpers -----------------------------------------------------------------------------
    def _later(self, handler: Callable[..., None]) -> Callable[..., None]:
        """A listener that acks at once and runs ``handler(body)`` on the follow-up pool."""

        def listener(ack: Ack, body: dict[str, Any]) -> None:
            ack()
            self._submit(handler, body)

        return listener

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                if self.before_followup is not None and self.before_followup() is False:
                    return  # e.g. a replayed request (bot.guard): nothing to do
                fn(*args)
            except Exception:  # never lost silently: the log has the traceback
                log.exception("follow-up failed")

        self.followups.submit(contextvars.copy_context().run, run)  # the request's context goes along

    def _audit(
        self, kind: str, user: str, channel: str, command: Command | None, allowed: bool, reason: str
    ) -> None:
        """One entry in the audit stream: who asked for what, where, and what was decided."""
        if self.audit is None:
            return
        self.audit(
            AuditEvent(
                kind=kind,
                user=user,
                channel=channel,
                verb=command.verb.value if command else "",
                allowed=allowed,
                reason=reason,
                text=describe(command) if command else "",
                cluster=(command.cluster or self.settings.cluster) if command else "",
            )
        )

    def _ephemeral(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        try:
            self.app.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("ephemeral reply failed", extra={"channel": channel, "error": type(exc).__name__})

    def _group_members(self, group: str) -> list[str]:
        response = self.app.client.usergroups_users_list(usergroup=group)
        return [str(u) for u in response.get("users") or []]


def redis_event_dedup(connection: redis.Redis) -> Callable[[str], bool]:
    """True when an event id was seen before (Slack retries events it thinks we missed)."""

    def seen(event_id: str) -> bool:
        try:
            return not connection.set(event_key(event_id), 1, nx=True, ex=EVENT_DEDUP_TTL_S)
        except redis.RedisError:
            return False  # better a rare double answer than a lost command

    return seen
