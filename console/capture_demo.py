"""`/aksdns capture` as an on-call engineer does it in Slack: type it, read the confirmation, press Start,
let the client make some DNS traffic while it captures, read the thread. Used by `aksdns demo` and by
benchmarks/bench_capture.py; every step is a signed Slack request to the real bot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aksdns.errors import AksDnsError
from console import slackreq
from console.standin import Message, SlackStandIn

START = "aksdns_capture_start"  # bot.capture_flow.START (the console does not import the bot)
DONE_MARKS = ("done in", "❌", "failed", "could not finish")


@dataclass
class CaptureThread:
    """What one capture left in Slack, with the moments that matter."""

    root: Message  # the confirmation message: the thread's first message
    parent: Message  # the job's status message in the thread
    clicked_at: float  # when Start was pressed (monotonic)
    capturing_at: float | None = None
    analysis_at: float | None = None  # the analysis of the merged file is in the thread
    done_at: float | None = None
    progress_seen: list[str] = field(default_factory=list)


def _post(events_url: str, body: bytes, secret: str, content_type: str) -> None:
    status, _ = slackreq.post(events_url, body, slackreq.sign(body, secret), content_type)
    if status != 200:
        raise AksDnsError(f"the bot answered HTTP {status}")


def _start_button(message: Message) -> str | None:
    for block in message.blocks:
        for element in block.get("elements", []) or []:
            if isinstance(element, dict) and element.get("action_id") == START:
                return str(element.get("value", ""))
    return None


def capture_in_slack(events_url: str, secret: str, slack: SlackStandIn, channel: str, text: str, *,
                     user: str = "U0ONCALL", traffic: Callable[[], Any] | None = None,
                     timeout_s: float = 300.0, thread_ts: str | None = None) -> CaptureThread:
    """Type the command (a slash command, or `@aksdns` inside ``thread_ts``), press Start on its
    confirmation, run ``traffic`` once capturing, wait for the end."""
    seen = {id(m) for m in slack.state.messages}
    if thread_ts is None:
        _post(events_url, slackreq.slash_body(text, channel=channel, user=user), secret, slackreq.FORM)
    else:
        body = slackreq.mention_body(text, ts=slack.state.next_ts(), thread_ts=thread_ts, user=user, channel=channel)
        _post(events_url, body, secret, slackreq.JSON)

    def confirmation() -> Message | None:
        return next((m for m in slack.state.messages if id(m) not in seen and _start_button(m)), None)

    if not slack.wait_for(lambda _s: confirmation() is not None, timeout=30):
        raise AksDnsError("no confirmation from the bot")
    root = confirmation()
    assert root is not None
    value = _start_button(root) or ""
    click = slackreq.button_body(START, value, thread_ts=root.thread_ts, user=user, channel=channel,
                                 message_ts=root.ts)
    home = thread_ts or root.ts  # where the job answers: the thread it was typed in, else the confirmation's
    before_click = {id(m) for m in slack.state.messages}
    clicked = time.monotonic()
    _post(events_url, click, secret, slackreq.FORM)

    def parent() -> Message | None:  # the job's status message: the first new plain bot message in the thread
        return next((m for m in slack.state.messages if m.thread_ts == home and id(m) not in before_click
                     and not m.blocks and not m.files and m.ephemeral_to is None
                     and m.user == slack.state.bot_user), None)

    if not slack.wait_for(lambda _s: parent() is not None, timeout=30):
        raise AksDnsError("the capture was not queued")
    status = parent()
    assert status is not None
    run = CaptureThread(root, status, clicked)
    worker: threading.Thread | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = time.monotonic()
        if not run.progress_seen or run.progress_seen[-1] != status.text:
            run.progress_seen.append(status.text)
        if "capturing" in status.text and run.capturing_at is None:
            run.capturing_at = now
            if traffic is not None:
                worker = threading.Thread(target=traffic, daemon=True)
                worker.start()
        if run.analysis_at is None and any(m.thread_ts == home and id(m) not in before_click and m.blocks
                                           and ".pcapng" in m.text and "analy" in m.text
                                           for m in slack.state.messages):
            run.analysis_at = now
        if any(mark in status.text for mark in DONE_MARKS):
            run.done_at = now
            break
        time.sleep(0.1)
    if worker is not None:
        worker.join(30)
    time.sleep(0.5)  # the files follow the result message
    if run.done_at is None:
        raise AksDnsError("the capture did not finish in time")
    return run
