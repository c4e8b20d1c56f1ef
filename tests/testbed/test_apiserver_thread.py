"""`/aksdns apiserver` end to end on the testbed: signed slash command → `aksdns bot --http` → redis-server →
`aksdns worker` (the worker's ServiceAccount token, real probe pods in the nodes' namespaces) → the Slack
stand-in's thread, with one node's way to the API server dropped.

The thread names the guide's cause and the node, carries the JSON and CSV attachments, and a Re-run click
after the fault is gone posts what changed. The README's apiserver thread is this test's output (`-s`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import ApiserverCommand
from console import slackreq
from console.standin import SlackStandIn
from tests.services import RedisServer, cluster_of, post, run_aksdns, run_http_bot, sign, slash_body, stack_env
from workers.analysis.apiserver_rules import CAUSES

pytestmark = pytest.mark.testbed

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"


@pytest.fixture
def bot_and_worker(testbed: Any, redis_server: RedisServer, slack: SlackStandIn, tmp_path: Path,
                   request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    env = stack_env(redis_server.url, slack, cluster_of(request, "tbapi"),
                    KUBECONFIG=str(testbed.write_worker_kubeconfig()), AKSDNS_NAMESPACE="aksdns",
                    AKSDNS_JOB_TIMEOUT="120")
    with run_http_bot(env, tmp_path / "bot.log") as (events, _bot), \
            run_aksdns(["worker"], env, tmp_path / "worker.log"):
        yield events, tmp_path / "worker.log"


def _replies(slack: SlackStandIn) -> list[Any]:
    return [m for m in slack.state.messages if m.thread_ts is not None and m.ephemeral_to is None and m.blocks]


def _files(slack: SlackStandIn) -> list[str]:
    return [f.name for f in slack.state.files.values() if f.name.startswith("aksdns-apiserver-")]


def test_apiserver_names_the_cut_off_node_in_the_thread_and_rerun_shows_it_fixed(
    testbed: Any, bot_and_worker: tuple[str, Path], slack: SlackStandIn
) -> None:
    events, worker_log = bot_and_worker
    try:
        node = testbed.apiserver_faults.node_unreachable()
        body = slash_body("apiserver")
        assert post(events, body, sign(body), FORM)[0] == 200
        assert slack.wait_for(lambda s: bool(_replies(slack)), timeout=120), worker_log.read_text()[-3000:]
        reply = _replies(slack)[0]
        assert slack.wait_for(lambda s: len(_files(slack)) >= 2, timeout=30), _files(slack)
        first = slack.transcript(CHANNEL, reply.thread_ts)
        print(first)  # the thread, for the README (pytest -s) and on failure
        assert f"{CAUSES['network_path']}: TCP to the API server is dropped" in first and node in first
        assert "API server · " in first and f"Node {node}" in first
        assert "Traceback" not in first
        assert {n.rsplit(".", 1)[-1] for n in _files(slack)} == {"json", "csv"}
        actions = [b for b in reply.blocks if b.get("type") == "actions"]
        rerun = next(e["value"] for a in actions for e in a["elements"] if e["action_id"] == "aksdns_rerun")
        assert json.loads(rerun) == ApiserverCommand().to_dict()

        testbed.apiserver_faults.reset()
        click = slackreq.button_body("aksdns_rerun", rerun, thread_ts=reply.thread_ts)
        assert post(events, click, sign(click), FORM)[0] == 200
        assert slack.wait_for(lambda s: len(_replies(slack)) >= 2, timeout=120), worker_log.read_text()[-3000:]
        second = slack.transcript(CHANNEL, reply.thread_ts)
        print(second[len(first):])
        assert "Since the previous run" in second and "no longer: " + CAUSES["network_path"] in second
        assert "All healthy" in second[len(first):]
    finally:
        testbed.reset_faults()
