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
from pathlib import Path

import pytest
import redis

from console import embedded
from console.standin import SlackStandIn
from tests.dnsservers import FakeDnsServer, free_port
from tests.services import VENV_BIN, queue_signed, run_aksdns, stack_env, thread_job


def redis_on(port: int, workdir: Path) -> contextlib.AbstractContextManager[str]:
    """redis-server on ``port``, no persistence: stopping it loses everything, as a restarted pod does."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    return embedded.redis_server(workdir / f"redis-{time.monotonic_ns()}", port=port)


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
    env = stack_env(url, slack, cluster)
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
                server = answering_server.server
                spec = thread_job(slack, f"dig @{server.host}:{server.port} www.aksdns.test", cluster)
                queue_signed(redis.Redis.from_url(url), spec)
                assert slack.wait_for(lambda s: any(m.blocks for m in s.messages), timeout=60), log.read_text()[-3000:]
                assert "registered again" in log.read_text()
