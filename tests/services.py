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
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from aksdns import slackreq
from aksdns.standin import SlackStandIn
from tests.dnsservers import free_port, kill_group

BOT_TOKEN = "xoxb-test-0000-aksdns"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
VENV_BIN = Path(sys.executable).parent


@dataclass
class RedisServer:
    port: int
    url: str
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@contextlib.contextmanager
def run_redis(workdir: Path) -> Iterator[RedisServer]:
    """A real redis-server (Debian's) on a free loopback port, no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]
    log = (workdir / "redis.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = RedisServer(port, f"redis://127.0.0.1:{port}/0", proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                server.client().ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield server
    finally:
        kill_group(proc)
        log.close()


def aksdns_env(**extra: str) -> dict[str, str]:
    """Environment for aksdns processes: the test's PATH plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AKSDNS_", "REDIS_"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(extra)
    return env


@contextlib.contextmanager
def run_aksdns(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`aksdns ARGS` as a real process (its own session, killed with its children)."""
    out = log.open("wb")
    proc = subprocess.Popen([str(VENV_BIN / "aksdns"), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield proc
    finally:
        kill_group(proc)
        out.close()


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


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
