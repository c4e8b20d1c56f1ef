"""Posting to the incident thread with slack_sdk (workers never import slack_bolt).

Slack's 429s and 5xx are retried by the client (bounded, :mod:`aksdns.slackclient`). What
still does not go through is not lost: the poster keeps it in the :class:`~workers.outbox.Outbox`
(Redis) and, from then on, keeps the job's later messages there too, in order, without waiting
on Slack again; the worker's maintenance pass posts them once Slack answers. Progress updates
of the parent message are coalesced (at most one a second; only the latest is ever kept).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from slack_sdk import WebClient

from aksdns.jobspec import JobSpec, SlackThread
from aksdns.queue import connect
from aksdns.settings import Settings
from aksdns.slackclient import POST_ERRORS, SlackFailure, classify, web_client
from workers.outbox import Outbox, Refused, Undelivered, decode_files, encode_files
from workers.render.blocks import SlackMessage

log = logging.getLogger(__name__)
SLACK_TIMEOUT_S = 15
SLACK_RETRIES = 3
SLACK_MAX_WAIT_S = 30.0  # a job waits this long at most on one Retry-After, then keeps the message
FLUSH_TIMEOUT_S = 5  # the maintenance pass must not hang on a Slack that does not answer
PROGRESS_MIN_INTERVAL_S = 1.0  # chat.update is rate limited (Tier 3); progress is coalesced to 1/s
ATTACHMENTS_FAILED = "⚠️ The attachments could not be uploaded; the results above are complete."


# A job's scratch directory (workers.runner: tempfile.mkdtemp(prefix="aksdns-<job>-")): its path says
# nothing to the thread and tells a reader about the worker's file system; file names stay.
_WORKDIR_RE = re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + r"/aksdns-[A-Za-z0-9_-]+/")


def public_text(text: str) -> str:
    """``text`` without the worker's temporary paths (``/tmp/aksdns-1a2b…/00-dns.pcap`` → ``00-dns.pcap``)."""
    return _WORKDIR_RE.sub("", text)


def _public(op: dict[str, Any]) -> dict[str, Any]:
    out = {**op, "text": public_text(str(op.get("text", "")))}
    if op.get("blocks"):
        out["blocks"] = json.loads(public_text(json.dumps(op["blocks"])))
    return out


def make_client(token: str, api_url: str) -> WebClient:
    """A Web API client with a timeout and bounded retries, pointed at Slack or its local stand-in."""
    return web_client(token, api_url, timeout_s=SLACK_TIMEOUT_S, retries=SLACK_RETRIES, max_wait_s=SLACK_MAX_WAIT_S)


def flush_client(token: str, api_url: str) -> WebClient:
    """For the maintenance pass: short time-outs, one retry, no long Retry-After sleeps."""
    return web_client(token, api_url, timeout_s=FLUSH_TIMEOUT_S, retries=1, max_wait_s=2.0)


def thread_poster(settings: Settings, spec: JobSpec) -> ThreadPoster | None:
    """The poster of one job's thread, with the cluster's outbox behind it (None: nothing to post)."""
    if spec.thread is None or not settings.slack_bot_token:
        return None
    outbox = Outbox(connect(settings.redis_url), spec.cluster)
    return ThreadPoster(make_client(settings.slack_bot_token, settings.slack_api_url), spec.thread, outbox, spec.id)


def deliver(client: WebClient, thread: SlackThread, op: dict[str, Any]) -> dict[str, Any] | None:
    """Post one message; None when all of it went out, else what is left (its files).

    Raises Undelivered while Slack does not take messages, Refused when it never will.
    """
    kind = op.get("kind")
    if kind in {"reply", "post"}:
        refused = _call(lambda: client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread_ts,
                                                        text=str(op.get("text", "")), blocks=op.get("blocks") or None))
        if refused is not None:
            raise Refused(refused.reason)
        if op.get("dropped_files"):
            _note(client, thread, f"⚠️ {op['dropped_files']} attachment(s) were too large to keep while Slack "
                                  "was unavailable; run the command again for them.")
    if not op.get("files"):
        return None
    files_op = {"kind": "files", "files": op["files"]}
    if kind == "files":
        _upload(client, thread, files_op)
        return None
    try:
        _upload(client, thread, files_op)
    except Undelivered:
        return files_op  # the message is out: only its files are left for later
    return None


def _call(call: Callable[[], object]) -> SlackFailure | None:
    """Run one Slack call: None when it went through, Slack's refusal when it never will.

    Raises Undelivered when Slack does not take it now (after the client's own retries).
    """
    try:
        call()
    except POST_ERRORS as exc:
        failure = classify(exc)
        if failure.transient:
            raise Undelivered(failure.reason, failure.retry_after_s) from None
        return failure
    return None


def _upload(client: WebClient, thread: SlackThread, op: dict[str, Any]) -> None:
    files = decode_files(op["files"])
    refused = _call(lambda: client.files_upload_v2(channel=thread.channel, thread_ts=thread.thread_ts,
                                                   file_uploads=files))
    if refused is not None:
        log.warning("files upload failed", extra={"error": refused.reason})
        _note(client, thread, ATTACHMENTS_FAILED)


def update(client: WebClient, thread: SlackThread, text: str) -> None:
    """Rewrite the parent message; Undelivered while Slack does not take it."""
    refused = _call(lambda: client.chat_update(channel=thread.channel, ts=thread.status_ts, text=text))
    if refused is not None:
        log.warning("chat.update failed", extra={"error": refused.reason})


def flush_outbox(settings: Settings, *, owner: str) -> int:
    """Post what the cluster's outbox holds and is due (the worker's maintenance pass); never raises."""
    if not settings.slack_bot_token:
        return 0
    client = flush_client(settings.slack_bot_token, settings.slack_api_url)
    outbox = Outbox(connect(settings.redis_url), settings.cluster)
    try:
        return outbox.flush(lambda thread, op: deliver(client, thread, op),
                            lambda thread, text: update(client, thread, text), now=time.time(), owner=owner)
    except (redis.RedisError, ValueError, KeyError, TypeError) as exc:  # the next pass tries again
        log.warning("outbox flush skipped", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
        return 0


def _note(client: WebClient, thread: SlackThread, text: str) -> None:
    try:
        client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread_ts, text=text)
    except POST_ERRORS as exc:
        log.warning("note not posted", extra={"error": classify(exc).reason})


@dataclass
class ThreadPoster:
    """Writes one job's progress and results into its thread; never raises, never drops silently."""

    client: WebClient
    thread: SlackThread
    outbox: Outbox | None = None
    job_id: str = ""
    held: bool = field(default=False, init=False)  # Slack failed: the rest of this job goes to the outbox
    _noted: bool = field(default=False, init=False)  # the thread is told its answer comes late
    _last_progress: float = field(default=0.0, init=False)

    def progress(self, text: str) -> None:
        """Rewrite the parent message with progress, at most once a second."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_MIN_INTERVAL_S:
            return  # coalesced: a later progress line or the final status follows
        self._last_progress = now
        self.status(text)

    def status(self, text: str) -> None:
        """Rewrite the parent message (chat.update)."""
        text = public_text(text)
        if self.held:
            self._hold_status(text, "held")
            return
        try:
            update(self.client, self.thread, text)
        except Undelivered as exc:
            self._hold_status(text, exc.reason)

    def reply(self, text: str) -> None:
        """A plain threaded reply (errors, notes)."""
        self._send({"kind": "reply", "text": text})

    def post(self, message: SlackMessage) -> None:
        """The result as a threaded message, then its files in the same thread."""
        files = encode_files([{"filename": f.filename, "title": f.title, "content": f.content} for f in message.files])
        self._send({"kind": "post", "text": message.text, "blocks": message.blocks, "files": files})

    def _send(self, op: dict[str, Any]) -> None:
        op = _public(op)
        if self.held:
            self._hold(op, "held")
            return
        try:
            rest = deliver(self.client, self.thread, op)
        except Undelivered as exc:
            self._hold(op, exc.reason)
            return
        except Refused as exc:
            log.warning("chat.postMessage failed", extra={"error": str(exc)})
            return
        if rest is not None:
            self._hold(rest, "files upload failed")

    def _hold(self, op: dict[str, Any], reason: str) -> None:
        self.held = True
        if self.outbox is None:
            log.error("Slack did not take a message and there is no outbox", extra={"reason": reason})
            return
        if not self._noted:
            self._noted = True
            when = time.strftime("%H:%M UTC", time.gmtime())
            note = (f"⏳ Slack did not take this answer when it was ready ({reason}, {when}); "
                    "it is posted now that Slack answers again.")
            self.outbox.hold(self.job_id, self.thread, {"kind": "reply", "text": note}, reason=reason)
        self.outbox.hold(self.job_id, self.thread, op, reason=reason)

    def _hold_status(self, text: str, reason: str) -> None:
        self.held = True
        if self.outbox is None:
            log.error("Slack did not take a status update and there is no outbox", extra={"reason": reason})
            return
        self.outbox.hold_status(self.job_id, self.thread, text, reason=reason)
