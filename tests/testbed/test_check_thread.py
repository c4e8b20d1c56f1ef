"""`/aksdns check` end to end on the testbed: signed slash command → `aksdns bot --http` → redis-server
→ `aksdns worker` (the worker's ServiceAccount token, real probe pods) → the Slack stand-in's thread.

The diagnosis lands in the thread with its attachments and buttons, and a Re-run click in that thread
posts what changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import CheckCommand
from console import slackreq
from console.standin import SlackStandIn
from tests.dnsservers import free_port
from tests.services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    RedisServer,
    aksdns_env,
    post,
    run_aksdns,
    sign,
    slash_body,
    wait_for_worker,
    wait_http,
)

pytestmark = pytest.mark.testbed

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    return "tbchk" + str(abs(hash(request.node.name)) % 10**6)


@pytest.fixture
def pipeline_env(
    testbed: Any, redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path
) -> dict[str, str]:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        f"nameserver {testbed.kube_dns_ip}\n"
        "search aksdns.svc.cluster.local svc.cluster.local cluster.local testbed.internal.cloudapp.net\n"
        "options ndots:5\n"
    )
    return aksdns_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=slack.api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        AKSDNS_CLUSTER=cluster,
        KUBECONFIG=str(testbed.write_worker_kubeconfig()),
        AKSDNS_AZURE_DNS=testbed.upstream,  # the testbed's stand-in for 168.63.129.16
        AKSDNS_RESOLV_CONF=str(resolv),
        AKSDNS_JOB_TIMEOUT="120",
    )


@pytest.fixture
def bot_and_worker(pipeline_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    bot_args = ["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with run_aksdns(bot_args, pipeline_env, tmp_path / "bot.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        with run_aksdns(["worker"], pipeline_env, tmp_path / "worker.log"):
            wait_for_worker(pipeline_env["REDIS_URL"], pipeline_env["AKSDNS_CLUSTER"], tmp_path / "worker.log")
            yield url + "/slack/events", tmp_path / "worker.log"


def _replies(slack: SlackStandIn) -> list[Any]:
    return [m for m in slack.state.messages if m.thread_ts is not None and m.ephemeral_to is None and m.blocks]


def _text(slack: SlackStandIn, message: Any) -> str:
    return slack.transcript(CHANNEL, message.thread_ts)


def test_check_fault_diagnosis_lands_in_the_thread_and_rerun_shows_the_change(
    testbed: Any, bot_and_worker: tuple[str, Path], slack: SlackStandIn
) -> None:
    events, worker_log = bot_and_worker
    try:
        dead = testbed.coredns_kill()
        body = slash_body("check microsoft.com --repeat 3")
        assert post(events, body, sign(body), FORM)[0] == 200
        assert slack.wait_for(lambda s: bool(_replies(slack)), timeout=90), worker_log.read_text()[-3000:]
        reply = _replies(slack)[0]
        transcript = _text(slack, reply)
        assert "CoreDNS pods" in transcript and "Virtual network DNS" in transcript
        assert f"One CoreDNS pod misbehaves: {dead}" in transcript
        assert "Where does the DNS resolution fail?" in transcript
        # The JSON and CSV of every probe follow the reply into the thread (files_upload_v2).
        assert slack.wait_for(
            lambda s: len([f for f in s.files.values() if f.name.startswith("aksdns-check-")]) >= 2, timeout=20
        ), [f.name for f in slack.state.files.values()]
        assert slack.wait_for(
            lambda s: any(
                f.name.endswith(".csv") and f.content.startswith(b"layer,target,role,server") for f in s.files.values()
            ),
            timeout=20,
        )
        actions = [b for b in reply.blocks if b.get("type") == "actions"]
        ids = {e["action_id"] for a in actions for e in a["elements"]}
        assert {"aksdns_rerun", "aksdns_capture"} <= ids
        rerun_value = next(e["value"] for a in actions for e in a["elements"] if e["action_id"] == "aksdns_rerun")
        assert json.loads(rerun_value) == CheckCommand(names=("microsoft.com",), repeat=3).to_dict()

        testbed.coredns_reset()
        click = slackreq.button_body("aksdns_rerun", rerun_value, thread_ts=reply.thread_ts)
        assert post(events, click, sign(click), FORM)[0] == 200
        assert slack.wait_for(lambda s: len(_replies(slack)) >= 2, timeout=90), worker_log.read_text()[-3000:]
        second = _text(slack, _replies(slack)[1])
        print(second)  # the whole thread, shown by pytest on failure (and with -s)
        assert "Since the previous run" in second
        assert "no longer: One CoreDNS pod misbehaves" in second
    finally:
        testbed.reset_faults()
