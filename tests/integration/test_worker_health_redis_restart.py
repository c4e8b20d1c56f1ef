"""Issue 10 item 5: a worker stays healthy (and serving) across a restart of Redis.

A real redis-server without persistence is stopped and started again on the same port under a
running `aksdns worker`; `aksdns healthcheck worker` (the chart's liveness probe) must say healthy
again, and a job queued after the restart must be answered.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from aksdns import grammar
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.queue import JobQueue
from console import embedded
from console.standin import SlackStandIn
from tests.dnsservers import FakeDnsServer, free_port
from tests.services import BOT_TOKEN, JOB_SIGNING_KEY, VENV_BIN, aksdns_env, run_aksdns


@contextlib.contextmanager
def redis_on(port: int, workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]
    url = f"redis://127.0.0.1:{port}/0"
    with embedded.process(argv, {}, workdir / f"redis-{time.monotonic_ns()}.log"):
        client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "aksdns"), "healthcheck", "worker"], env=env, capture_output=True,
                          text=True, timeout=30)


def wait_healthy(env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        result = healthcheck(env)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_a_running_worker_registers_again_when_redis_restarts(
    tmp_path: Path, slack: SlackStandIn, answering_server: FakeDnsServer
) -> None:
    port = free_port()
    cluster = "hc" + str(port)
    url = f"redis://127.0.0.1:{port}/0"
    env = aksdns_env(REDIS_URL=url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN, AKSDNS_CLUSTER=cluster)
    log = tmp_path / "worker.log"
    with contextlib.ExitStack() as first_redis:
        first_redis.enter_context(redis_on(port, tmp_path))
        with run_aksdns(["worker"], env, log) as worker:
            assert wait_healthy(env, 30).returncode == 0, log.read_text()[-2000:]
            first_redis.close()  # Redis stops; the worker keeps running
            with redis_on(port, tmp_path):  # and starts again, empty, on the same port
                result = wait_healthy(env, 60)
                assert result.returncode == 0, (result.stdout, log.read_text()[-3000:])
                assert worker.poll() is None
                # Serving, not only registered: a job queued now is answered.
                parent = slack.state.call("chat.postMessage", {"channel": "C0INCIDENT", "text": "queued"})["ts"]
                server = answering_server.server
                spec = JobSpec.new(grammar.parse(f"dig @{server.host}:{server.port} www.aksdns.test"),
                                   cluster=cluster, user="U0ONCALL", thread=SlackThread("C0INCIDENT", parent, parent))
                JobQueue(redis.Redis.from_url(url), job_timeout_s=30, signing_key=JOB_SIGNING_KEY).enqueue(spec)
                assert slack.wait_for(lambda s: any(m.blocks for m in s.messages), timeout=60), log.read_text()[-3000:]
                assert "registered again" in log.read_text()
