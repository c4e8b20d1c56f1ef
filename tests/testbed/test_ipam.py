"""`ipam` on the testbed: real store probe pods reading each node's kubenet store (a read-only hostPath),
a real NodeNetworkConfig CRD, real events; each fault knob → the right verdict ranked first.

The job runs with the worker's ServiceAccount token, so the testbed's worker RBAC is exercised. With
AKSDNS_RECORD=1 each case writes its evidence to tests/unit/data/ipam/ for the unit tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import IpamCommand
from aksdns.errors import ClusterError
from testbed import faults_ipam
from tests.testbed.limited import limited_worker
from workers.jobenv import JobEnv
from workers.jobs import ipam
from workers.report import Report

pytestmark = pytest.mark.testbed

NAMESPACE = "aksdns"
DATA = Path(__file__).resolve().parents[1] / "unit" / "data" / "ipam"


@pytest.fixture
def clean(netbed: Any) -> Iterator[None]:
    try:
        yield
    finally:
        faults_ipam.reset(netbed)


def run(env: JobEnv, **kw: Any) -> Report:
    return ipam.execute(IpamCommand(**kw), env)


def rules(report: Report) -> list[str]:
    return [h["rule"] for h in report.data["hypotheses"]]


def verdict(report: Report, expect: str, name: str) -> dict[str, Any]:
    """The top finding is ``expect``; recorded for the unit tests when AKSDNS_RECORD=1."""
    top = report.data["hypotheses"][0]
    assert top["rule"] == expect, [h["title"] for h in report.data["hypotheses"]]
    if os.environ.get("AKSDNS_RECORD") == "1":
        DATA.mkdir(parents=True, exist_ok=True)
        (DATA / f"{name}.json").write_text(json.dumps({"expect": expect, "evidence": report.data["evidence"]},
                                                      indent=1, sort_keys=True) + "\n")
    return dict(top)


def probe_pods_left(netbed: Any) -> list[str]:
    pods = netbed.kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods",
                            labelSelector="app.kubernetes.io/managed-by=aksdns")["items"]
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]


def test_healthy_nodes_have_as_many_addresses_as_running_pods(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    report = run(worker_env)
    verdict(report, "all_healthy", "healthy")
    nodes = report.data["layers"]
    assert [n["layer"] for n in nodes] == netbed.nodes and all(n["status"] == "ok" for n in nodes), nodes
    assert all(n["detail"].startswith("kubenet") for n in nodes)
    ev = report.data["evidence"]
    assert len(ev["stores"]) == len(netbed.nodes) and all(s["network"] == "kubenet" for s in ev["stores"])
    assert probe_pods_left(netbed) == []


def test_stale_store_entries_are_a_plugin_leak(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    node = faults_ipam.kubenet_stale(netbed)
    top = verdict(run(worker_env), "plugin_leak", "kubenet_stale")
    assert top["subjects"] == [{"kind": "node", "name": node, "namespace": ""}]
    assert any("match no pod and are older than" in e for e in top["evidence"])


def test_stale_entries_with_sandbox_failures_are_a_critical_leak(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    node = faults_ipam.kubenet_stale(netbed)
    faults_ipam.sandbox_failures(netbed, node)
    report = run(worker_env, node=node)
    top = verdict(report, "plugin_leak", "kubenet_stale_sandbox")
    assert top["severity"] == "critical" and report.status.value == "fail"
    assert any("FailedCreatePodSandBox ×204" in e and "No available addresses" in e for e in top["evidence"])
    assert [n["layer"] for n in report.data["layers"]] == [node]  # --node


def test_sandbox_failures_alone(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    faults_ipam.sandbox_failures(netbed)
    top = verdict(run(worker_env), "sandbox_failures", "sandbox_only")
    assert any("stuck in ContainerCreating" in e for e in top["evidence"])


def test_finished_pods_holding_addresses_are_churn(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    node = faults_ipam.pod_churn(netbed)
    report = run(worker_env)
    top = verdict(report, "gc_churn", "pod_churn")
    assert node in top["title"] and "plugin_leak" not in rules(report)


def test_azure_cni_subnet_exhausted(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    node = faults_ipam.nnc_exhausted(netbed)
    report = run(worker_env)
    top = verdict(report, "exhausted", "nnc_exhausted")
    assert "aks-podsubnet" in top["title"] and node in top["title"]
    assert all(n["detail"].startswith("Azure CNI") for n in report.data["layers"])
    assert report.data["evidence"]["stores"] == []  # no store probe where a NodeNetworkConfig speaks


def test_azure_cni_leaked_addresses(netbed: Any, worker_env: JobEnv, clean: None) -> None:
    node = faults_ipam.nnc_leaked(netbed)
    top = verdict(run(worker_env), "plugin_leak", "nnc_leaked")
    assert node in top["title"] and top["severity"] == "critical"


def test_unknown_node_is_one_line(netbed: Any, worker_env: JobEnv) -> None:
    with pytest.raises(ClusterError) as err:
        run(worker_env, node="aks-nodepool1-00000000-vmss00000z")
    assert "no node `aks-nodepool1-00000000-vmss00000z`" in err.value.user_message


def test_a_worker_that_may_not_read_events_gets_one_line_naming_it(netbed: Any) -> None:
    with limited_worker(netbed, drop={"events"}) as kubeconfig:
        report = run(JobEnv(cluster="testbed", namespace=NAMESPACE, kubeconfig=str(kubeconfig)))
    partial = next(h for h in report.data["hypotheses"] if h["rule"] == "partial_view")
    lines = [e for e in partial["evidence"] if "events" in e]
    assert len(lines) == 1 and "may not list events in all namespaces (HTTP 403)" in lines[0]
