"""Issue 10 item 4: Slack's 429s, 5xx and hangs lose no command and no result.

Real processes: the bot under gunicorn (`aksdns bot --http`), `aksdns worker`, redis-server, and
the Slack stand-in playing Slack's bad day (429 with Retry-After, 500, 503, no answer).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from aksdns.keys import queue_name
from console.standin import SlackStandIn
from tests.dnsservers import FakeDnsServer
from tests.services import (
    RedisServer,
    post,
    queue_signed,
    run_aksdns,
    run_http_bot,
    sign,
    slash_body,
    stack_env,
    thread_job,
)
from workers.outbox import Outbox

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"


@pytest.fixture
def bot(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path) -> Iterator[str]:
    with run_http_bot(stack_env(redis_server.url, slack, cluster), tmp_path / "bot.log") as (url, _):
        yield url


@pytest.fixture
def worker(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with run_aksdns(["worker"], stack_env(redis_server.url, slack, cluster, AKSDNS_JOB_TIMEOUT="60"), log):
        yield log


def _dig(server: FakeDnsServer) -> str:
    return f"dig @{server.server.host}:{server.server.port} www.aksdns.test"


def _ephemerals(slack: SlackStandIn) -> list[str]:
    return [m.text for m in slack.state.messages if m.ephemeral_to]


def test_a_run_of_429_500_and_503_on_the_parent_message_still_queues_the_command(
    bot: str, worker: Path, slack: SlackStandIn, answering_server: FakeDnsServer
) -> None:
    for kind in ("429", "500", "503"):
        slack.state.faults.fail(kind, 1, frozenset({"chat.postMessage"}))
    body = slash_body(_dig(answering_server))
    assert post(bot, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.blocks for m in s.messages), timeout=60), worker.read_text()[-2000:]
    faulted = [c[2]["fault"] for c in slack.state.calls if c[1] == "chat.postMessage" and "fault" in c[2]]
    assert faulted == ["429", "500", "503"]  # each one was met, and retried
    assert _ephemerals(slack) == []  # nobody was told to /invite the bot


def test_not_in_channel_and_slack_unavailable_are_told_apart(
    bot: str, slack: SlackStandIn, redis_server: RedisServer, cluster: str, served: None
) -> None:
    slack.state.not_in.add("C0OUTSIDE")
    body = slash_body("dig www.aksdns.test", channel="C0OUTSIDE")
    assert post(bot, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: len(_ephemerals(slack)) == 1, timeout=20)
    assert "/invite @aksdns" in _ephemerals(slack)[0]

    slack.state.faults.fail("503", 10, frozenset({"chat.postMessage"}))  # more than the bot retries
    body = slash_body("dig other.aksdns.test")
    assert post(bot, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: len(_ephemerals(slack)) == 2, timeout=60)
    told = _ephemerals(slack)[1]
    assert "Slack is not taking my messages right now (HTTP 503), so nothing was queued" in told
    assert "/invite" not in told
    assert redis_server.client().llen(f"rq:queue:{queue_name(cluster)}") == 0


@pytest.mark.parametrize("outage", ["503", "hang"])
def test_a_result_is_kept_while_slack_is_down_and_posted_when_it_answers(
    outage: str, worker: Path, slack: SlackStandIn, redis_server: RedisServer, cluster: str,
    answering_server: FakeDnsServer,
) -> None:
    spec = thread_job(slack, _dig(answering_server), cluster, CHANNEL)
    assert spec.thread is not None
    parent = spec.thread.thread_ts
    slack.state.faults.hang_s = 20  # longer than the worker's Slack time-out (15 s)
    slack.state.faults.outage(outage)
    queue_signed(redis_server.client(), spec, job_timeout_s=60)
    job = Job.fetch(spec.id, connection=redis_server.client(), serializer=JSONSerializer)
    deadline = time.monotonic() + 90
    while job.get_status(refresh=True) not in {JobStatus.FINISHED, JobStatus.FAILED}:
        assert time.monotonic() < deadline, worker.read_text()[-2000:]
        time.sleep(0.2)
    assert job.get_status() == JobStatus.FINISHED
    outbox = Outbox(redis_server.client(), cluster)
    assert outbox.pending() == 1  # the result is kept in Redis
    assert not any(m.blocks for m in slack.state.messages)

    slack.state.faults.clear()  # Slack answers again
    assert slack.wait_for(lambda s: any(m.blocks and m.thread_ts == parent for m in s.messages), timeout=120), (
        worker.read_text()[-3000:]
    )
    assert slack.wait_for(lambda s: "done in" in (s.find(CHANNEL, parent) or s.messages[0]).text, timeout=30)
    replies = [m.text for m in slack.state.thread(CHANNEL, parent)]
    assert any(r.startswith("⏳ Slack did not take this answer") for r in replies)
    assert len([m for m in slack.state.thread(CHANNEL, parent) if m.blocks]) == 1  # posted once
    deadline = time.monotonic() + 10
    while outbox.pending() and time.monotonic() < deadline:  # removed right after the last post
        time.sleep(0.1)
    assert outbox.pending() == 0
