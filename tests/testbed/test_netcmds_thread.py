"""`/aksdns ipam` and `/aksdns service` end to end on the testbed: signed slash command → `aksdns bot --http`
→ redis-server → `aksdns worker` (the worker's ServiceAccount token, real probe pods) → the Slack
stand-in's thread, with the JSON and CSV attachments; the fault is fixed and Re-run shows the change.

The transcripts these tests print (``pytest -s``) are the threads shown in the README and in
docs/ipam.md and docs/service.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import IpamCommand, ObjectRef, ServiceCommand
from console import slackreq
from console.standin import SlackStandIn
from testbed import faults_ipam, faults_service
from tests.services import RedisServer, post, run_aksdns, run_http_bot, sign, slash_body, stack_env

pytestmark = pytest.mark.testbed

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"


@pytest.fixture
def events(netbed: Any, redis_server: RedisServer, slack: SlackStandIn, tmp_path: Path) -> Iterator[str]:
    env = stack_env(redis_server.url, slack, "testbed", KUBECONFIG=str(netbed.write_worker_kubeconfig()),
                    AKSDNS_JOB_TIMEOUT="120")
    with run_http_bot(env, tmp_path / "bot.log") as (url, _bot), run_aksdns(["worker"], env, tmp_path / "worker.log"):
        yield url


def _replies(slack: SlackStandIn) -> list[Any]:
    return [m for m in slack.state.messages if m.thread_ts is not None and m.ephemeral_to is None and m.blocks]


def ask_and_rerun(slack: SlackStandIn, events: str, text: str, command: dict[str, Any], fix: Any,
                  stem: str) -> tuple[str, str]:
    """Type ``text``, wait for the thread, fix the fault, click Re-run: (first transcript, whole thread)."""
    before = len(_replies(slack))
    body = slash_body(text)
    assert post(events, body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: len(_replies(slack)) > before, timeout=90)
    reply = _replies(slack)[before]
    first = slack.transcript(CHANNEL, reply.thread_ts)
    assert slack.wait_for(lambda s: {f"{stem}.json", f"{stem}.csv"} <= {f.name for f in s.files.values()},
                          timeout=30), [f.name for f in slack.state.files.values()]
    rerun = next(e["value"] for b in reply.blocks if b.get("type") == "actions" for e in b["elements"]
                 if e["action_id"] == "aksdns_rerun")
    assert json.loads(rerun) == command
    fix()
    click = slackreq.button_body("aksdns_rerun", rerun, thread_ts=reply.thread_ts)
    assert post(events, click, sign(click), FORM)[0] == 200
    assert slack.wait_for(lambda s: len(_replies(slack)) > before + 1, timeout=90)
    whole = slack.transcript(CHANNEL, reply.thread_ts)
    print(whole)
    return first, whole


def test_ipam_thread(netbed: Any, events: str, slack: SlackStandIn) -> None:
    try:
        node = faults_ipam.kubenet_stale(netbed)
        faults_ipam.sandbox_failures(netbed, node)
        first, whole = ask_and_rerun(slack, events, f"ipam --node {node}", IpamCommand(node=node).to_dict(),
                                     lambda: faults_ipam.reset(netbed), "aksdns-ipam-testbed")
        assert f"Addresses leaked by the network plugin on {node}" in first
        assert "FailedCreatePodSandBox ×204" in first and "Contact Microsoft" in first
        assert "Since the previous run" in whole and "no longer: Addresses leaked" in whole
    finally:
        faults_ipam.reset(netbed)


def test_service_thread(netbed: Any, events: str, slack: SlackStandIn) -> None:
    try:
        ns, name = faults_service.deny_policy(netbed)

        def fix() -> None:
            netbed.kube.delete(f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/deny-web-ingress")

        first, whole = ask_and_rerun(slack, events, f"service {ns}/{name}",
                                     ServiceCommand(ref=ObjectRef(ns, name)).to_dict(), fix,
                                     f"aksdns-service-{ns}-{name}")
        assert "A NetworkPolicy drops the traffic to the Service's pods" in first
        assert "deny-web-ingress" in first and "timeout" in first
        assert "no longer: A NetworkPolicy drops" in whole and "All healthy" in whole
    finally:
        faults_service.reset(netbed)
