"""Checks every POST /slack/events before Bolt sees it: size, headers, signature, shape, replay.

Bolt verifies signatures too, but only after reading the whole body into memory, and it turns
a malformed timestamp or body into a 500 or an "internal error" with a traceback. Here, in
order, each step on bounded input:

1. ``Content-Length`` present, ASCII digits, at most ``MAX_BODY_BYTES`` (else 411/413, body unread);
2. ``X-Slack-Request-Timestamp`` ASCII digits within 5 minutes of now, ``X-Slack-Signature``
   ``v0=`` and 64 hex digits (else 401, body unread);
3. the body read with a per-read time-out and an overall deadline (a slow sender holds a thread
   for ``BODY_DEADLINE_S`` at most; else 408);
4. the signature, HMAC-SHA256 of ``v0:{timestamp}:{body}`` over the raw bytes (else 401; slack_sdk's
   ``SignatureVerifier`` decodes the body as UTF-8 first and raises on anything else);
5. UTF-8 and the shape Bolt expects, parsed with Bolt's own ``parse_body`` (else 400);
6. replays: the request's signature is handed on (:data:`SIGNED`) and :class:`ReplayCheck`, run
   before the request's follow-up work, remembers it in Redis for Slack's 5-minute window; the same
   signed bytes again are acked as Bolt acks them, and nothing is queued. (Checked after the ack,
   not before: a Redis round trip on every ack cost 40–80 ms of p99 ack latency under bursts.)

Refusals are logged with their reason (never the body, never a secret) and answered with one
short line: no traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import re
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import redis
from slack_bolt.request.internals import parse_body

from aksdns.keys import request_signature_key

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # slash commands are ~1 KB; interactions carry a message, well under this
REPLAY_WINDOW_S = 300  # Slack's: a timestamp older than 5 minutes is refused
BODY_RECV_TIMEOUT_S = 5.0
BODY_DEADLINE_S = 10.0
READ_CHUNK = 64 * 1024
SIGNATURE_TTL_S = 2 * REPLAY_WINDOW_S + 60  # longer than any timestamp stays acceptable
SIGNATURE_KEY = "aksdns.signature"  # the verified signature, in the environ passed to Bolt

_DIGITS = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


@dataclass(frozen=True)
class Refusal:
    """An answer given instead of passing the request on."""

    status: str  # e.g. "401 Unauthorized"
    reason: str  # for the log


def check_headers(environ: dict[str, Any], now: float) -> Refusal | tuple[int, str, str]:
    """(content length, timestamp, signature) when the headers are acceptable (pure)."""
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return Refusal("411 Length Required", "chunked body")
    length_text = str(environ.get("CONTENT_LENGTH") or "")
    if not _DIGITS.fullmatch(length_text):
        return Refusal("411 Length Required", "no usable Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        return Refusal("413 Request Entity Too Large", f"body of {length} bytes")
    timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
    signature = str(environ.get("HTTP_X_SLACK_SIGNATURE") or "")
    if not _DIGITS.fullmatch(timestamp):
        return Refusal("401 Unauthorized", "malformed or missing timestamp")
    if abs(now - int(timestamp)) > REPLAY_WINDOW_S:
        return Refusal("401 Unauthorized", "stale timestamp")
    if not _SIGNATURE.fullmatch(signature):
        return Refusal("401 Unauthorized", "malformed or missing signature")
    return length, timestamp, signature


def read_body(environ: dict[str, Any], length: int, deadline: float) -> bytes | Refusal:
    """Exactly ``length`` bytes of the body, or a refusal when the sender stalls or stops short."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(BODY_RECV_TIMEOUT_S)  # each read; the deadline bounds them all
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    left = length
    try:
        while left > 0:
            if time.monotonic() > deadline:
                return Refusal("408 Request Timeout", "body too slow")
            chunk = stream.read(min(READ_CHUNK, left))
            if not chunk:
                return Refusal("400 Bad Request", "body shorter than its Content-Length")
            parts.append(chunk)
            left -= len(chunk)
    except OSError:  # includes the per-read time-out
        return Refusal("408 Request Timeout", "body too slow")
    return b"".join(parts)


def check_body(body: bytes, content_type: str | None) -> Refusal | None:
    """None when Bolt can read the body: UTF-8, and a JSON object where Bolt expects one."""
    try:
        text = body.decode("utf-8")
        parsed = parse_body(text, content_type)
    except (UnicodeDecodeError, ValueError):
        return Refusal("400 Bad Request", "body Bolt cannot read")
    if not isinstance(parsed, dict):
        return Refusal("400 Bad Request", "body is not an object")
    return None


def signature_valid(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Slack's v0 request signature (https://api.slack.com/authentication/verifying-requests-from-slack)."""
    expected = "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@dataclass
class SignedRequest:
    """The request being answered, as its follow-up work sees it (through :data:`SIGNED`)."""

    signature: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    replay: bool | None = None  # decided once, by the first follow-up that asks


# Set by bot.http around Bolt's handling of a checked request; follow-ups run in a copy of its context.
SIGNED: ContextVar[SignedRequest | None] = ContextVar("aksdns_signed_request", default=None)


class ReplayCheck:
    """True when the current request's signature was seen before (``seen`` remembers it: Redis)."""

    def __init__(self, seen: Callable[[str], bool]) -> None:
        self.seen = seen

    def __call__(self) -> bool:
        signed = SIGNED.get()
        if signed is None:  # Socket Mode, or no request behind this work
            return False
        with signed.lock:
            if signed.replay is None:
                signed.replay = self.seen(signed.signature)
                if signed.replay:
                    log.warning("replayed request ignored: nothing queued")
            return signed.replay


class RequestGuard:
    """Runs the checks above (steps 1-5); the passed environ carries the signature for step 6."""

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self.secret = signing_secret.encode()
        self.clock = clock

    def check(self, environ: dict[str, Any]) -> dict[str, Any] | Refusal:
        """The environ to pass to Bolt (its body already read, and verified), or a refusal."""
        headers = check_headers(environ, self.clock())
        if isinstance(headers, Refusal):
            return self._refuse(environ, headers)
        length, timestamp, signature = headers
        body = read_body(environ, length, time.monotonic() + BODY_DEADLINE_S)
        if isinstance(body, Refusal):
            return self._refuse(environ, body)
        if not signature_valid(self.secret, timestamp, body, signature):
            return self._refuse(environ, Refusal("401 Unauthorized", "invalid signature"))
        content_type = str(environ.get("CONTENT_TYPE") or "").split(";")[0] or None  # as Bolt reads it
        malformed = check_body(body, content_type)
        if malformed is not None:
            return self._refuse(environ, malformed)
        passed = dict(environ)
        passed[SIGNATURE_KEY] = signature
        passed["wsgi.input"] = io.BytesIO(body)
        passed["CONTENT_LENGTH"] = str(len(body))
        return passed

    @staticmethod
    def _refuse(environ: dict[str, Any], refusal: Refusal) -> Refusal:
        log.warning("request refused before Bolt", extra={"status": refusal.status, "reason": refusal.reason,
                                                          "remote": str(environ.get("REMOTE_ADDR", ""))})
        return refusal


def redis_signature_seen(connection: redis.Redis) -> Callable[[str], bool]:
    """True when a request signature was seen within the replay window (Slack signs each send anew)."""

    def seen(signature: str) -> bool:
        try:
            return not connection.set(request_signature_key(signature), 1, nx=True, ex=SIGNATURE_TTL_S)
        except redis.RedisError:
            return False  # without Redis nothing can be queued anyway: answer as usual

    return seen
