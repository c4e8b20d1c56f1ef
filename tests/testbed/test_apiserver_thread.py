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
from console.standin import SlackStandIn, blocks_to_text
from tests.services import (
    RedisServer,
    cluster_of,
    post,
    run_aksdns,
    run_http_bot,
    sign,
    slash_body,
    stack_env,
    wait_for_worker,
)
from workers.analysis.apiserver_rules import CAUSES
from workers.jobs.apiserver import RBAC_FIX

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
        # The bot refuses a cluster with no live worker: wait for this one's first heartbeat.
        wait_for_worker(redis_server.url, env["AKSDNS_CLUSTER"], tmp_path / "worker.log")
        yield events, tmp_path / "worker.log"


def _replies(slack: SlackStandIn) -> list[Any]:
    return [m for m in slack.state.messages if m.thread_ts is not None and m.ephemeral_to is None and m.blocks]


def _done(slack: SlackStandIn) -> int:
    """Status lines the runner finished (it edits them after posting the reply)."""
    return sum(1 for m in slack.state.messages if "`apiserver` done in" in (m.text or ""))


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
        assert slack.wait_for(lambda s: len(_files(slack)) >= 2 and _done(slack) >= 1, timeout=30), _files(slack)
        reply = _replies(slack)[0]
        first = slack.transcript(CHANNEL, reply.thread_ts)
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
        assert slack.wait_for(lambda s: len(_replies(slack)) >= 2 and _done(slack) >= 2, timeout=120), \
            worker_log.read_text()[-3000:]
        print(slack.transcript(CHANNEL, reply.thread_ts))  # the whole thread, for the README (pytest -s)
        second = blocks_to_text(_replies(slack)[1].blocks)
        assert "Since the previous run" in second and "no longer: " + CAUSES["network_path"] in second
        assert "All healthy" in second and "Traceback" not in second
    finally:
        testbed.reset_faults()


# Each remaining fault knob, its verdict's opening words, and what else its thread must name.
OTHER_FAULTS = [
    ("tls_name_mismatch", CAUSES["apiserver"], "name mismatch"),
    ("kubernetes_endpoints_missing", CAUSES["apiserver"], "the kubernetes Service has no endpoints"),
    ("konnectivity_absent", CAUSES["apiserver"], "konnectivity-agent is down"),
    ("worker_deny", CAUSES["rbac"], "aksdns/aksdns-worker"),
]


def test_every_other_fault_is_named_in_its_own_thread(
    testbed: Any, bot_and_worker: tuple[str, Path], slack: SlackStandIn
) -> None:
    """The same Slack path for the other knobs: each `/aksdns apiserver` gets its thread, whose verdict
    (the reply's first line) is the fault's cause, with the RBAC fix attached for the 403."""
    events, worker_log = bot_and_worker
    try:
        for n, (knob, cause, detail) in enumerate(OTHER_FAULTS, 1):
            testbed.reset_faults()
            target = testbed if knob == "worker_deny" else testbed.apiserver_faults
            getattr(target, knob)()
            body = slash_body(f"apiserver --client 192.0.2.{n}")  # a command of its own: no dedup with the last
            assert post(events, body, sign(body), FORM)[0] == 200
            assert slack.wait_for(lambda s, n=n: len(_replies(slack)) >= n and _done(slack) >= n, timeout=120), \
                worker_log.read_text()[-3000:]
            reply = _replies(slack)[n - 1]
            verdict = blocks_to_text(reply.blocks).splitlines()[1]
            assert verdict.startswith(f"❌ {cause}") and detail in verdict, (knob, verdict)
            assert "Traceback" not in slack.transcript(CHANNEL, reply.thread_ts)
        assert slack.wait_for(lambda s: RBAC_FIX in [f.name for f in s.files.values()], timeout=30), \
            [f.name for f in slack.state.files.values()]
    finally:
        testbed.reset_faults()
