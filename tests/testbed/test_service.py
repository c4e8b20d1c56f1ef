"""`service` on the testbed: backends that really listen, a ClusterIP and NetworkPolicies the testbed's
dataplane really enforces, CoreDNS really answering, connects from the worker and from a probe pod on
every node. Each fault → the first failing rung is the verdict; healthy → healthy.

With AKSDNS_RECORD=1 each case writes its evidence to tests/unit/data/service/ for the unit tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import ObjectRef, ServiceCommand
from testbed import faults_service
from tests.testbed.limited import denied, limited_worker
from workers.jobenv import JobEnv
from workers.jobs import service
from workers.report import Report

pytestmark = pytest.mark.testbed

NAMESPACE = "aksdns"
DATA = Path(__file__).resolve().parents[1] / "unit" / "data" / "service"


@pytest.fixture
def clean(netbed: Any) -> Iterator[None]:
    try:
        yield
    finally:
        faults_service.reset(netbed)


def run(env: JobEnv, ref: tuple[str, str], **kw: Any) -> Report:
    return service.execute(ServiceCommand(ref=ObjectRef(*ref), **kw), env)


def rungs(report: Report) -> dict[str, str]:
    return {x["layer"]: x["status"] for x in report.data["layers"]}


def verdict(report: Report, expect: str, name: str) -> dict[str, Any]:
    top = report.data["hypotheses"][0]
    assert top["rule"] == expect, ([h["title"] for h in report.data["hypotheses"]], report.data["layers"])
    if expect != "all_healthy":
        assert report.data["verdict"] == expect
    if os.environ.get("AKSDNS_RECORD") == "1":
        DATA.mkdir(parents=True, exist_ok=True)
        (DATA / f"{name}.json").write_text(json.dumps({"expect": expect, "evidence": report.data["evidence"]},
                                                      indent=1, sort_keys=True) + "\n")
    return dict(top)


def connects(report: Report, kind: str | None = None) -> list[dict[str, Any]]:
    return [c for c in report.data["evidence"]["connects"] if kind is None or c["target_kind"] == kind]


def test_healthy_service_from_name_to_pods(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    ref = faults_service.healthy(netbed)
    report = run(worker_env, ref)
    verdict(report, "all_healthy", "healthy")
    assert set(rungs(report).values()) == {"ok"}, report.data["layers"]
    dns = report.data["evidence"]["dns"]
    cluster_ip = report.data["evidence"]["service"]["cluster_ip"]
    assert dns and all(d["status"] == "NOERROR" and cluster_ip in d["answers"] for d in dns)
    sources = {c["source"] for c in connects(report)}
    assert sources == {"worker", *netbed.nodes}
    assert all(c["status"] == "open" for c in connects(report))


def test_wrong_selector_names_the_nearest_labels(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    ref = faults_service.wrong_selector(netbed)
    top = verdict(run(worker_env, ref), "selector", "wrong_selector")
    assert any("app=web (wants app=webapp)" in e for e in top["evidence"])


def test_target_port_mismatch(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    ref = faults_service.target_port_mismatch(netbed)
    report = run(worker_env, ref)
    top = verdict(report, "target_port", "target_port_mismatch")
    assert "8081" in top["title"] + " ".join(top["evidence"])
    assert {c["status"] for c in connects(report, "endpoint")} == {"refused"}


def test_backend_not_listening(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    ref = faults_service.not_listening(netbed)
    report = run(worker_env, ref, port=80)
    verdict(report, "backend", "not_listening")
    assert rungs(report)["targetPort → containerPort"] == "ok"


def test_denying_network_policy_drops_for_real(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    ref = faults_service.deny_policy(netbed)
    report = run(worker_env, ref)
    top = verdict(report, "network_policy", "deny_policy")
    assert any("no ingress rule, so it drops every incoming connection" in e for e in top["evidence"])
    pods = {p["name"]: p["node"] for p in report.data["evidence"]["pods"]}
    for c in connects(report, "endpoint"):
        own_node = c["source"] == pods.get(c["pod"])
        assert c["status"] == ("open" if own_node else "timeout"), c


def test_missing_service(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    faults_service.healthy(netbed)
    top = verdict(run(worker_env, (faults_service.NAMESPACE, "wbe")), "exists", "missing")
    assert any("web" in e for e in top["evidence"])


def test_a_worker_that_may_not_read_policies_gets_one_line_naming_it(netbed: Any, clean: None) -> None:
    ref = faults_service.healthy(netbed)
    with limited_worker(netbed, drop={"networkpolicies"}) as kubeconfig:
        report = run(JobEnv(cluster="testbed", namespace=NAMESPACE, kubeconfig=str(kubeconfig)), ref)
    assert rungs(report)["NetworkPolicies"] == "info"
    partial = next(h for h in report.data["hypotheses"] if h["rule"] == "partial_view")
    lines = [e for e in partial["evidence"] if "networkpolicies" in e]
    assert lines == [f"the worker's ServiceAccount may not list networkpolicies.networking.k8s.io in "
                     f"{faults_service.NAMESPACE} (HTTP 403); check the chart's RBAC"]


def test_a_worker_without_rights_gets_one_line(netbed: Any, worker_env: JobEnv) -> None:
    netbed.worker_deny()
    try:
        err = denied(lambda: run(worker_env, ("default", "kubernetes")))
    finally:
        netbed.worker_allow()
    assert err.status == 403 and "may not get Service default/kubernetes" in err.user_message
