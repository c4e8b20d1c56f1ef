"""From an authorized command to a queued job with its parent message in the channel."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from aksdns.commands import Command
from aksdns.describe import describe, emoji
from aksdns.errors import AksDnsError, QueueUnavailable
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.keys import dedup_key
from aksdns.queue import JobQueue
from aksdns.settings import Settings
from aksdns.slackclient import POST_ERRORS, SlackFailure, classify

log = logging.getLogger(__name__)

def could_not_post(failure: SlackFailure) -> str:
    """What the user is told when the parent message cannot be posted (nothing was queued)."""
    if failure.not_in_channel:
        return "I cannot post in this channel: invite me with `/invite @aksdns` and try again."
    if failure.transient:
        return (f"Slack is not taking my messages right now ({failure.reason}), so nothing was queued. "
                "Try again in a minute.")
    return f"Slack refused my message ({failure.reason}), so nothing was queued."


@dataclass(frozen=True)
class Outcome:
    """What the listener tells the user: ephemeral text, or nothing (the thread speaks)."""

    ephemeral: str | None
    job_id: str | None = None


@dataclass
class Dispatcher:
    """Queues jobs; one instance per bot process, clients injected."""

    settings: Settings
    queue: JobQueue
    client: WebClient

    def dispatch(self, command: Command, *, user: str, channel: str, thread_ts: str | None) -> Outcome:
        """Dedup, post the parent message, enqueue. Never raises: failures become text."""
        cluster = command.cluster or self.settings.cluster
        if cluster not in self.settings.clusters:
            known = ", ".join(sorted(self.settings.clusters))
            return Outcome(f"Unknown cluster `{cluster}`; known clusters: {known}.")
        try:
            self.queue.ping()
        except QueueUnavailable as exc:
            return Outcome(f"❌ {exc.message}")
        key = dedup_key(cluster, channel, thread_ts, command)
        try:
            duplicate = self.queue.claim(key, json.dumps({"job_id": "pending"}))
        except QueueUnavailable as exc:
            return Outcome(f"❌ {exc.message}")
        if duplicate is not None:
            where = self._permalink(duplicate.channel, duplicate.status_ts)
            return Outcome(f"The same `{command.verb.value}` is already queued or running here{where}.")
        text = f"{emoji(command)} `{describe(command)}` queued by <@{user}> on cluster `{cluster}`"
        try:
            parent = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
        except POST_ERRORS as exc:  # after the client's own bounded retries of 429 and 5xx
            self.queue.release(key)
            failure = classify(exc)
            log.warning("parent message failed", extra={"channel": channel, "error": failure.reason})
            return Outcome(could_not_post(failure))
        status_ts = str(parent["ts"])
        spec = JobSpec.new(
            command, cluster=cluster, user=user, thread=SlackThread(channel, thread_ts or status_ts, status_ts)
        )
        try:
            self.queue.enqueue(spec, dedup=key)
        except AksDnsError as exc:
            self.queue.release(key)
            self._update(channel, status_ts, f"❌ `{command.verb.value}` was not queued: {exc.message}")
            return Outcome(f"❌ {exc.message}")
        log.info("job queued", extra={"job": spec.id, "verb": command.verb.value, "user": user, "channel": channel})
        return Outcome(None, spec.id)

    def _update(self, channel: str, ts: str, text: str) -> None:
        try:
            self.client.chat_update(channel=channel, ts=ts, text=text)
        except (SlackApiError, SlackClientError, OSError):
            log.warning("chat.update failed", extra={"channel": channel})

    def _permalink(self, channel: str, ts: str) -> str:
        if not channel or not ts:
            return ""
        try:
            link = self.client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
        except (SlackApiError, SlackClientError, OSError):
            return ""
        return f": <{link}|see it here>" if link else ""
