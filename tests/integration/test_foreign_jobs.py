"""Issue 10 item 2: anything written to Redis by someone other than the bot is refused by the worker.

An attacker here holds the Redis URL (as a compromised bot pod would) and writes RQ jobs
directly. A real `aksdns worker` serves the queue; each forged job must end failed, logged,
with nothing run and nothing posted, and the worker must keep serving genuine jobs.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from aksdns import grammar, jobsign
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.keys import queue_name
from aksdns.queue import ON_FAILURE, RUN_JOB
from console.standin import SlackStandIn
from tests.dnsservers import FakeDnsServer
from tests.services import (
    BOT_TOKEN,
    JOB_SIGNING_KEY,
    VENV_BIN,
    RedisServer,
    aksdns_env,
    queue_signed,
    run_aksdns,
    stack_env,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def proof_dir(tmp_path: Path) -> Path:
    path = tmp_path / "proof"
    path.mkdir()
    return path


@pytest.fixture
def worker(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path,
           proof_dir: Path) -> Iterator[Path]:
    env = stack_env(
        redis_server.url, slack, cluster, AKSDNS_JOB_TIMEOUT="20",
        # tests.proof is importable by the worker, as any module on its path would be
        PYTHONPATH=str(REPO), AKSDNS_TEST_PROOF_DIR=str(proof_dir),
    )
    log = tmp_path / "worker.log"
    with run_aksdns(["worker"], env, log):
        yield log


def _queue(redis_server: RedisServer, cluster: str) -> Queue:
    return Queue(queue_name(cluster), connection=redis_server.client(), serializer=JSONSerializer)


def _wait_status(job: Job, statuses: set[JobStatus], timeout: float = 30.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status in statuses:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job.id} still {job.get_status()}")


def _spec(cluster: str, server: FakeDnsServer, channel: str = "C0FORGED") -> JobSpec:
    command = grammar.parse(f"dig @{server.server.host}:{server.server.port} www.aksdns.test")
    return JobSpec.new(command, cluster=cluster, user="U0ATTACKER", thread=SlackThread(channel, "1.1", "1.1"))


def test_a_foreign_function_is_refused_and_nothing_runs(
    worker: Path, redis_server: RedisServer, cluster: str, proof_dir: Path, tmp_path: Path
) -> None:
    touched = tmp_path / "touched-by-subprocess"
    queue = _queue(redis_server, cluster)
    jobs = [
        queue.enqueue("subprocess.check_call", ["touch", str(touched)]),  # the reproduction
        queue.enqueue("tests.proof.touch", "x", on_failure=Callback("tests.proof.touch"),
                      on_success=Callback("tests.proof.touch")),
        queue.enqueue(RUN_JOB, {"id": "x"}, on_failure=Callback("tests.proof.touch")),
    ]
    for job in jobs:
        assert _wait_status(job, {JobStatus.FAILED, JobStatus.FINISHED}) == JobStatus.FAILED
    assert not touched.exists()
    assert list(proof_dir.iterdir()) == []
    log = worker.read_text()
    assert log.count("refused a job that aksdns did not queue") >= 3, log[-3000:]
    assert "subprocess.check_call is not an aksdns job entry point" in log


def test_unsigned_or_wrongly_signed_specs_are_refused_and_nothing_is_posted(
    worker: Path, redis_server: RedisServer, slack: SlackStandIn, cluster: str, answering_server: FakeDnsServer
) -> None:
    queue = _queue(redis_server, cluster)
    unsigned = _spec(cluster, answering_server)
    wrong_key = _spec(cluster, answering_server)
    genuine_elsewhere = _spec(cluster, answering_server)
    signed_elsewhere = jobsign.sign(genuine_elsewhere.to_dict(), JOB_SIGNING_KEY, now=time.time())
    jobs = [
        queue.enqueue(RUN_JOB, unsigned.to_dict(), job_id=unsigned.id, on_failure=Callback(ON_FAILURE)),
        queue.enqueue(RUN_JOB, jobsign.sign(wrong_key.to_dict(), "z" * 40, now=time.time()), job_id=wrong_key.id,
                      on_failure=Callback(ON_FAILURE)),
        # a genuine signed spec copied under another job id (a replay)
        queue.enqueue(RUN_JOB, signed_elsewhere, on_failure=Callback(ON_FAILURE)),
    ]
    for job in jobs:
        assert _wait_status(job, {JobStatus.FAILED, JobStatus.FINISHED}) == JobStatus.FAILED
    assert answering_server.udp_queries == 0 and answering_server.tcp_queries == 0  # nothing ran
    assert not [c for c in slack.state.calls if c[1].startswith(("chat.", "files."))], slack.state.calls
    log = worker.read_text()
    assert "signature is missing or wrong" in log
    assert "belongs to another job id" in log
    assert JOB_SIGNING_KEY not in log


def test_a_genuine_job_still_runs_once(
    worker: Path, redis_server: RedisServer, slack: SlackStandIn, cluster: str, answering_server: FakeDnsServer
) -> None:
    # Forged first, genuine after: the worker keeps serving.
    _queue(redis_server, cluster).enqueue("subprocess.check_call", ["true"])
    spec = _spec(cluster, answering_server, channel="C0INCIDENT")
    queue_signed(redis_server.client(), spec, job_timeout_s=20)
    assert slack.wait_for(lambda s: any(m.blocks for m in s.messages), timeout=30), worker.read_text()[-3000:]
    job = Job.fetch(spec.id, connection=redis_server.client(), serializer=JSONSerializer)
    assert _wait_status(job, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED
    # The same signed job hash put back on the queue is not run a second time.
    posts = len([c for c in slack.state.calls if c[1] == "chat.postMessage"])
    _queue(redis_server, cluster).enqueue_job(job)
    assert _wait_status(job, {JobStatus.FAILED}) == JobStatus.FAILED
    assert "ran before" in worker.read_text()
    assert len([c for c in slack.state.calls if c[1] == "chat.postMessage"]) == posts


def test_worker_and_bot_refuse_to_start_without_a_signing_key(redis_server: RedisServer, tmp_path: Path) -> None:
    env = aksdns_env(REDIS_URL=redis_server.url, AKSDNS_JOB_SIGNING_KEY="", SLACK_APP_TOKEN="xapp-x",
                     SLACK_BOT_TOKEN=BOT_TOKEN)
    for program in (["worker"], ["bot"]):
        result = subprocess.run([str(VENV_BIN / "aksdns"), *program], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 1, result
        assert "AKSDNS_JOB_SIGNING_KEY is not set" in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
