"""Signed Slack requests, as Slack sends them: used by the demo and by the tests.

Slack signs every request (v0): HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the app's
signing secret (https://api.slack.com/authentication/verifying-requests-from-slack).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds to a request body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slash_body(text: str, *, user: str = "U0ONCALL", channel: str = "C0INCIDENT") -> bytes:
    """The form body of a `/aksdns` slash command."""
    return urllib.parse.urlencode(
        {
            "team_id": "T0LOCAL",
            "channel_id": channel,
            "channel_name": "incident",
            "user_id": user,
            "user_name": "oncall",
            "command": "/aksdns",
            "text": text,
            "response_url": "http://127.0.0.1:9/unused",
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}",  # unique per command, as Slack's
            "api_app_id": "A0AKSDNS",
        }
    ).encode()


def mention_body(text: str, *, ts: str, thread_ts: str | None, user: str = "U0ONCALL",
                 channel: str = "C0INCIDENT", bot_user: str = "U0AKSDNS") -> bytes:
    """The Events API body of an app_mention, e.g. `@aksdns analyze` inside a thread."""
    event: dict[str, object] = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{bot_user}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps(
        {
            "token": "unused",
            "team_id": "T0LOCAL",
            "api_app_id": "A0AKSDNS",
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0LOCAL", "user_id": bot_user, "is_bot": True}],
        }
    ).encode()


def post(url: str, body: bytes, headers: dict[str, str], content_type: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST and return (status, body); HTTP errors are returned, not raised."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    headers = {**headers, "Content-Type": content_type}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a URL we were given
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def button_body(action_id: str, value: str, *, thread_ts: str | None, user: str = "U0ONCALL",
                channel: str = "C0INCIDENT", message_ts: str | None = None) -> bytes:
    """A block_actions interaction (a button click in a message, threaded or not), form-encoded."""
    ts = message_ts or (thread_ts or "") + "9"
    message: dict[str, str] = {"ts": ts, "text": ""}
    if thread_ts:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "block_actions",
        "team": {"id": "T0LOCAL"},
        "user": {"id": user},
        "api_app_id": "A0AKSDNS",
        "channel": {"id": channel},
        "message": message,
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "trigger_id": "1.2.3",
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{"action_id": action_id, "block_id": "b", "type": "button", "value": value,
                     "action_ts": str(time.time())}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
