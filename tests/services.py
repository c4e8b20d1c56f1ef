"""Real services for integration tests: redis-server, the Slack stand-in, aksdns processes.

Everything listens on loopback, on free ports, and is stopped (process group killed) when
the fixture ends, also after a failed test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from aksdns import grammar
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.queue import JobQueue
from console import embedded, slackreq
from console.standin import SlackStandIn

BOT_TOKEN = "xoxb-test-0000-aksdns"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
JOB_SIGNING_KEY = "test-job-signing-key-0123456789abcdef0123456789"
VENV_BIN = Path(sys.executable).parent


@dataclass
class RedisServer:
    url: str

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@contextlib.contextmanager
def run_redis(workdir: Path) -> Iterator[RedisServer]:
    """A real redis-server (Debian's) on a free loopback port, no persistence."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: apt-get install -y redis-server")
    with embedded.redis_server(workdir) as url:
        yield RedisServer(url)


def aksdns_env(**extra: str) -> dict[str, str]:
    """Environment for aksdns processes: the test's PATH plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AKSDNS_", "REDIS_"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    # The test DNS servers listen on loopback, which the dig policy refuses by default.
    env["AKSDNS_DIG_ALLOW"] = "127.0.0.0/8"
    env["AKSDNS_JOB_SIGNING_KEY"] = JOB_SIGNING_KEY  # the bot and the workers of a test share it
    # Tests share one redis-server and a few user and channel names: rate limits (per minute) would
    # make one test's commands count against the next one's. Their own test sets them.
    env["AKSDNS_RATE_PER_USER"] = "0"
    env["AKSDNS_RATE_PER_CHANNEL"] = "0"
    env.update(extra)
    return env


@contextlib.contextmanager
def run_aksdns(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`aksdns ARGS` as a real process (its own session, killed with its children)."""
    with embedded.process(embedded.aksdns_argv(*args), env, log) as proc:
        yield proc


def wait_http(url: str, timeout: float = 20.0) -> None:
    embedded.wait_http_ok(url, timeout)


@contextlib.contextmanager
def running_bot(env: dict[str, str], log: Path) -> Iterator[str]:
    """`aksdns bot --http` on a free loopback port, answering; yields its events URL."""
    port = embedded.free_port()
    with run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, log):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/slack/events"


def sign(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    return slackreq.sign(body, secret, timestamp)


slash_body = slackreq.slash_body
post = slackreq.post


def cluster_of(request: pytest.FixtureRequest, prefix: str) -> str:
    """A queue per test: jobs of one test never reach another's worker."""
    return prefix + str(abs(hash(request.node.name)) % 10**8)


def stack_env(redis_url: str, slack: SlackStandIn, cluster: str, **extra: str) -> dict[str, str]:
    """Settings of a bot and worker wired to this test's Redis and Slack stand-in."""
    return aksdns_env(REDIS_URL=redis_url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                      SLACK_SIGNING_SECRET=SIGNING_SECRET, AKSDNS_CLUSTER=cluster, **extra)


@contextlib.contextmanager
def run_http_bot(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`aksdns bot --http` (gunicorn, one worker process); yields its /slack/events URL and process."""
    port = embedded.free_port()
    with run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, log) as p:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/slack/events", p


def queue_signed(connection: redis.Redis, spec: JobSpec, job_timeout_s: float = 30) -> None:
    """Queue a job spec as the bot does (signed with the test's key), skipping Slack."""
    JobQueue(connection, job_timeout_s=job_timeout_s, signing_key=JOB_SIGNING_KEY).enqueue(spec)


def thread_job(slack: SlackStandIn, text: str, cluster: str, channel: str = "C0INCIDENT") -> JobSpec:
    """A job spec for ``text`` answering in a new thread of ``channel`` (its parent posted in the stand-in)."""
    parent = str(slack.state.call("chat.postMessage", {"channel": channel, "text": "queued"})["ts"])
    return JobSpec.new(grammar.parse(text), cluster=cluster, user="U0ONCALL",
                       thread=SlackThread(channel, parent, parent))


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    """This test's cluster name (and so its own queue); a module may define its own."""
    return cluster_of(request, "t")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with run_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn(BOT_TOKEN).start()
    try:
        yield standin
    finally:
        standin.stop()


@contextlib.contextmanager
def heartbeat_only(redis_url: str, cluster: str) -> Iterator[None]:
    """A worker's heartbeat without the worker: the bot sees ``cluster`` served and queues its jobs,
    which stay queued (tests of the bot's own path: dedup, bursts, audit)."""
    import time

    from aksdns.liveness import Beat, Heartbeat

    name = f"aksdns-{cluster}-heartbeat-only-{os.getpid()}"
    started = time.time()
    beat = Heartbeat(redis.Redis.from_url(redis_url, socket_timeout=5),
                     lambda: Beat(name, cluster, "test", "localhost", os.getpid(), started, time.time()),
                     interval_s=1.0).start()
    try:
        yield
    finally:
        beat.stop()


def wait_for_worker(redis_url: str, cluster: str, log: Path, timeout: float = 60.0) -> None:
    """Until the worker started for ``cluster`` has sent its first heartbeat.

    The bot answers "no worker is serving" at once when the cluster's last worker stopped (its last
    beat is still there: a previous test's worker on the same session Redis), and after a 10 s grace
    when none was ever seen: a command typed before the new worker's first beat gets that answer,
    not a thread.
    """
    import time

    from aksdns.liveness import live_workers

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    deadline = time.monotonic() + timeout
    while not any(b.cluster == cluster for b in live_workers(client)):
        assert time.monotonic() < deadline, f"no heartbeat of a {cluster} worker:\n" + log.read_text()[-3000:]
        time.sleep(0.2)


@pytest.fixture
def served(redis_server: RedisServer, cluster: str) -> Iterator[None]:
    """The test's cluster looks served (a heartbeat, no worker): the bot queues its jobs, which stay queued."""
    with heartbeat_only(redis_server.url, cluster):
        yield
