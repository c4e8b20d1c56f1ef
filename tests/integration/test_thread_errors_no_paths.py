"""Issue 10 item 9: a worker's temporary paths never reach the thread.

A real `aksdns worker` runs `analyze` on a file that is not a capture, uploaded to a thread of
the Slack stand-in; the error names the file, not where the worker kept it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from console.standin import SlackStandIn
from tests.services import RedisServer, queue_signed, run_aksdns, stack_env, thread_job
from workers.slack_post import public_text

CHANNEL = "C0INCIDENT"


def test_a_bad_capture_is_named_without_the_workers_temporary_path(
    redis_server: RedisServer, slack: SlackStandIn, tmp_path: Path
) -> None:
    cluster = "tp" + str(int(time.time() * 1000) % 10**8)
    spec = thread_job(slack, "analyze", cluster, CHANNEL)
    assert spec.thread is not None
    parent = spec.thread.thread_ts
    slack.state.add_user_file(CHANNEL, parent, "dns-cap1.pcap", b"this is not a capture file at all" * 4)
    env = stack_env(redis_server.url, slack, cluster, AKSDNS_JOB_TIMEOUT="30")
    with run_aksdns(["worker"], env, tmp_path / "worker.log"):
        queue_signed(redis_server.client(), spec)
        # (predicates run under the stand-in's lock: read s.messages, not s.thread(), which takes it)
        assert slack.wait_for(lambda s: any(m.text.startswith("❌") and m.thread_ts == parent for m in s.messages),
                              timeout=40), (
            (tmp_path / "worker.log").read_text()[-3000:]
        )
        assert slack.wait_for(lambda s: "could not finish" in (s.find(CHANNEL, parent) or s.messages[0]).text, 20)
    said = [m.text for m in slack.state.thread(CHANNEL, parent)]
    error = next(t for t in said if t.startswith("❌"))
    assert "dns-cap1.pcap" in error
    assert tempfile.gettempdir() not in " ".join(said) and "aksdns-" not in " ".join(said), said


def test_public_text_keeps_file_names() -> None:
    tmp = tempfile.gettempdir()
    assert public_text(f"{tmp}/aksdns-1a2b3c4d-x_y9/00-dns.pcap: not a capture") == "00-dns.pcap: not a capture"
    assert public_text("/etc/resolv.conf stays") == "/etc/resolv.conf stays"
