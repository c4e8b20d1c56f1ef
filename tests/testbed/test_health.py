"""`health` on the testbed: real CoreDNS processes, a real metrics.k8s.io (metrics-server behind the
aggregation layer), real probe pods for LocalDNS. Each knob gets the right top finding; the usage
equals `kubectl top`; Allocated resources equal `kubectl describe node`; each log class is produced by
the real CoreDNS. Jobs run with the worker's ServiceAccount token, so the RBAC is exercised too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aksdns.commands import CheckCommand, HealthCommand
from workers.analysis.health_quantity import usage_from
from workers.evidence.health import LogClass
from workers.jobenv import JobEnv
from workers.jobs import check, health
from workers.probes import health_kube, kube
from workers.report import Report

pytestmark = pytest.mark.testbed

NAMESPACE = "aksdns"


@pytest.fixture
def env(testbed: Any, tmp_path: Path) -> JobEnv:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {testbed.kube_dns_ip}\nsearch {NAMESPACE}.svc.cluster.local svc.cluster.local "
                      "cluster.local\noptions ndots:5\n")
    return JobEnv(cluster="testbed", namespace=NAMESPACE, kubeconfig=str(testbed.write_worker_kubeconfig()),
                  resolv_conf=resolv, azure_dns=testbed.upstream, external_name="microsoft.com")


def run(env: JobEnv, minutes: int = 1) -> Report:
    return health.execute(HealthCommand(minutes=minutes), env)


def rules(report: Report) -> list[str]:
    return [h["rule"] for h in report.data["hypotheses"]]


def evidence(report: Report) -> dict[str, Any]:
    ev: dict[str, Any] = report.data["evidence"]
    return ev


def wait_report(env: JobEnv, rule: str, timeout_s: float = 60.0, minutes: int = 1,
                log_class: LogClass | None = None, until: Callable[[Report], bool] | None = None) -> Report:
    """Run health until ``rule`` leads (and ``log_class`` is in the window, and ``until`` holds): a knob
    takes effect within seconds; never a timed assertion."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = run(env, minutes)
        logged = log_class is None or any(s["kind"] == log_class.value for s in evidence(report)["logs"])
        if (rules(report)[0] == rule and logged and (until is None or until(report))) or time.monotonic() > deadline:
            return report
        time.sleep(1.0)


def test_healthy_answers_every_part_and_usage_equals_kubectl_top(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.metrics_ready()
    # A one-minute window, so that errors earlier tests provoked (upstream knobs) have left it.
    report = wait_report(env, "all_healthy", timeout_s=120, minutes=1)
    text = "\n".join(str(s) for s in report.sections)
    for part in ("CoreDNS pods", "CoreDNS metrics (:9153)", "Nodes", "CoreDNS logs", "Configuration",
                 "Allocated resources:"):
        assert part in text, part
    assert rules(report)[0] == "all_healthy", report.data["hypotheses"][0]
    ev = evidence(report)
    assert all(p["usage"] is not None for p in ev["pods"])
    assert all(m["first"] and m["second"] for m in ev["scrapes"])  # both pods' :9153 scraped twice
    assert ev["autoscaler"]["expected_replicas"] == 2 and ev["autoscaler"]["replicas"] == 2

    # The worker's reading equals `kubectl top` read just before and after (metrics-server caches
    # each 10 s scrape; when both kubectl readings agree, the worker's must be the same).
    c = kube.connect(env.kubeconfig)
    for _ in range(10):
        before = _kubectl_top(testbed)
        ours = {name: usage_from(item) for name, item in health_kube.pod_metrics(c, "kube-system",
                                                                                 "k8s-app=kube-dns").items()}
        after = _kubectl_top(testbed)
        if before == after:
            assert {n: (u.cpu_m, u.memory_mi) for n, u in ours.items()} == before
            return
    pytest.fail("kubectl top never held still for one reading")


def _kubectl_top(testbed: Any) -> dict[str, tuple[int, int]]:
    out = testbed.kubectl("top", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "--no-headers")
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        name, cpu, mem = line.split()[:3]
        rows[name] = (int(cpu.rstrip("m")), int(mem.rstrip("Mi")))
    return rows


_ROW = re.compile(r"^\s+(cpu|memory)\s+(\S+) \((\d+)%\)\s+(\S+) \((\d+)%\)", re.MULTILINE)


def test_allocated_resources_equal_kubectl_describe_node(testbed: Any, env: JobEnv, clean: None) -> None:
    node = testbed.node_overcommit()  # limits above allocatable, so the percentages pass 100
    report = run(env, minutes=1)
    by_name = {n["name"]: n for n in evidence(report)["nodes"]}
    hosts = {p.node for p in testbed.coredns_pods()}
    assert set(by_name) == hosts
    for name in hosts:
        out = testbed.kubectl("describe", "node", name).stdout
        rows = {m.group(1): m.groups()[1:] for m in _ROW.finditer(out.split("Allocated resources:")[1])}
        n = by_name[name]
        assert rows["cpu"] == (n["cpu_requests"], str(n["cpu_requests_pct"]), n["cpu_limits"], str(n["cpu_limits_pct"]))
        assert rows["memory"] == (n["memory_requests"], str(n["memory_requests_pct"]), n["memory_limits"],
                                  str(n["memory_limits_pct"]))
    if node in by_name:
        assert by_name[node]["cpu_limits_pct"] > 100 and "node_overcommit_risk" in rules(report)
    # check reads the same figures: its over-commit percentage is kubectl's, truncated.
    facts = {f["question"]: f["answer"] for f in check.execute(CheckCommand(nodes=1), env).data["facts"]}
    perf = facts["What kind of performance problems are affecting the nodes?"]
    if node in by_name:
        assert f"limits CPU {by_name[node]['cpu_limits_pct']}%" in perf
    assert "needs `health`" not in perf


def test_oomkilled_restart(testbed: Any, env: JobEnv, clean: None) -> None:
    pod = testbed.coredns_oom()
    report = wait_report(env, "coredns_oomkilled")
    assert rules(report)[0] == "coredns_oomkilled", report.data["hypotheses"][0]
    assert pod in report.data["hypotheses"][0]["title"] or pod in " ".join(report.data["hypotheses"][0]["evidence"])
    # check titles the restart by its reason too.
    facts = {f["question"]: f["answer"] for f in check.execute(CheckCommand(nodes=1), env).data["facts"]}
    assert "OOMKilled" in facts["What kind of performance problems are affecting the CoreDNS pods?"]


def _previous_tails(report: Report) -> str:
    return " ".join(line for p in evidence(report)["pods"] for line in p["previous_log_tail"])


def test_forward_loop_real_coredns_exits(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.coredns_loop()
    # The rule leads as soon as the loop line is in the current container's log; the previous
    # container's log holds it only once the kubelet has restarted the crashed one (CI once ran
    # health in between): wait for that too.
    report = wait_report(env, "forward_loop", timeout_s=120, until=lambda r: "plugin/loop" in _previous_tails(r))
    assert rules(report)[0] == "forward_loop", report.data["hypotheses"][0]
    ev = evidence(report)
    tails = _previous_tails(report)
    assert "plugin/loop" in tails and "detected for zone" in tails  # the real CoreDNS's words
    assert any(s["kind"] == LogClass.LOOP.value for s in ev["logs"]) or "plugin/loop" in tails


def test_bad_coredns_custom_keeps_the_old_configuration(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.coredns_custom_bad()
    report = wait_report(env, "bad_coredns_custom", log_class=LogClass.RELOAD_ERROR)
    assert rules(report)[0] == "bad_coredns_custom", report.data["hypotheses"][0]
    ev = evidence(report)
    assert any(s["kind"] == LogClass.RELOAD_ERROR.value for s in ev["logs"]), ev["logs"]
    assert report.data["hypotheses"][0]["confidence"] == "high"
    # CoreDNS still answers with its old configuration.
    assert all(p["ready"] for p in ev["pods"])


def test_metrics_server_down(testbed: Any, env: JobEnv, clean: None) -> None:
    testbed.metrics_server_down()
    report = wait_report(env, "metrics_unavailable")
    assert rules(report)[0] == "metrics_unavailable", report.data["hypotheses"][0]
    assert "kubectl top" in evidence(report)["metrics_note"]
    facts = {f["question"]: f["answer"] for f in check.execute(CheckCommand(nodes=1), env).data["facts"]}
    assert "usage unknown" in facts["What kind of performance problems are affecting the CoreDNS pods?"]


def test_hot_pod(testbed: Any, env: JobEnv, clean: None) -> None:
    pod = testbed.hot_pod(qps=40, seconds=60)
    report = wait_report(env, "hot_pod")
    assert rules(report)[0] == "hot_pod", report.data["hypotheses"][0]
    assert pod in report.data["hypotheses"][0]["title"]


def test_localdns_state_and_a_dead_node(testbed: Any, env: JobEnv, clean: None) -> None:
    dead = testbed.localdns_dead()
    report = run(env, minutes=1)
    assert rules(report)[0] == "localdns_dead", report.data["hypotheses"][0]
    title = report.data["hypotheses"][0]["title"]
    assert dead in title and all(n not in title for n in testbed.nodes if n != dead)
    local = {n["node"]: n for n in evidence(report)["localdns"]}
    assert all(n["enabled"] for n in local.values())
    # check probes LocalDNS as a layer of its own on each node.
    data = check.execute(CheckCommand(nodes=0), env).data
    layer = next(x for x in data["layers"] if x["layer"] == "LocalDNS")
    assert layer["status"] == "fail" and dead in layer["detail"]
    assert "localdns_dead" in [h["rule"] for h in data["hypotheses"]]


def test_log_classes_from_real_coredns(testbed: Any, env: JobEnv, clean: None) -> None:
    """Upstream time-outs (health checks apart), SERVFAIL and API access failures, written by CoreDNS."""
    import dns.message
    import dns.query

    pod, other = testbed.coredns_pods()[:2]
    testbed.upstream_drop(100)
    for i in range(3):  # names no cache holds: each goes upstream and times out
        try:
            dns.query.udp(dns.message.make_query(f"t{i}-{time.time_ns()}.wild.example.com", "A"), pod.ip, timeout=7)
        except Exception:
            pass
    testbed.upstream_reset()
    # CoreDNS may not read the API: its watches fail (a new pod lists and is refused).
    testbed.kube.delete("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:coredns")
    try:
        testbed.kube.delete(f"/api/v1/namespaces/kube-system/pods/{other.name}")  # a new pod must list
        deadline = time.monotonic() + 60
        kinds: set[str] = set()
        while time.monotonic() < deadline:
            kinds = {s["kind"] for s in evidence(run(env, minutes=5))["logs"]}
            if {LogClass.UPSTREAM_TIMEOUT.value, LogClass.API_ACCESS.value} <= kinds:
                break
            time.sleep(2)
    finally:
        from testbed.kube import apply_object
        from testbed.manifests import kube_system

        for obj in kube_system():
            if obj["kind"] == "ClusterRoleBinding" and obj["metadata"]["name"] == "system:coredns":
                apply_object(testbed.kube, obj)
    assert LogClass.UPSTREAM_TIMEOUT.value in kinds
    assert LogClass.API_ACCESS.value in kinds


def test_npd_events_are_low_trust_evidence(testbed: Any, env: JobEnv, clean: None) -> None:
    """Node Problem Detector posts its DNS findings as node events; health lists them, low trust."""
    node = testbed.coredns_pods()[0].node
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    name = f"{node}.npd-{time.time_ns()}"
    testbed.kube.create("/api/v1/namespaces/default/events", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": node, "uid": node},
        "reason": "CoreDNSUnreachable", "type": "Warning", "count": 3,
        "message": "DNS query to 10.0.0.10 timed out", "source": {"component": "custom-plugin-monitor", "host": node},
        "firstTimestamp": stamp, "lastTimestamp": stamp})
    try:
        report = run(env)
        npd = next(h for h in report.data["hypotheses"] if h["rule"] == "npd_dns_events")
        assert npd["confidence"] == "low" and node in " ".join(npd["evidence"])
        assert rules(report)[0] != "npd_dns_events"  # never leads: known false positives
    finally:
        testbed.kube.delete(f"/api/v1/namespaces/default/events/{name}")
