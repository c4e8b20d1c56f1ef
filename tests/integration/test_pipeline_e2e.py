"""End to end: signed slash command → `aksdns bot --http` → redis-server → `aksdns worker`
→ the Slack stand-in, answered with what a real DNS server (bind9) said."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.standin import SlackStandIn
from tests.dnsservers import FakeDnsServer, RealServer, free_port
from tests.services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    RedisServer,
    aksdns_env,
    post,
    run_aksdns,
    sign,
    slash_body,
    wait_http,
)

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"


def _env(redis_url: str, slack: SlackStandIn, cluster: str, **extra: str) -> dict[str, str]:
    return aksdns_env(
        REDIS_URL=redis_url,
        SLACK_API_URL=slack.api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        AKSDNS_CLUSTER=cluster,
        **extra,
    )


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    # A queue per test: jobs of one test never reach another's worker.
    return "t" + str(abs(hash(request.node.name)) % 10**8)


@pytest.fixture
def bot(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = _env(redis_server.url, slack, cluster)
    with run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env,
                    tmp_path / "bot.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        yield url + "/slack/events"


@pytest.fixture
def worker(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with run_aksdns(["worker"], _env(redis_server.url, slack, cluster, AKSDNS_JOB_TIMEOUT="20"), log):
        yield log


def _thread_of_first_parent(slack: SlackStandIn) -> str:
    parents = [m for m in slack.state.messages if m.thread_ts is None and m.ephemeral_to is None]
    assert parents, "no parent message was posted"
    return slack.transcript(CHANNEL, parents[0].ts)


def _replies(slack: SlackStandIn) -> list[str]:
    return [m.text for m in slack.state.messages if m.thread_ts is not None and m.ephemeral_to is None]


def test_slash_dig_answers_in_thread_with_bind9_address(
    bot: str, worker: Path, slack: SlackStandIn, bind9_server: RealServer
) -> None:
    server = bind9_server.server
    body = slash_body(f"dig @{server.host}:{server.port} www.aksdns.test --type A")
    status, _ = post(bot, body, sign(body), FORM)
    assert status == 200
    assert slack.wait_for(lambda s: any(m.thread_ts and m.blocks for m in s.messages), timeout=30), (
        worker.read_text()[-2000:]
    )
    transcript = _thread_of_first_parent(slack)
    assert "10.53.1.10" in transcript  # the A record bind9 serves
    assert "NOERROR" in transcript
    parent = next(m for m in slack.state.messages if m.thread_ts is None)
    assert slack.wait_for(lambda s: "done" in parent.text, timeout=10)
    assert parent.edits >= 2  # queued → running → done, by chat.update
    first_text = next(args["text"] for _, method, args in slack.state.calls if method == "chat.postMessage")
    assert "queued by <@U0ONCALL>" in first_text


def test_forged_and_stale_requests_get_401_and_queue_nothing(
    bot: str, redis_server: RedisServer, slack: SlackStandIn, cluster: str
) -> None:
    body = slash_body("dig www.aksdns.test")
    forged = sign(body, secret="not-the-secret")
    stale = sign(body, timestamp=int(time.time()) - 6 * 60)
    assert post(bot, body, forged, FORM)[0] == 401
    assert post(bot, body, stale, FORM)[0] == 401
    assert post(bot, body, {}, FORM)[0] == 401
    time.sleep(0.5)
    assert redis_server.client().llen(f"rq:queue:aksdns:{cluster}") == 0
    assert not [c for c in slack.state.calls if c[1].startswith("chat.")]


def test_usage_error_is_ephemeral_and_short(bot: str, slack: SlackStandIn) -> None:
    body = slash_body("dig kubernetes.default; rm -rf /")
    status, response = post(bot, body, sign(body), FORM)
    assert status == 200
    text = json.loads(response)["text"]
    assert "forbidden characters" in text and "Traceback" not in text
    assert not [c for c in slack.state.calls if c[1] == "chat.postMessage"]


def test_same_command_twice_points_to_the_first(
    bot: str, slack: SlackStandIn, redis_server: RedisServer, cluster: str, served: None
) -> None:
    body = slash_body("dig www.aksdns.test --repeat 2")
    assert post(bot, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.thread_ts is None for m in s.messages), timeout=10)
    again = slash_body("dig www.aksdns.test --repeat 2")  # typed again: a new command, not a replay
    assert post(bot, again, sign(again), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.ephemeral_to for m in s.messages), timeout=10)
    ephemeral = next(m for m in slack.state.messages if m.ephemeral_to)
    assert "already queued or running" in ephemeral.text
    parents = [m for m in slack.state.messages if m.thread_ts is None and not m.ephemeral_to]
    assert len(parents) == 1  # one job, one parent message


def test_redis_down_gives_a_clear_answer_and_the_bot_keeps_running(
    slack: SlackStandIn, cluster: str, tmp_path: Path
) -> None:
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = _env(dead_redis, slack, cluster)
    with run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env,
                    tmp_path / "bot.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        body = slash_body("dig www.aksdns.test")
        assert post(url + "/slack/events", body, sign(body), FORM)[0] == 200
        # The bot waits out a Redis restart (bounded) before it says so.
        assert slack.wait_for(lambda s: any(m.ephemeral_to for m in s.messages), timeout=40)
        ephemeral = next(m for m in slack.state.messages if m.ephemeral_to)
        assert "unreachable" in ephemeral.text and "nothing was queued" in ephemeral.text
        wait_http(url + "/healthz", timeout=5)


def test_timed_out_job_is_reported_in_its_thread(
    redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path, silent_server: FakeDnsServer
) -> None:
    server = silent_server.server
    env = _env(redis_server.url, slack, cluster, AKSDNS_JOB_TIMEOUT="2")  # the bot sets the job timeout
    port = free_port()
    with run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env,
                    tmp_path / "bot2.log"), run_aksdns(["worker"], env, tmp_path / "worker2.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        body = slash_body(f"dig @{server.host}:{server.port} www.aksdns.test --timeout 20")
        assert post(url + "/slack/events", body, sign(body), FORM)[0] == 200
        assert slack.wait_for(lambda s: any("timed out" in r for r in _replies(slack)), timeout=40), (
            (tmp_path / "worker2.log").read_text()[-2000:]
        )


@pytest.mark.slow
def test_worker_killed_mid_job_is_reported_in_its_thread(
    redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path, bot: str, silent_server: FakeDnsServer
) -> None:
    """kill -9 of the worker (and its work-horse) mid-job: the next worker reports it."""
    import contextlib
    import os
    import signal

    server = silent_server.server
    env = _env(redis_server.url, slack, cluster)
    with run_aksdns(["worker"], env, tmp_path / "worker1.log") as first:
        body = slash_body(f"dig @{server.host}:{server.port} www.aksdns.test --timeout 30")
        assert post(bot, body, sign(body), FORM)[0] == 200
        # Progress rewrites the parent ("`dig` on `cluster`: …"): the job is running.
        assert slack.wait_for(lambda s: any("`dig` on" in m.text for m in s.messages), timeout=20)
        # As when a pod is killed: the worker and its work-horse (RQ forks it into a session of
        # its own, so the process group alone would miss it).
        children = [
            int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(p) == first.pid
        ]
        for pid in [first.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # RQ finds the job abandoned once its heartbeat expires (monitoring interval + 60 s).
    with run_aksdns(["worker"], env, tmp_path / "worker2.log"):
        assert slack.wait_for(lambda s: any("worker running it stopped" in r for r in _replies(slack)), timeout=150), (
            (tmp_path / "worker2.log").read_text()[-2000:]
        )


def sign_job(payload: dict[str, object]) -> dict[str, object]:
    """A spec signed with the test's job signing key, as the bot signs (unsigned ones never run)."""
    from aksdns import jobsign
    from tests.services import JOB_SIGNING_KEY

    return jobsign.sign(payload, JOB_SIGNING_KEY, now=time.time())


def _ppid(proc_dir: Path) -> int:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_a_burst_of_30_commands_is_answered(bot: str, slack: SlackStandIn, served: None) -> None:
    """Slack gives up on a command after 3 s: every one of 30 sent at once gets its 200 in time."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [slash_body(f"dig n{i}.burst.aksdns.test", user=f"U{i:03d}") for i in range(30)]

    def send(body: bytes) -> int:
        return post(bot, body, sign(body), FORM, timeout=3.0)[0]

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(send, bodies))
    assert statuses == [200] * 30
    assert slack.wait_for(lambda s: len([m for m in s.messages if m.thread_ts is None]) == 30, timeout=30)


def test_rerun_button_queues_again_in_the_same_thread(
    bot: str, worker: Path, slack: SlackStandIn, bind9_server: RealServer
) -> None:
    from aksdns import grammar
    from console import slackreq

    server = bind9_server.server
    command = grammar.parse(f"dig @{server.host}:{server.port} www.aksdns.test")
    thread_ts = "1700000000.000100"
    body = slackreq.button_body("aksdns_rerun", json.dumps(command.to_dict()), thread_ts=thread_ts)
    assert post(bot, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.thread_ts == thread_ts and m.blocks for m in s.messages), timeout=30)
    broken = slackreq.button_body("aksdns_rerun", "{not json", thread_ts=thread_ts)
    assert post(bot, broken, sign(broken), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.ephemeral_to and "no longer works" in m.text for m in s.messages),
                          timeout=10)


def test_every_job_is_recorded_in_its_thread_history(
    bot: str, worker: Path, slack: SlackStandIn, bind9_server: RealServer, redis_server: RedisServer
) -> None:
    from aksdns.results import ResultsStore

    server = bind9_server.server
    body = slash_body(f"dig @{server.host}:{server.port} www.aksdns.test")
    assert post(bot, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.thread_ts and m.blocks for m in s.messages), timeout=30)
    parent = next(m for m in slack.state.messages if m.thread_ts is None and not m.ephemeral_to)
    store = ResultsStore(redis_server.client())
    assert slack.wait_for(lambda _s: store.history(CHANNEL, parent.ts), timeout=10)
    (outcome,) = store.history(CHANNEL, parent.ts)
    assert (outcome.verb, outcome.user, outcome.status) == ("dig", "U0ONCALL", "ok")
    assert outcome.text.startswith("dig www.aksdns.test @") and "1 answered" in outcome.summary
    assert outcome.command["args"]["names"] == ["www.aksdns.test"]


def test_forged_button_is_refused_audited_and_queues_nothing(
    bot: str, slack: SlackStandIn, redis_server: RedisServer, cluster: str
) -> None:
    """Issue 10, item 1: this value once ran 100,000 queries from the worker."""
    from aksdns.results import AuditLog
    from console import slackreq

    started = time.time()
    forged = {"verb": "dig", "args": {"servers": [{"host": "127.0.0.1", "port": 16354}], "names": ["x.test"],
                                      "repeat": 100000, "timeout": 0.2}}
    body = slackreq.button_body("aksdns_rerun", json.dumps(forged), thread_ts="1700000000.000200", user="U0FORGER")
    assert post(bot, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.ephemeral_to == "U0FORGER" for m in s.messages), timeout=10)
    answer = next(m.text for m in slack.state.messages if m.ephemeral_to == "U0FORGER")
    assert "not valid" in answer and "between 1 and 50" in answer
    r = redis_server.client()
    assert r.llen(f"rq:queue:aksdns:{cluster}") == 0
    assert not [c for c in slack.state.calls if c[1] == "chat.postMessage"]
    audit = AuditLog(r)
    assert slack.wait_for(lambda _s: audit.read(since=started, user="U0FORGER"), timeout=10)
    (event,) = audit.read(since=started, user="U0FORGER")
    assert event.kind == "button" and not event.allowed and "between 1 and 50" in event.reason


def test_allowed_and_refused_commands_are_audited(
    bot: str, slack: SlackStandIn, redis_server: RedisServer, served: None
) -> None:
    from aksdns.results import AuditLog

    started = time.time()
    for text in ("dig www.aksdns.test --repeat 3", "capture --coredns", "ipam", "dig bad..name"):
        body = slash_body(text, user="U0AUDITED")
        assert post(bot, body, sign(body), FORM)[0] == 200
    audit = AuditLog(redis_server.client())
    assert slack.wait_for(lambda _s: len(audit.read(since=started, user="U0AUDITED")) == 4, timeout=10)
    events = {e.verb or "refused": e for e in audit.read(since=started, user="U0AUDITED")}
    assert events["dig"].allowed and events["dig"].text == "dig www.aksdns.test ×3"
    # capture needs a privileged user; ipam is read-only, open to every channel member
    assert not events["capture"].allowed and "privileged" in events["capture"].reason
    assert events["ipam"].allowed and events["ipam"].reason == "read-only command"
    assert not events["refused"].allowed and "empty label" in events["refused"].reason


def test_a_job_forged_in_redis_is_refused_by_the_worker(
    worker: Path, redis_server: RedisServer, cluster: str, slack: SlackStandIn
) -> None:
    """Redis access alone must not get past the grammar's bounds: the worker parses the spec again."""
    from rq import Queue
    from rq.job import Job
    from rq.serializers import JSONSerializer

    payload = {"id": "forged01", "cluster": cluster, "user": "U0FORGER", "thread": None,
               "command": {"verb": "check", "args": {"repeat": 1000000}}}
    queue = Queue(f"aksdns:{cluster}", connection=redis_server.client(), serializer=JSONSerializer)
    # Signed as the bot would (a compromised bot holds the key): the worker still checks the command.
    job = queue.enqueue("workers.runner.run_job", sign_job(payload), job_id="forged01")
    done = slack.wait_for(lambda _s: Job.fetch("forged01", connection=redis_server.client(),
                                               serializer=JSONSerializer).get_status() in ("failed", "finished"),
                          timeout=30)
    assert done, worker.read_text()[-2000:]
    job = Job.fetch("forged01", connection=redis_server.client(), serializer=JSONSerializer)
    assert job.get_status() == "failed"
    result = job.latest_result()
    assert result is not None and "malformed job spec" in (result.exc_string or "")
    assert "between 1 and 50" in (result.exc_string or "")


def test_dig_to_the_metadata_endpoint_is_refused_and_audited(
    bot: str, slack: SlackStandIn, redis_server: RedisServer, cluster: str
) -> None:
    from aksdns.results import AuditLog

    started = time.time()
    body = slash_body("dig @169.254.169.254 metadata.azure.internal", user="U0PROBER")
    status, response = post(bot, body, sign(body), FORM)
    assert status == 200 and "cloud metadata endpoint" in json.loads(response)["text"]
    assert redis_server.client().llen(f"rq:queue:aksdns:{cluster}") == 0
    audit = AuditLog(redis_server.client())
    assert slack.wait_for(lambda _s: audit.read(since=started, user="U0PROBER"), timeout=10)
    (event,) = audit.read(since=started, user="U0PROBER")
    assert not event.allowed and "metadata" in event.reason


def test_the_worker_refuses_a_port_that_is_no_dns_server_of_the_cluster(
    worker: Path, redis_server: RedisServer, cluster: str, slack: SlackStandIn
) -> None:
    """A job queued straight into Redis, past the bot: the worker applies the dig policy again."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    from aksdns.results import AuditLog

    started = time.time()
    from slack_sdk import WebClient

    parent = str(WebClient(token=BOT_TOKEN, base_url=slack.api_url).chat_postMessage(channel=CHANNEL, text="dig")["ts"])
    payload = {"id": "policy01", "cluster": cluster, "user": "U0SCANNER",
               "thread": {"channel": CHANNEL, "thread_ts": parent, "status_ts": parent},
               "command": {"verb": "dig", "args": {"servers": [{"host": "10.9.9.9", "port": 6379}],
                                                   "names": ["x.test"], "tcp": True}}}
    Queue(f"aksdns:{cluster}", connection=redis_server.client(), serializer=JSONSerializer).enqueue(
        "workers.runner.run_job", sign_job(payload), job_id="policy01")
    assert slack.wait_for(lambda _s: any("port 6379 is not a DNS server" in r for r in _replies(slack)),
                          timeout=30), worker.read_text()[-2000:]
    audit = AuditLog(redis_server.client())
    assert slack.wait_for(lambda _s: audit.read(since=started, user="U0SCANNER"), timeout=10)
    (event,) = audit.read(since=started, user="U0SCANNER")
    assert event.kind == "policy" and not event.allowed
