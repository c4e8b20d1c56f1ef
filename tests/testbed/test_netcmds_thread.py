"""`/aksdns ipam` and `/aksdns service` end to end on the testbed: signed slash command → `aksdns bot --http`
→ redis-server → `aksdns worker` (the worker's ServiceAccount token, real probe pods) → the Slack
stand-in's thread, with the JSON and CSV attachments; the fault is fixed and Re-run shows the change.

The transcripts these tests print (``pytest -s``) are the threads shown in the README and in
docs/ipam.md and docs/service.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import IpamCommand, ObjectRef, ServiceCommand
from console import slackreq
from console.standin import SlackStandIn
from testbed import faults_ipam, faults_service
from tests.services import (
    RedisServer,
    post,
    run_aksdns,
    run_http_bot,
    sign,
    slash_body,
    stack_env,
    wait_for_worker,
)

pytestmark = pytest.mark.testbed

FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"


@pytest.fixture
def events(netbed: Any, redis_server: RedisServer, slack: SlackStandIn, tmp_path: Path) -> Iterator[str]:
    env = stack_env(redis_server.url, slack, "testbed", KUBECONFIG=str(netbed.write_worker_kubeconfig()),
                    AKSDNS_JOB_TIMEOUT="120")
    with run_http_bot(env, tmp_path / "bot.log") as (url, _bot), run_aksdns(["worker"], env, tmp_path / "worker.log"):
        # Every test here serves cluster "testbed" on the session's Redis: the previous test's
        # worker left its last beat, so the bot would refuse a command typed before this one's.
        wait_for_worker(redis_server.url, "testbed", tmp_path / "worker.log")
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


def _stale_with_sandbox(tb: Any) -> str:
    node = faults_ipam.kubenet_stale(tb)
    faults_ipam.sandbox_failures(tb, node)
    return node


def _sandbox_only(tb: Any) -> str:
    faults_ipam.sandbox_failures(tb, tb.nodes[0])
    return str(tb.nodes[0])


# knob (returns the node it chose) → the thread's top finding ({node}: that node), and what else the
# first thread must show; each fault is then reset, and Re-run must say it is gone and all is healthy
IPAM_FAULTS: dict[str, tuple[Callable[[Any], str], str, tuple[str, ...]]] = {
    "stale_store_sandbox": (_stale_with_sandbox, "Addresses leaked by the network plugin on {node}",
                            ("FailedCreatePodSandBox ×204", "Contact Microsoft")),
    "pod_churn": (faults_ipam.pod_churn, "Pod churn faster than garbage collection on {node}",
                  ("Finished pods not yet garbage-collected",)),
    "nnc_exhausted": (faults_ipam.nnc_exhausted, "Subnet exhausted: aks-podsubnet", ("{node}", "Azure CNI")),
    "nnc_leaked": (faults_ipam.nnc_leaked, "Addresses leaked by the network plugin on {node}", ("Azure CNI",)),
    "sandbox_only": (_sandbox_only, "Pods cannot get an IP address on {node} (FailedCreatePodSandBox)",
                     ("stuck in ContainerCreating",)),
}


@pytest.mark.parametrize("fault", IPAM_FAULTS)
def test_ipam_thread(netbed: Any, events: str, slack: SlackStandIn, fault: str) -> None:
    knob, title, shows = IPAM_FAULTS[fault]
    try:
        node = knob(netbed)
        first, whole = ask_and_rerun(slack, events, f"ipam --node {node}", IpamCommand(node=node).to_dict(),
                                     lambda: faults_ipam.reset(netbed), "aksdns-ipam-testbed")
        top = title.format(node=node)
        assert f"*1. {top}" in first, first  # the fault's finding, nothing ranked above it
        for text in shows:
            assert text.format(node=node) in first, (text, first)
        assert f"no longer: {top}" in whole and "✅ All healthy" in whole, whole
    finally:
        faults_ipam.reset(netbed)


def _not_listening_fixed(tb: Any) -> None:
    faults_service.reset(tb)
    faults_service.healthy(tb)


def _drop_policy(tb: Any) -> None:
    tb.kube.delete(f"/apis/networking.k8s.io/v1/namespaces/{faults_service.NAMESPACE}/networkpolicies/"
                   "deny-web-ingress")


# knob → (its fix, the thread's top finding, what else the first thread must show)
SERVICE_FAULTS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], None], str, tuple[str, ...]]] = {
    "deny_policy": (faults_service.deny_policy, _drop_policy,
                    "A NetworkPolicy drops the traffic to the Service's pods", ("deny-web-ingress", "timeout")),
    "wrong_selector": (faults_service.wrong_selector, faults_service.restore_service,
                       "The Service's selector matches no pod", ("app=web (wants app=webapp)",)),
    "target_port_mismatch": (faults_service.target_port_mismatch, faults_service.restore_service,
                             "targetPort does not match the containers' ports", ("8081", "refused")),
    "not_listening": (faults_service.not_listening, _not_listening_fixed,
                      "The pods do not accept connections on the target port", ("refused",)),
}


@pytest.mark.parametrize("fault", SERVICE_FAULTS)
def test_service_thread(netbed: Any, events: str, slack: SlackStandIn, fault: str) -> None:
    knob, fix, title, shows = SERVICE_FAULTS[fault]
    try:
        ns, name = knob(netbed)
        first, whole = ask_and_rerun(slack, events, f"service {ns}/{name}",
                                     ServiceCommand(ref=ObjectRef(ns, name)).to_dict(), lambda: fix(netbed),
                                     f"aksdns-service-{ns}-{name}")
        assert f"*1. {title} ({ns}/{name})*" in first, first  # the first failing rung, nothing above it
        for text in shows:
            assert text in first, (text, first)
        assert f"no longer: {title}" in whole and "✅ All healthy" in whole, whole
    finally:
        faults_service.reset(netbed)
