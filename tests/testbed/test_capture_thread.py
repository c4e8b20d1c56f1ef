"""`/aksdns capture --coredns --pod default/<client> --duration …` typed as a Slack request, end to end:
signed slash command → `aksdns bot --http` (confirmation) → Start click → redis-server → `aksdns worker`
(ephemeral capture containers on the testbed, tcpdump streaming) → the Slack stand-in's thread holds the
merged pcapng, the analysis, the per-hop view and the progress it showed while capturing."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.capture_demo import capture_in_slack
from console.standin import SlackStandIn
from tests.services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    RedisServer,
    aksdns_env,
    run_aksdns,
    running_bot,
    wait_for_worker,
)
from tests.testbed.capture_kit import nothing_left

pytestmark = pytest.mark.testbed
CHANNEL = "C0INCIDENT"


@pytest.fixture
def pipeline(testbed: Any, redis_server: RedisServer, slack: SlackStandIn,
             tmp_path: Path) -> Iterator[tuple[str, Path]]:
    env = aksdns_env(REDIS_URL=redis_server.url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                     SLACK_SIGNING_SECRET=SIGNING_SECRET, AKSDNS_CLUSTER="tbcap",
                     KUBECONFIG=str(testbed.write_worker_kubeconfig()), AKSDNS_PRIVILEGED_USERS="U0ONCALL",
                     AKSDNS_NAMESPACE="aksdns", AKSDNS_PROBE_IMAGE="aksdns:test")
    with running_bot(env, tmp_path / "bot.log") as events, run_aksdns(["worker"], env, tmp_path / "worker.log"):
        wait_for_worker(redis_server.url, "tbcap", tmp_path / "worker.log")
        yield events, tmp_path / "worker.log"


def test_capture_typed_in_slack_lands_in_its_thread(testbed: Any, pipeline: tuple[str, Path],
                                                    slack: SlackStandIn) -> None:
    events, worker_log = pipeline
    client = testbed.dns_client("slack-client")
    names = [f"thread{i}.wild.example.com." for i in range(6)] + ["db.contoso.com."]
    try:
        run = capture_in_slack(events, SIGNING_SECRET, slack, CHANNEL,
                               "capture --coredns --pod default/slack-client --duration 8s",
                               traffic=lambda: client.query(names, rate=6),
                               timeout_s=120)
    finally:
        client.delete()
    transcript = slack.transcript(CHANNEL, run.root.ts)
    print(transcript)  # the whole thread, shown by pytest on failure (and with -s)
    assert run.analysis_at is not None, worker_log.read_text()[-3000:]
    assert "Started by <@U0ONCALL>" in transcript
    # The merged pcapng is in the thread, one interface per target, named after the pods.
    files = [f for f in slack.state.files.values() if f.name.endswith(".pcapng")]
    assert len(files) == 1 and files[0].content[:4] == struct.pack("<I", 0x0A0D0D0A)
    for pod in ["default/slack-client", *(f"kube-system/{p.name}" for p in testbed.coredns_pods())]:
        assert pod.encode() in files[0].content
    assert "DNS traffic analysis — capture-" in transcript and "The guide's table" in transcript
    assert "Where the time went, per hop" in transcript and "db.contoso.com" in transcript
    assert "ephemeral container in the pod" in transcript
    # Live progress in the parent message: packets and bytes per target while it captured, then done.
    assert any("capturing" in t and "default/slack-client" in t and " pkts " in t for t in run.progress_seen), \
        run.progress_seen
    assert "done in" in run.parent.text
    nothing_left(testbed)
