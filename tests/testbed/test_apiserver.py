"""`apiserver` on the testbed: a real kube-apiserver, probe pods that really run in the nodes' namespaces.

Healthy says healthy; each fault knob (testbed/faults_apiserver.py, and `worker_deny`) gets its cause
on top with nothing ranked above it; the RBAC fix the thread attaches, applied as is, makes the 403 go
away. The job runs with the worker's ServiceAccount token, so the RBAC it needs is exercised too.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aksdns.commands import ApiserverCommand, CheckCommand, ObjectRef
from testbed import manifests
from testbed.kube import apply_object
from workers import jobs
from workers.analysis.apiserver_rules import CAUSES
from workers.jobenv import JobEnv
from workers.jobs import apiserver, check
from workers.report import Report, Status

pytestmark = pytest.mark.testbed

NAMESPACE = "aksdns"
# This checkout's `aksdns` (the testbed's runner may have been started from another one).
PROBE_COMMAND = (str(Path(sys.executable).parent / "aksdns"), "probe")


@pytest.fixture
def env(testbed: Any) -> JobEnv:
    return JobEnv(cluster="testbed", namespace=NAMESPACE, kubeconfig=str(testbed.write_worker_kubeconfig()),
                  probe_command=PROBE_COMMAND)


def run(env: JobEnv, **kw: Any) -> Report:
    return apiserver.execute(ApiserverCommand(**kw), env)


def rules(report: Report) -> list[str]:
    return [h["rule"] for h in report.data["hypotheses"]]


def layers(report: Report) -> dict[str, str]:
    return {x["layer"]: x["status"] for x in report.data["layers"]}


def only_cause(report: Report, rule: str) -> None:
    """The fault's rule leads and no other diagnosis is ranked (notes about probing may follow)."""
    assert rules(report)[0] == rule, report.data["hypotheses"]
    assert [r for r in rules(report) if r != "probe_notes"] == [rule], report.data["hypotheses"]
    assert report.status is Status.FAIL


def probe_pods_left(testbed: Any) -> list[str]:
    pods = testbed.kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods",
                            labelSelector="app.kubernetes.io/managed-by=aksdns")
    return [p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def test_healthy_says_healthy(testbed: Any, env: JobEnv, clean: None) -> None:
    report = run(env)
    assert rules(report) == ["all_healthy"] and report.status is Status.OK, report.data["hypotheses"]
    ev = report.data["evidence"]
    assert {p["vantage"] for p in ev["probes"]} == {"worker", *testbed.nodes}
    assert all(p["tls"]["ok"] and p["readyz"]["status"] == 200 for p in ev["probes"])
    # From nodes: the pod environment's address and the kubernetes Service's endpoint, as pods would use them.
    assert {p["target"] for p in ev["probes"] if p["vantage"] != "worker"} == {"pod environment",
                                                                                 "kubernetes endpoint"}
    assert layers(report)["konnectivity-agent"] == "ok" and layers(report)["kubernetes Service"] == "ok"
    assert all(r["log_read"] for r in ev["node_runs"])
    assert {a.filename.rsplit(".", 1)[-1] for a in report.attachments} == {"json", "csv"}
    assert probe_pods_left(testbed) == []


def test_one_node_cannot_reach_the_api_server(testbed: Any, env: JobEnv, clean: None) -> None:
    node = testbed.apiserver_faults.node_unreachable()
    report = run(env)
    only_cause(report, "network_path")
    assert report.summary.startswith(CAUSES["network_path"]) and node in report.summary
    dropped = [p for p in report.data["evidence"]["probes"] if p["vantage"] == node]
    assert dropped and all(p["connect"]["error"] == "timeout" for p in dropped)
    assert layers(report)[f"Node {node}"] == "fail"
    assert probe_pods_left(testbed) == []


def test_tls_name_mismatch(testbed: Any, env: JobEnv, clean: None) -> None:
    wrong = testbed.apiserver_faults.tls_name_mismatch()
    report = run(env)
    only_cause(report, "certificate")
    assert report.summary.startswith(CAUSES["apiserver"]) and "name mismatch" in report.summary
    bad = [p for p in report.data["evidence"]["probes"] if p["tls"]["error"] == "name_mismatch"]
    assert {p["vantage"] for p in bad} == set(testbed.nodes)
    assert all(p["certificate"]["names"] == [wrong] and p["certificate"]["issued_by_cluster_ca"] for p in bad)


def test_rbac_403_and_the_attached_fix(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.worker_deny()
    report = run(env)
    only_cause(report, "rbac")
    assert report.summary.startswith("RBAC: the worker's ServiceAccount aksdns/aksdns-worker may not")
    notes = report.data["evidence"]["notes"]
    assert notes and all(n.count("\n") == 0 and "403" in n for n in notes)
    fix = next(a for a in report.attachments if a.filename == apiserver.RBAC_FIX)
    objects = [o for o in yaml.safe_load_all(fix.content.decode()) if o]
    try:
        for obj in objects:
            apply_object(testbed.kube, obj)
        again = run(env)
        assert "rbac" not in rules(again), again.data["hypotheses"]
        assert again.data["layers"][0]["status"] == "ok"
    finally:
        for obj in objects:
            kind = obj["kind"].lower() + "s"
            ns = obj["metadata"].get("namespace")
            where = f"namespaces/{ns}/" if ns else ""
            testbed.kube.delete(f"/apis/rbac.authorization.k8s.io/v1/{where}{kind}/{obj['metadata']['name']}")


def test_kubernetes_endpoints_missing(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.apiserver_faults.kubernetes_endpoints_missing()
    report = run(env)
    only_cause(report, "kubernetes_endpoints")
    assert layers(report)["kubernetes Service"] == "fail"


def test_konnectivity_absent(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.apiserver_faults.konnectivity_absent()
    report = run(env)
    only_cause(report, "konnectivity")
    runs = report.data["evidence"]["node_runs"]
    assert runs and all(r["ok"] and r["log_read"] is False for r in runs)  # probes ran; their logs could not be read


@pytest.fixture
def bare_service_account(testbed: Any) -> Iterator[ObjectRef]:
    ref = ObjectRef("testbed-faults", "cart")
    for obj in manifests.worker_rbac():  # a testbed started from an older checkout lacks subjectaccessreviews
        apply_object(testbed.kube, obj)
    apply_object(testbed.kube, {"apiVersion": "v1", "kind": "ServiceAccount",
                                "metadata": {"name": ref.name, "namespace": ref.namespace}})
    try:
        yield ref
    finally:
        testbed.kube.delete(f"/api/v1/namespaces/{ref.namespace}/serviceaccounts/{ref.name}")


def test_as_a_service_account_without_rights(testbed: Any, env: JobEnv, bare_service_account: ObjectRef) -> None:
    report = run(env, service_account=bare_service_account)
    assert rules(report)[0] == "service_account_rbac", report.data["hypotheses"]
    assert str(bare_service_account) in report.summary
    fix = next(a for a in report.attachments if a.filename == apiserver.RBAC_FIX)
    role, binding = (o for o in yaml.safe_load_all(fix.content.decode()) if o)
    ns = bare_service_account.namespace
    try:
        apply_object(testbed.kube, role)
        apply_object(testbed.kube, binding)
        again = run(env, service_account=bare_service_account, client_ip="192.0.2.7")
        assert rules(again) == ["all_healthy"], again.data["hypotheses"]
        access = again.data["evidence"]["subject_access"]["permissions"]
        assert any(p["verb"] == "list" and p["resource"] == "pods" and p["allowed"] for p in access)
        assert not any(p["resource"] == "secrets" and p["allowed"] for p in access)
        # No Azure here: the client address is left to the `az` command the thread names.
        azure = next(x for x in again.data["layers"] if x["layer"] == "Azure")
        assert "192.0.2.7" in azure["detail"] and "az aks show" in azure["detail"]
    finally:
        for obj in (role, binding):
            testbed.kube.delete(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{obj['kind'].lower()}s/"
                                f"{obj['metadata']['name']}")


def test_rejected_credentials_are_authentication(testbed: Any, env: JobEnv, tmp_path: Path) -> None:
    config = yaml.safe_load(Path(str(env.kubeconfig)).read_text())
    config["users"][0]["user"] = {"token": "not-a-token-the-api-server-knows"}
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text(yaml.safe_dump(config))
    env.kubeconfig = str(bad)
    report = run(env)
    assert rules(report)[0] == "authentication", report.data["hypotheses"]
    assert report.summary.startswith(CAUSES["authentication"])


def test_rerun_shows_what_changed(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.apiserver_faults.node_unreachable()
    first = jobs.run(ApiserverCommand(), env)
    testbed.reset_faults()
    env.previous = first.basis
    second = jobs.run(ApiserverCommand(), env)
    text = "\n".join(getattr(s, "text", "") for s in second.sections[:3])
    assert "Since the previous run" in text and "no longer: " + first.summary in text


def test_check_links_to_apiserver_when_coredns_cannot_list(testbed: Any, env: JobEnv, clean: None,
                                                           tmp_path: Path) -> None:
    """CoreDNS's RBAC gone (its log: `Failed to list`): `check` sees cluster names fail at every CoreDNS
    pod while the world resolves, and points at `apiserver`; `apiserver --as kube-system/coredns` then
    names RBAC for CoreDNS's ServiceAccount."""
    testbed.apiserver_faults.coredns_cannot_list()
    pod = testbed.coredns_pods()[0].name
    log = testbed.kubectl("-n", "kube-system", "logs", pod).stdout
    assert "failed to list" in log.lower() and "forbidden" in log, log[-2000:]
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {testbed.kube_dns_ip}\nsearch {NAMESPACE}.svc.cluster.local svc.cluster.local "
                      "cluster.local\noptions ndots:5\n")
    checked = check.execute(CheckCommand(names=("microsoft.com",), repeat=2, nodes=0), dataclasses.replace(
        env, resolv_conf=resolv, azure_dns=testbed.upstream, external_name="microsoft.com"))
    link = next(h for h in checked.data["hypotheses"] if h["rule"] == "apiserver_link")
    assert "/aksdns apiserver" in link["title"], checked.data["hypotheses"]
    assert any(a.startswith("/aksdns apiserver --as kube-system/coredns") for a in link["actions"]), link
    coredns = run(env, service_account=ObjectRef("kube-system", "coredns"))
    assert rules(coredns)[0] == "service_account_rbac", coredns.data["hypotheses"]
    assert "kube-system/coredns" in coredns.summary
