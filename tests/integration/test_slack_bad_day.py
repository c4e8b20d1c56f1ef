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

from aksdns import grammar
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.keys import queue_name
from aksdns.queue import JobQueue
from console.standin import SlackStandIn
from tests.dnsservers import FakeDnsServer, free_port
from tests.services import (
    BOT_TOKEN,
    JOB_SIGNING_KEY,
    SIGNING_SECRET,
    RedisServer,
    aksdns_env,
    post,
    run_aksdns,
    sign,
    slash_body,
    wait_http,
)
from workers.outbox import Outbox

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    return "bd" + str(abs(hash(request.node.name)) % 10**8)


def _env(redis_server: RedisServer, slack: SlackStandIn, cluster: str) -> dict[str, str]:
    return aksdns_env(REDIS_URL=redis_server.url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                      SLACK_SIGNING_SECRET=SIGNING_SECRET, AKSDNS_CLUSTER=cluster, AKSDNS_JOB_TIMEOUT="60")


@pytest.fixture
def bot(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                    _env(redis_server, slack, cluster), tmp_path / "bot.log"):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/slack/events"


@pytest.fixture
def worker(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with run_aksdns(["worker"], _env(redis_server, slack, cluster), log):
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
    bot: str, slack: SlackStandIn, redis_server: RedisServer, cluster: str
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
    parent = slack.state.call("chat.postMessage", {"channel": CHANNEL, "text": "🔎 `dig` queued by <@U0ONCALL>"})["ts"]
    slack.state.faults.hang_s = 20  # longer than the worker's Slack time-out (15 s)
    slack.state.faults.outage(outage)
    spec = JobSpec.new(grammar.parse(_dig(answering_server)), cluster=cluster, user="U0ONCALL",
                       thread=SlackThread(CHANNEL, parent, parent))
    JobQueue(redis_server.client(), job_timeout_s=60, signing_key=JOB_SIGNING_KEY).enqueue(spec)
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
