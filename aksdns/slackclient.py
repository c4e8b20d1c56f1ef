"""Slack Web API clients for the bot and the workers: bounded retries, and a plain word for failures.

Slack answers a busy method with 429 and a Retry-After header, and has bad minutes with 500
and 503 (https://api.slack.com/apis/rate-limits). slack_sdk's ``RateLimitErrorRetryHandler``
and ``ServerErrorRetryHandler`` retry those; both are bounded here: a Retry-After longer than
the caller can wait (or unreadable) is not slept on, 502 and 504 (from proxies in front of
Slack) count as server errors, and the number of retries is capped. What still fails is
classified by :func:`classify`, so the caller can tell "Slack is not taking messages right now"
(keep it, try later) from "not in this channel" or another refusal (tell the user).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.response import HttpResponse

SERVER_ERRORS = frozenset({500, 502, 503, 504})
# Error codes Slack puts in a 200 answer that mean "try again later", not "never".
TRANSIENT_ERRORS = frozenset({"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"})
NOT_IN_CHANNEL = frozenset({"not_in_channel", "channel_not_found"})
POST_ERRORS: tuple[type[BaseException], ...] = (SlackApiError, SlackClientError, OSError)


def retry_after_s(response: HttpResponse | None) -> float | None:
    """The Retry-After of a 429 in seconds, or None when absent or unreadable."""
    if response is None:
        return None
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            raw = values[0] if isinstance(values, list) and values else values
            text = str(raw).strip()
            return float(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None
    return None


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retries a 429 after its Retry-After, only when that is at most ``max_wait_s``."""

    def __init__(self, max_retry_count: int, max_wait_s: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    def _can_retry(self, *, state: Any, request: Any, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after_s(response)
        return (1.0 if wait is None else wait) <= self.max_wait_s

    def prepare_for_next_attempt(self, *, state: Any, request: Any, response: HttpResponse | None = None,
                                 error: Exception | None = None) -> None:
        wait = retry_after_s(response)
        state.next_attempt_requested = True
        time.sleep(min(self.max_wait_s, 1.0 if wait is None else wait) + random.random() * 0.2)  # noqa: S311
        state.increment_current_attempt()


class ServerErrorsRetryHandler(ServerErrorRetryHandler):
    """Retries 500, 502, 503 and 504 with exponential back-off (slack_sdk's covers 500 and 503)."""

    def _can_retry(self, *, state: Any, request: Any, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return response is not None and response.status_code in SERVER_ERRORS


def web_client(token: str, api_url: str, *, timeout_s: float, retries: int, max_wait_s: float) -> WebClient:
    """A WebClient that retries connection errors, 429 and 5xx, at most ``retries`` times in all."""
    return WebClient(
        token=token,
        base_url=api_url,
        timeout=int(timeout_s),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            BoundedRateLimitRetryHandler(max_retry_count=retries, max_wait_s=max_wait_s),
            ServerErrorsRetryHandler(max_retry_count=retries),
        ],
    )


@dataclass(frozen=True)
class SlackFailure:
    """Why a call to Slack did not succeed, in words a user can read."""

    transient: bool  # rate limited, server error, time-out, unreachable: the same call may work later
    not_in_channel: bool
    reason: str  # e.g. "rate limited", "HTTP 503", "TimeoutError", "is_archived"
    retry_after_s: float | None = None


def classify(exc: BaseException) -> SlackFailure:
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = int(getattr(response, "status_code", 200) or 200)
        error = str(response.get("error", "") if hasattr(response, "get") else "") or "slack_error"
        headers = getattr(response, "headers", {}) or {}
        wait = retry_after_s(HttpResponse(status_code=status, headers=dict(headers)))
        if status == 429 or error == "ratelimited":
            return SlackFailure(True, False, "rate limited", wait)
        if status >= 500:
            return SlackFailure(True, False, f"HTTP {status}")
        if error in TRANSIENT_ERRORS:
            return SlackFailure(True, False, error)
        return SlackFailure(False, error in NOT_IN_CHANNEL, error)
    return SlackFailure(True, False, type(exc).__name__)  # no answer: time-out, refused, reset
