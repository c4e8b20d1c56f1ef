"""`capture`'s guard rails in the bot, end to end: signed Slack requests → `aksdns bot --http` → redis-server
→ the Slack stand-in. Privileged users only; a confirmation naming targets, filter and duration; Start and
Cancel authorized again for whoever clicks; Stop sets the flag the worker reads. No worker runs here: a
started capture is a job waiting on the queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from aksdns.keys import capture_stop_key, queue_name
from bot import capture_flow
from console import slackreq
from console.standin import SlackStandIn
from tests.services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    RedisServer,
    aksdns_env,
    cluster_of,
    post,
    running_bot,
    sign,
    slash_body,
)

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"
ONCALL, OTHER = "U0ONCALL", "U0VISITOR"


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    return cluster_of(request, "cap")


@pytest.fixture
def bot(redis_server: RedisServer, slack: SlackStandIn, cluster: str, served: None, tmp_path: Path) -> Iterator[str]:
    env = aksdns_env(REDIS_URL=redis_server.url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                     SLACK_SIGNING_SECRET=SIGNING_SECRET, AKSDNS_CLUSTER=cluster, AKSDNS_PRIVILEGED_USERS=ONCALL)
    with running_bot(env, tmp_path / "bot.log") as events:
        yield events


def slash(events: str, text: str, user: str) -> bytes:
    body = slash_body(text, user=user)
    status, reply = post(events, body, sign(body), FORM)
    assert status == 200
    return reply


def click(events: str, action: str, value: str, user: str, message: Any) -> None:
    body = slackreq.button_body(action, value, thread_ts=message.thread_ts, user=user, message_ts=message.ts)
    assert post(events, body, sign(body), FORM)[0] == 200


def confirmations(slack: SlackStandIn) -> list[Any]:
    return [m for m in slack.state.messages if m.ephemeral_to is None and m.blocks
            and any(e.get("action_id") == capture_flow.START
                    for b in m.blocks if b.get("type") == "actions" for e in b["elements"])]


def button(message: Any, action: str) -> str:
    return next(str(e["value"]) for b in message.blocks if b.get("type") == "actions" for e in b["elements"]
                if e["action_id"] == action)


def ephemerals(slack: SlackStandIn, user: str) -> list[str]:
    return [m.text for m in slack.state.messages if m.ephemeral_to == user]


def test_a_non_privileged_user_is_refused_before_anything_is_posted(bot: str, slack: SlackStandIn) -> None:
    reply = json.loads(slash(bot, "capture --coredns --duration 30s", OTHER))
    assert reply["response_type"] == "ephemeral" and reply["text"].startswith("🚫") and "privileged" in reply["text"]
    assert not confirmations(slack)


def test_confirm_then_start_by_someone_else_is_authorized_again_then_stop(
        bot: str, slack: SlackStandIn, redis_server: RedisServer, cluster: str) -> None:
    assert slash(bot, "capture --coredns --pod default/web --duration 45s --filter 'udp port 53'", ONCALL) == b""
    assert slack.wait_for(lambda s: bool(confirmations(slack)), 20)
    confirm = confirmations(slack)[0]
    assert "every CoreDNS pod, default/web" in confirm.text and "45 s" in confirm.text
    assert "`udp port 53`" in confirm.text
    queue = Queue(queue_name(cluster), connection=redis_server.client(), serializer=JSONSerializer)
    assert queue.count == 0  # nothing is queued before Start

    # A click on Start by a user who may not capture: refused, nothing queued, the message unchanged.
    click(bot, capture_flow.START, button(confirm, capture_flow.START), OTHER, confirm)
    assert slack.wait_for(lambda s: any("🚫" in t for t in ephemerals(slack, OTHER)), 20)
    assert queue.count == 0 and button(confirm, capture_flow.START)

    # A forged command in the button's value goes through the grammar and is refused.
    forged = json.dumps({"verb": "capture", "args": {"duration_s": 86400}})
    click(bot, capture_flow.START, forged, ONCALL, confirm)
    assert slack.wait_for(lambda s: any("not valid" in t for t in ephemerals(slack, ONCALL)), 20)
    assert queue.count == 0

    click(bot, capture_flow.START, button(confirm, capture_flow.START), ONCALL, confirm)
    assert slack.wait_for(lambda s: queue.count == 1, 20)
    assert slack.wait_for(lambda s: "Started by" in confirm.text, 20)
    parent = next(m for m in slack.state.messages if m.thread_ts == confirm.ts and "queued by" in m.text)
    assert "capture every CoreDNS pod, default/web for 45s" in parent.text
    job = queue.jobs[0]
    assert job.args[0]["command"]["args"]["duration_s"] == 45
    assert job.timeout >= 45 + 300  # the job's time-out grows with the capture's duration

    stop = button(confirm, capture_flow.STOP)
    click(bot, capture_flow.STOP, stop, OTHER, confirm)
    assert slack.wait_for(lambda s: len([t for t in ephemerals(slack, OTHER) if "🚫" in t]) >= 2, 20)
    assert not redis_server.client().exists(capture_stop_key(job.id))
    click(bot, capture_flow.STOP, stop, ONCALL, confirm)
    assert slack.wait_for(lambda s: "Stop requested" in confirm.text, 20)
    assert redis_server.client().exists(capture_stop_key(job.id))


def test_cancel_leaves_nothing_queued_and_stop_of_an_ended_run_says_so(
        bot: str, slack: SlackStandIn, redis_server: RedisServer, cluster: str) -> None:
    slash(bot, "capture --duration 30s", ONCALL)
    assert slack.wait_for(lambda s: bool(confirmations(slack)), 20)
    confirm = confirmations(slack)[0]
    click(bot, capture_flow.CANCEL, button(confirm, capture_flow.CANCEL), ONCALL, confirm)
    assert slack.wait_for(lambda s: "Cancelled by" in confirm.text, 20)
    assert not [b for b in confirm.blocks if b.get("type") == "actions"]
    queue = Queue(queue_name(cluster), connection=redis_server.client(), serializer=JSONSerializer)
    assert queue.count == 0
    from aksdns import grammar

    ended = capture_flow.stop_value("f" * 32, grammar.parse("capture --duration 30s"))
    click(bot, capture_flow.STOP, ended, ONCALL, confirm)
    assert slack.wait_for(lambda s: "already ended" in confirm.text, 20)
