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

from console import embedded, slackreq
from console.standin import SlackStandIn

BOT_TOKEN = "xoxb-test-0000-aksdns"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
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
