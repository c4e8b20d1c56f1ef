"""Issue 10 item 9: a worker's temporary paths never reach the thread.

A real `aksdns worker` runs `analyze` on a file that is not a capture, uploaded to a thread of
the Slack stand-in; the error names the file, not where the worker kept it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from aksdns import grammar
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.queue import JobQueue
from console.standin import SlackStandIn
from tests.services import BOT_TOKEN, JOB_SIGNING_KEY, RedisServer, aksdns_env, run_aksdns
from workers.slack_post import public_text

CHANNEL = "C0INCIDENT"


def test_a_bad_capture_is_named_without_the_workers_temporary_path(
    redis_server: RedisServer, slack: SlackStandIn, tmp_path: Path
) -> None:
    cluster = "tp" + str(int(time.time() * 1000) % 10**8)
    parent = slack.state.call("chat.postMessage", {"channel": CHANNEL, "text": "queued"})["ts"]
    slack.state.add_user_file(CHANNEL, parent, "dns-cap1.pcap", b"this is not a capture file at all" * 4)
    env = aksdns_env(REDIS_URL=redis_server.url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                     AKSDNS_CLUSTER=cluster, AKSDNS_JOB_TIMEOUT="30")
    with run_aksdns(["worker"], env, tmp_path / "worker.log"):
        spec = JobSpec.new(grammar.parse("analyze"), cluster=cluster, user="U0ONCALL",
                           thread=SlackThread(CHANNEL, parent, parent))
        JobQueue(redis_server.client(), job_timeout_s=30, signing_key=JOB_SIGNING_KEY).enqueue(spec)
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
