"""Posting to the incident thread with slack_sdk (workers never import slack_bolt)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from aksdns.jobspec import SlackThread
from workers.render.blocks import SlackMessage

log = logging.getLogger(__name__)
SLACK_TIMEOUT_S = 15


def make_client(token: str, api_url: str) -> WebClient:
    """A Web API client with a timeout, pointed at Slack or its local stand-in."""
    return WebClient(token=token, base_url=api_url, timeout=SLACK_TIMEOUT_S)


@dataclass
class ThreadPoster:
    """Writes one job's progress and results into its thread.

    Posting failures are logged, never raised: a job whose answer cannot be posted has
    still run, and its result stays in Redis for ``result_ttl``.
    """

    client: WebClient
    thread: SlackThread

    def status(self, text: str) -> None:
        """Rewrite the parent message (chat.update) to show progress."""
        try:
            self.client.chat_update(channel=self.thread.channel, ts=self.thread.status_ts, text=text)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("chat.update failed", extra={"error": _describe(exc)})

    def reply(self, text: str) -> None:
        """A plain threaded reply (errors, notes)."""
        try:
            self.client.chat_postMessage(
                channel=self.thread.channel, thread_ts=self.thread.thread_ts, text=text
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("chat.postMessage failed", extra={"error": _describe(exc)})

    def post(self, message: SlackMessage) -> None:
        """The result as a threaded message, then its files in the same thread."""
        try:
            self.client.chat_postMessage(
                channel=self.thread.channel,
                thread_ts=self.thread.thread_ts,
                text=message.text,
                blocks=message.blocks,
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("chat.postMessage failed", extra={"error": _describe(exc)})
            return
        if not message.files:
            return
        try:
            self.client.files_upload_v2(
                channel=self.thread.channel,
                thread_ts=self.thread.thread_ts,
                file_uploads=[
                    {"content": f.content, "filename": f.filename, "title": f.title} for f in message.files
                ],
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("files upload failed", extra={"error": _describe(exc)})
            self.reply("⚠️ The attachments could not be uploaded; the results above are complete.")


def _describe(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "slack_error"))
    return type(exc).__name__
