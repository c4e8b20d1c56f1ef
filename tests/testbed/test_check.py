"""`check` on the testbed: real API server, real CoreDNS processes, probe pods that really run.

Healthy → all green; each fault knob → the right facts and the right top hypothesis.  The job
runs with the worker's ServiceAccount token, so the chart's RBAC is exercised too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import CheckCommand, DnsServer
from aksdns.errors import ClusterError
from workers.analysis.check_facts import QUESTIONS
from workers.evidence.dns import Query
from workers.jobenv import JobEnv
from workers.jobs import check
from workers.probes import kube, node_probe, pods
from workers.probes.dns import run_queries_sync
from workers.report import Report, Status

pytestmark = pytest.mark.testbed

EXTERNAL = "microsoft.com"  # answered by the testbed's stand-in for the virtual network's DNS
DEAD_IP = "10.224.0.253"  # inside the testbed's virtual network, nothing listens there
NAMESPACE = "aksdns"


@pytest.fixture
def env(testbed: Any, tmp_path: Path) -> JobEnv:
    # A pod-style resolv.conf, as the worker pod would have it (ClusterFirst, ndots:5).
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        f"nameserver {testbed.kube_dns_ip}\n"
        f"search {NAMESPACE}.svc.cluster.local svc.cluster.local cluster.local testbed.internal.cloudapp.net\n"
        "options ndots:5\n"
    )
    return JobEnv(
        cluster="testbed",
        namespace=NAMESPACE,
        kubeconfig=str(testbed.write_worker_kubeconfig()),
        resolv_conf=resolv,
        azure_dns=testbed.upstream,  # the testbed's private stand-in for 168.63.129.16
        external_name=EXTERNAL,
    )


def run(env: JobEnv, **kw: Any) -> Report:
    return check.execute(CheckCommand(**kw), env)


def layers(report: Report) -> dict[str, str]:
    return {x["layer"]: x["status"] for x in report.data["layers"]}


def facts(report: Report) -> dict[str, str]:
    return {x["question"]: x["answer"] for x in report.data["facts"]}


def top(report: Report) -> str:
    return str(report.data["hypotheses"][0]["rule"])


def probe_pods_left(testbed: Any) -> list[str]:
    pods = testbed.kube.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector="app.kubernetes.io/managed-by=aksdns"
    )
    return [p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def wait_for(what: str, cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------- healthy


def test_healthy_cluster_is_all_green(testbed: Any, env: JobEnv, clean: None) -> None:
    report = run(env, names=(EXTERNAL,), repeat=2, nodes=0)
    assert layers(report) == {
        "CoreDNS pods": "ok",
        "CoreDNS Service": "ok",
        "Nodes": "ok",
        "Virtual network DNS": "ok",
    }, report.data["layers"]
    assert report.status is Status.OK and top(report) == "all_healthy"
    ev = report.data["evidence"]
    assert len(ev["node_probes"]) == len(testbed.nodes) and all(p["ok"] for p in ev["node_probes"])
    assert {p["nameservers"][0] for p in ev["node_probes"]} == {testbed.upstream}
    assert facts(report)[QUESTIONS[0]].startswith("Nowhere")
    assert ev["walks"] and ev["walks"][0]["queries"] >= 8  # the search list costs real queries
    assert probe_pods_left(testbed) == []


def test_internal_name_answers_with_the_kubernetes_service_ip(testbed: Any, env: JobEnv) -> None:
    report = run(env, names=(EXTERNAL,))
    internal = [
        p
        for p in report.data["evidence"]["probes"]
        if p["name"] == "kubernetes.default.svc.cluster.local" and p["rdtype"] == "A"
    ]
    assert internal and all(p["status"] == "NOERROR" and p["answers"] for p in internal)


# ---------------------------------------------------------------------------- upstream knobs


def test_dead_upstream(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.upstream_drop(100)
    report = run(env, names=(EXTERNAL,), nodes=1)
    assert top(report) == "vnet_dns", report.data["hypotheses"]
    assert "does not answer" in report.summary or "time" in report.summary
    assert layers(report)["Virtual network DNS"] == "fail"
    f = facts(report)
    assert "time-out" in f[QUESTIONS[1]]
    assert f[QUESTIONS[3]] == f"A specific domain: {EXTERNAL}"
    assert probe_pods_left(testbed) == []


def test_upstream_drops_some_queries(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.upstream_drop(40)
    report = run(env, names=(EXTERNAL,), repeat=10, nodes=1)
    assert top(report) == "vnet_dns", report.data["hypotheses"]
    assert facts(report)[QUESTIONS[2]].startswith("Intermittently")


def test_upstream_servfail(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.upstream_rcode("SERVFAIL")
    report = run(env, names=(EXTERNAL,), nodes=1)
    assert top(report) == "vnet_dns" and "SERVFAIL" in report.summary
    assert "SERVFAIL" in facts(report)[QUESTIONS[1]]


def test_upstream_six_second_delay(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.upstream_delay(6)
    report = run(env, names=(EXTERNAL,), nodes=1)
    assert top(report) == "vnet_dns", report.data["hypotheses"]
    assert "5 s" in facts(report)[QUESTIONS[7]] or "unanswered" in facts(report)[QUESTIONS[7]]


def test_private_zone_name_is_nxdomain_everywhere(testbed: Any, env: JobEnv, clean: None) -> None:
    name = "mydb.privatelink.database.windows.net"
    report = run(env, names=(EXTERNAL, name), nodes=1)
    assert top(report) == "private_zone"
    assert name in report.summary
    assert facts(report)[QUESTIONS[3]] == f"A specific domain: {name}"


# ---------------------------------------------------------------------------- CoreDNS knobs


def test_one_coredns_pod_dead(testbed: Any, env: JobEnv, clean: None) -> None:
    dead = testbed.coredns_kill()
    pod_ip = next(p.ip for p in testbed.coredns_pods() if p.name == dead)
    wait_for("the dead pod to stop answering", lambda: _times_out(pod_ip))
    report = run(env, names=(EXTERNAL,), repeat=4, nodes=1)
    assert top(report) == "one_coredns_pod", report.data["hypotheses"]
    assert dead in report.summary
    assert layers(report)["CoreDNS pods"] == "fail"
    assert dead in facts(report)[QUESTIONS[2]]


def _times_out(ip: str) -> bool:
    (res,) = run_queries_sync([Query(DnsServer(ip), "kubernetes.default.svc.cluster.local")], timeout=1.0)
    return res.status in ("TIMEOUT", "ERROR")


@pytest.fixture
def kube_dns_selector_broken(testbed: Any) -> Iterator[None]:
    """The kube-dns Service's selector matches nothing: no endpoints, so the VIP rejects (kube-proxy)."""
    path = "/api/v1/namespaces/kube-system/services/kube-dns"
    original = testbed.kube.get(path)["spec"]["selector"]
    try:
        testbed.kube.merge_patch(path, {"spec": {"selector": {"k8s-app": "matches-nothing"}}})
        yield
    finally:
        testbed.kube.merge_patch(path, {"spec": {"selector": {"k8s-app": None, **original}}})
        wait_for("kube-dns to answer again through every endpoint", lambda: _vip_answers(testbed.kube_dns_ip), 30)


def _vip_answers(ip: str) -> bool:
    """Twenty queries in a row answered: the VIP picks an endpoint at random, so all are back."""
    results = run_queries_sync(
        [Query(DnsServer(ip), "kubernetes.default.svc.cluster.local", attempt=i) for i in range(20)], timeout=1.0
    )
    return all(r.status == "NOERROR" for r in results)


def test_service_ip_fails_while_pods_answer(testbed: Any, env: JobEnv, kube_dns_selector_broken: None) -> None:
    wait_for("the VIP to lose its endpoints", lambda: _times_out(testbed.kube_dns_ip), 30)
    report = run(env, names=(EXTERNAL,), nodes=1)
    assert top(report) == "service_ip", report.data["hypotheses"]
    assert "no ready endpoints" in report.summary
    assert layers(report)["CoreDNS Service"] == "fail" and layers(report)["CoreDNS pods"] == "ok"


# ---------------------------------------------------------------------------- node knobs


@pytest.fixture
def node_upstream_unreachable(testbed: Any) -> Iterator[str]:
    """The nodes' resolv.conf names an upstream nobody answers at (as an NSG blocking 53 would).

    The testbed binds /etc/netns/<node>/resolv.conf over each node's /etc/resolv.conf; CoreDNS pods
    have their own and keep working, so only the node layer breaks.
    """
    paths = [Path("/etc/netns") / ns / "resolv.conf" for ns in testbed.node_netns.values()]
    saved = {p: p.read_text() for p in paths}
    try:
        for p, text in saved.items():
            p.write_text(text.replace(f"nameserver {testbed.upstream}", f"nameserver {DEAD_IP}"))
        yield DEAD_IP
    finally:
        for p, text in saved.items():
            p.write_text(text)


def test_node_upstream_unreachable(testbed: Any, env: JobEnv, node_upstream_unreachable: str) -> None:
    report = run(env, names=(EXTERNAL,), nodes=0)
    assert top(report) == "node_upstream", report.data["hypotheses"]
    assert layers(report)["Nodes"] == "fail" and layers(report)["CoreDNS pods"] == "ok"
    assert facts(report)[QUESTIONS[0]].startswith("Node")
    assert f"Custom DNS server on the virtual network: {DEAD_IP}" in facts(report)[QUESTIONS[4]]


def test_node_not_ready_is_reported_and_skipped(testbed: Any, env: JobEnv, clean: None) -> None:
    node = testbed.node_not_ready()
    report = run(env, names=(EXTERNAL,), nodes=0)
    ev = report.data["evidence"]
    assert node not in {p["node"] for p in ev["node_probes"]}
    assert f"{node} (NotReady)" in ev["skipped_nodes"]
    assert f"{node}: NotReady" in facts(report)[QUESTIONS[5]]


def test_node_overcommitted(testbed: Any, env: JobEnv, clean: None) -> None:
    node = testbed.node_overcommit()
    report = run(env, names=(EXTERNAL,), nodes=1)
    assert f"{node}: limits CPU" in facts(report)[QUESTIONS[5]]
    # Over-commit alone is a fact, not a hypothesis: it becomes one when queries fail.
    assert top(report) == "all_healthy"


# ---------------------------------------------------------------------------- custom DNS


@pytest.fixture
def coredns_custom(testbed: Any) -> Iterator[Callable[[dict[str, str]], None]]:
    path = "/api/v1/namespaces/kube-system/configmaps/coredns-custom"

    def apply(data: dict[str, str]) -> None:
        testbed.kube.merge_patch(path, {"data": data})

    original = testbed.kube.get(path).get("data") or {}
    try:
        yield apply
    finally:
        testbed.kube.request(
            "PUT",
            path,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "coredns-custom", "namespace": "kube-system"},
                "data": original,
            },
        )


def _coredns_says(testbed: Any, name: str, statuses: set[str]) -> bool:
    results = run_queries_sync([Query(DnsServer(ip), name) for ip in testbed.coredns_pod_ips], timeout=7.0)
    return all(r.status in statuses for r in results)


def test_custom_forwarder_unreachable(
    testbed: Any, env: JobEnv, coredns_custom: Callable[[dict[str, str]], None]
) -> None:
    coredns_custom({"contoso.server": f"contoso.corp:53 {{\n    errors\n    forward . {DEAD_IP}\n}}\n"})
    wait_for(
        "CoreDNS to load contoso.server",
        lambda: _coredns_says(testbed, "app.contoso.corp", {"SERVFAIL", "TIMEOUT"}),
        40,
    )
    report = run(env, names=(EXTERNAL, "app.contoso.corp"), nodes=1)
    assert top(report) == "custom_forwarder", report.data["hypotheses"]
    assert DEAD_IP in report.summary
    assert f"forward contoso.corp → {DEAD_IP}" in facts(report)[QUESTIONS[4]]


def test_custom_dns_configured_and_healthy(
    testbed: Any, env: JobEnv, coredns_custom: Callable[[dict[str, str]], None]
) -> None:
    coredns_custom({"contoso.server": f"contoso.internal:53 {{\n    errors\n    forward . {testbed.upstream}\n}}\n"})
    wait_for(
        "CoreDNS to load contoso.server",
        lambda: (
            kube.parse_custom(
                testbed.kube.get("/api/v1/namespaces/kube-system/configmaps/coredns-custom")["data"], None
            ).present
        ),
    )
    # The reload plugin picks the file up within seconds, later on a busy machine: wait until
    # every CoreDNS pod answers the name through the new server block.
    wait_for("CoreDNS to forward contoso.internal",
             lambda: _coredns_says(testbed, "db.contoso.internal", {"NOERROR"}), 40)
    report = run(env, names=(EXTERNAL, "db.contoso.internal"), nodes=1)
    assert top(report) == "all_healthy", report.data["hypotheses"]
    assert f"forward contoso.internal → {testbed.upstream}" in facts(report)[QUESTIONS[4]]


# ---------------------------------------------------------------------------- RBAC and cleanup


def test_denied_service_account_is_one_clear_line(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.worker_deny()
    wait_for("RBAC to deny", lambda: _denied(env))
    with pytest.raises(ClusterError) as err:
        run(env, names=(EXTERNAL,))
    assert err.value.status == 403 and "RBAC" in err.value.user_message


def _denied(env: JobEnv) -> bool:
    try:
        kube.list_coredns_pods(kube.connect(env.kubeconfig))
    except ClusterError as err:
        return err.status == 403
    return False


def test_janitor_removes_expired_probe_pods(testbed: Any, env: JobEnv) -> None:
    c = kube.connect(env.kubeconfig)
    plan = node_probe.ProbePlan(
        job_id="janitor0001",
        namespace=NAMESPACE,
        image="aksdns:latest",
        command=("sleep-forever-not-runnable",),
        names=(EXTERNAL,),
    )
    body = node_probe.probe_pod_manifest(plan, testbed.nodes[0], 0, now=time.time() - 3600)
    c.core.create_namespaced_pod(NAMESPACE, body, _request_timeout=10)
    fresh = node_probe.probe_pod_manifest(plan, testbed.nodes[0], 1)
    c.core.create_namespaced_pod(NAMESPACE, fresh, _request_timeout=10)
    try:
        assert pods.janitor(c.core, NAMESPACE) == 1
        left = probe_pods_left(testbed)
        assert fresh["metadata"]["name"] in left and body["metadata"]["name"] not in left
    finally:
        pods.delete_pod(c.core, NAMESPACE, fresh["metadata"]["name"])
        pods.delete_pod(c.core, NAMESPACE, body["metadata"]["name"])


def test_rerun_shows_what_changed(testbed: Any, env: JobEnv, clean: None) -> None:
    from workers import jobs

    command = CheckCommand(names=(EXTERNAL,), nodes=1)
    testbed.upstream_rcode("SERVFAIL")
    first = jobs.run(command, env)
    testbed.upstream_reset()
    env.previous = first.basis
    second = jobs.run(command, env)
    text = second.sections[0].text  # type: ignore[union-attr]
    assert "Since the previous run" in text and "no longer" in text
    assert any(c.startswith("Virtual network DNS: ❌ → ✅") for c in second.changes), second.changes


# Last: a crash loop leaves recent restarts behind, which later healthy runs would rightly report.
@pytest.fixture
def fresh_coredns_after(testbed: Any) -> Iterator[None]:
    """Replace crash-looped pods afterwards, so their restarts do not follow later runs on this testbed."""
    try:
        yield
    finally:
        testbed.reset_faults()
        for pod in testbed.coredns_pods():
            testbed.kube.delete(f"/api/v1/namespaces/kube-system/pods/{pod.name}")
        wait_for(
            "two fresh CoreDNS pods answering",
            lambda: len(pods := testbed.coredns_pods()) == 2
            and all(p.ready and not _times_out(p.ip) for p in pods),
            60,
        )


def test_one_coredns_pod_crashlooping(testbed: Any, env: JobEnv, fresh_coredns_after: None) -> None:
    bad = testbed.coredns_crashloop()
    wait_for("the pod to be not Ready", lambda: not next(p for p in testbed.coredns_pods() if p.name == bad).ready)
    report = run(env, names=(EXTERNAL,), nodes=1)
    assert top(report) == "one_coredns_pod", report.data["hypotheses"]
    assert bad in report.summary
    assert "not Ready" in facts(report)[QUESTIONS[6]]
