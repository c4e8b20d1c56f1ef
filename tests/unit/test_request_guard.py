"""The checks bot.guard runs before Bolt, and bot.http's "is the request in yet" (pure parts)."""

from __future__ import annotations

import io

import pytest

from bot.guard import MAX_BODY_BYTES, Refusal, check_body, check_headers, read_body, signature_valid
from bot.http import PEEK_LIMIT, request_ready

NOW = 1_700_000_000.0
SIG = "v0=" + "a" * 64


def env(**extra: str) -> dict[str, object]:
    base = {"CONTENT_LENGTH": "10", "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(int(NOW)), "HTTP_X_SLACK_SIGNATURE": SIG}
    return {**base, **extra}


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"CONTENT_LENGTH": ""}, "411"),
        ({"CONTENT_LENGTH": "²"}, "411"),
        ({"CONTENT_LENGTH": "1" * 20}, "411"),
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, "411"),
        ({"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1)}, "413"),
        ({"HTTP_X_SLACK_REQUEST_TIMESTAMP": "9" * 5000}, "401"),
        ({"HTTP_X_SLACK_REQUEST_TIMESTAMP": "¹²³"}, "401"),
        ({"HTTP_X_SLACK_REQUEST_TIMESTAMP": " 1700000000"}, "401"),
        ({"HTTP_X_SLACK_REQUEST_TIMESTAMP": str(int(NOW) - 301)}, "401"),
        ({"HTTP_X_SLACK_SIGNATURE": "v0=" + "A" * 64}, "401"),
        ({"HTTP_X_SLACK_SIGNATURE": ""}, "401"),
    ],
)
def test_headers_are_refused_before_the_body_is_read(extra: dict[str, str], status: str) -> None:
    refused = check_headers(env(**extra), NOW)
    assert isinstance(refused, Refusal) and refused.status.startswith(status)


def test_acceptable_headers_pass() -> None:
    assert check_headers(env(), NOW) == (10, str(int(NOW)), SIG)


def test_body_shorter_than_announced_is_refused() -> None:
    refused = read_body({"wsgi.input": io.BytesIO(b"abc")}, 10, deadline=float("inf"))
    assert isinstance(refused, Refusal) and refused.status.startswith("400")


@pytest.mark.parametrize(
    ("body", "content_type", "ok"),
    [(b"text=dig", "application/x-www-form-urlencoded", True), (b'{"type":"event_callback"}', "application/json", True),
     (b"\xff", None, False), (b"{", None, False), (b"payload=%7B", None, False), (b"payload=1", None, False),
     (b"[]", "application/json", False)],
)
def test_bodies_bolt_cannot_read_are_refused(body: bytes, content_type: str | None, ok: bool) -> None:
    assert (check_body(body, content_type) is None) is ok


def test_signature_over_raw_bytes() -> None:
    import hashlib
    import hmac

    body = b"\xff\xfe not utf-8"
    good = "v0=" + hmac.new(b"s", b"v0:1:" + body, hashlib.sha256).hexdigest()
    assert signature_valid(b"s", "1", body, good)
    assert not signature_valid(b"s", "2", body, good)


@pytest.mark.parametrize(
    ("head", "ready"),
    [
        (b"", False),
        (b"POST /slack/events HTTP/1.1\r\nHost: x\r\n", False),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", False),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", True),
        (b"POST / HTTP/1.1\r\ncontent-length:3\r\n\r\nabc", True),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nX: " + b"a" * PEEK_LIMIT, None),
    ],
)
def test_a_request_is_in_once_headers_and_the_bodys_start_arrived(head: bytes, ready: bool | None) -> None:
    assert request_ready(head) is ready


def test_a_large_body_is_waited_for_only_up_to_the_peek_limit() -> None:
    head = b"POST / HTTP/1.1\r\nContent-Length: 900000\r\n\r\n"
    assert request_ready(head + b"a" * (PEEK_LIMIT - len(head))) is True
    assert request_ready(head + b"a" * 100) is False


def test_a_request_is_checked_for_replay_once_however_many_follow_ups_it_has() -> None:
    import contextvars

    from bot.guard import SIGNED, ReplayCheck, SignedRequest

    remembered: set[str] = set()

    def seen(signature: str) -> bool:
        was = signature in remembered
        remembered.add(signature)
        return was

    check = ReplayCheck(seen)
    assert check() is False  # no request behind this work (Socket Mode)

    def request(signature: str) -> list[bool]:
        SIGNED.set(SignedRequest(signature))
        # an audit follow-up and the command's, each in a copy of the request's context
        return [contextvars.copy_context().run(check) for _ in range(2)]

    assert contextvars.copy_context().run(request, SIG) == [False, False]  # first time: both go ahead
    assert contextvars.copy_context().run(request, SIG) == [True, True]  # the same bytes again: neither
