"""The worker's outbox (real redis-server) and progress coalescing (the Slack stand-in): bounded, ordered."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from aksdns.jobspec import SlackThread
from console.standin import SlackStandIn
from tests.services import BOT_TOKEN, RedisServer
from workers import outbox as outbox_module
from workers.outbox import Outbox, Refused, Undelivered, encode_files
from workers.slack_post import ThreadPoster, make_client

THREAD = SlackThread("C0INCIDENT", "1.000001", "1.000001")


@pytest.fixture
def outbox(redis_server: RedisServer) -> Outbox:
    return Outbox(redis_server.client(), "ob" + uuid.uuid4().hex[:8])


def test_progress_updates_are_coalesced_but_the_final_status_always_goes(slack: SlackStandIn) -> None:
    parent = slack.state.call("chat.postMessage", {"channel": THREAD.channel, "text": "queued"})["ts"]
    poster = ThreadPoster(make_client(BOT_TOKEN, slack.api_url), SlackThread(THREAD.channel, parent, parent))
    started = time.monotonic()
    for step in range(50):
        poster.progress(f"step {step}")
    updates = [c for c in slack.state.calls if c[1] == "chat.update"]
    elapsed = time.monotonic() - started
    assert 1 <= len(updates) <= 1 + int(elapsed)  # at most one a second, not 50
    poster.status("✅ done")
    assert slack.state.find(THREAD.channel, parent).text == "✅ done"  # type: ignore[union-attr]


def test_attachments_too_large_to_keep_are_left_out_and_said(outbox: Outbox) -> None:
    big = encode_files([{"filename": "x.csv", "title": "x", "content": b"0" * (outbox_module.MAX_OP_BYTES)}])
    assert outbox.hold("job1", THREAD, {"kind": "post", "text": "t", "blocks": [], "files": big}, reason="HTTP 503")
    kept: list[dict[str, Any]] = []
    outbox.connection.zadd(outbox.index_key, {"job1": 0})
    outbox.flush(lambda _t, op: kept.append(op), lambda _t, _s: None, now=time.time(), owner="t")
    assert kept == [{"kind": "post", "text": "t", "blocks": [], "files": [], "dropped_files": 1}]


def test_retention_is_bounded_in_time_and_in_jobs(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    assert outbox.hold("job1", THREAD, {"kind": "reply", "text": "a"}, reason="HTTP 503")
    ttl = outbox.connection.ttl(f"{outbox.index_key}:job1:ops")
    assert 0 < ttl <= outbox_module.RETENTION_S
    monkeypatch.setattr(outbox_module, "MAX_JOBS", 2)
    assert outbox.hold("job2", THREAD, {"kind": "reply", "text": "b"}, reason="HTTP 503")
    assert not outbox.hold("job3", THREAD, {"kind": "reply", "text": "c"}, reason="HTTP 503")  # full
    assert outbox.hold("job2", THREAD, {"kind": "reply", "text": "b2"}, reason="HTTP 503")  # a held job goes on
    # A job whose messages expired leaves the index at the next pass.
    outbox.connection.delete(f"{outbox.index_key}:job1", f"{outbox.index_key}:job1:ops")
    outbox.connection.zadd(outbox.index_key, {"job1": 0, "job2": time.time() + 3600})
    outbox.flush(lambda _t, _op: None, lambda _t, _s: None, now=time.time(), owner="t")
    assert outbox.pending() == 1


def test_a_pass_stops_at_the_first_failure_and_backs_off_keeping_the_order(outbox: Outbox) -> None:
    for text in ("first", "second"):
        outbox.hold("job1", THREAD, {"kind": "reply", "text": text}, reason="HTTP 503")
    outbox.hold_status("job1", THREAD, "✅ done", reason="HTTP 503")
    outbox.connection.zadd(outbox.index_key, {"job1": 0})
    now = time.time()

    def down(_thread: SlackThread, _op: dict[str, Any]) -> None:
        raise Undelivered("HTTP 503")

    assert outbox.flush(down, lambda _t, _s: None, now=now, owner="t") == 0
    assert outbox.connection.zscore(outbox.index_key, "job1") == pytest.approx(now + outbox_module.backoff_s(1))
    posted: list[str] = []
    statuses: list[str] = []
    assert outbox.flush(lambda _t, op: posted.append(op["text"]), lambda _t, s: statuses.append(s),
                        now=now + 3600, owner="t") == 1
    assert posted == ["first", "second"] and statuses == ["✅ done"]
    assert outbox.pending() == 0


def test_a_message_slack_refuses_for_good_is_dropped_and_the_rest_goes(outbox: Outbox) -> None:
    for text in ("refused", "fine"):
        outbox.hold("job1", THREAD, {"kind": "reply", "text": text}, reason="HTTP 503")
    outbox.connection.zadd(outbox.index_key, {"job1": 0})
    posted: list[str] = []

    def deliver(_thread: SlackThread, op: dict[str, Any]) -> None:
        if op["text"] == "refused":
            raise Refused("not_in_channel")
        posted.append(op["text"])

    assert outbox.flush(deliver, lambda _t, _s: None, now=time.time(), owner="t") == 1
    assert posted == ["fine"]


def test_anything_else_going_wrong_keeps_the_messages(outbox: Outbox) -> None:
    """E.g. the worker is told to stop mid-post: nothing is dropped, nothing swallowed."""
    outbox.hold("job1", THREAD, {"kind": "reply", "text": "kept"}, reason="HTTP 503")
    outbox.connection.zadd(outbox.index_key, {"job1": 0})

    def interrupted(_thread: SlackThread, _op: dict[str, Any]) -> None:
        raise InterruptedError("stop requested")

    with pytest.raises(InterruptedError):
        outbox.flush(interrupted, lambda _t, _s: None, now=time.time(), owner="t")
    posted: list[str] = []
    outbox.flush(lambda _t, op: posted.append(op["text"]), lambda _t, _s: None, now=time.time(), owner="t")
    assert posted == ["kept"]


def test_two_workers_never_post_the_same_job(outbox: Outbox) -> None:
    outbox.hold("job1", THREAD, {"kind": "reply", "text": "once"}, reason="HTTP 503")
    outbox.connection.zadd(outbox.index_key, {"job1": 0})
    outbox.connection.set(f"{outbox.index_key}:job1:lock", "other-worker")
    posted: list[str] = []
    assert outbox.flush(lambda _t, op: posted.append(op["text"]), lambda _t, _s: None, now=time.time(),
                        owner="t") == 0
    assert posted == []
