"""health's rules on evidence shaped like each testbed knob: the right finding leads."""

from __future__ import annotations

import dataclasses

import pytest

from workers.analysis.health_report import describe_node_text
from workers.analysis.health_rules import diagnose
from workers.evidence.health import (
    Condition,
    ConfigIssue,
    HealthEvidence,
    LocalDnsNode,
    LogClass,
    LogSummary,
    NodeHealth,
    PodHealth,
    PodMetrics,
    Resources,
    Scrape,
    Usage,
)
from workers.evidence.layers import Layer, ProbeRecord

RES = Resources("100m", "3", "70Mi", "500Mi")


def pod(name: str, **kw: object) -> PodHealth:
    base = dict(name=name, node="n1", ip="10.244.0.2", phase="Running", ready=True, age_s=600.0, resources=RES,
                usage=Usage(3, 20))
    base.update(kw)
    return PodHealth(**base)  # type: ignore[arg-type]


def scrape(name: str, requests: float, *, hc: float = 0.0, hits: float = 50.0, misses: float = 5.0) -> PodMetrics:
    a = Scrape(at=0.0, requests=100.0, responses={"NOERROR": 100.0}, cache_hits=10.0, cache_misses=1.0)
    b = Scrape(at=5.0, requests=100.0 + requests, responses={"NOERROR": 100.0 + requests},
               healthcheck_failures={"10.224.0.254:53": hc} if hc else {}, cache_hits=10.0 + hits,
               cache_misses=1.0 + misses)
    return PodMetrics(pod=name, url=f"http://x/{name}", first=a, second=b)


def node(name: str = "n1", **kw: object) -> NodeHealth:
    base = dict(name=name, roles=("CoreDNS",), conditions=(Condition("Ready", "True"),),
                cpu_requests="200m", cpu_requests_pct=10, cpu_limits="6", cpu_limits_pct=315,
                memory_requests="140Mi", memory_requests_pct=3, memory_limits="1000Mi", memory_limits_pct=21)
    base.update(kw)
    return NodeHealth(**base)  # type: ignore[arg-type]


def healthy() -> HealthEvidence:
    return HealthEvidence(cluster="tb", pods=(pod("coredns-a"), pod("coredns-b", node="n2")),
                          scrapes=(scrape("coredns-a", 20), scrape("coredns-b", 18)),
                          nodes=(node(cpu_limits_pct=90), node("n2", cpu_limits_pct=90)))


def top(ev: HealthEvidence) -> str:
    return diagnose(ev)[0].rule


def test_healthy() -> None:
    assert top(healthy()) == "all_healthy"


def test_oomkilled() -> None:
    ev = healthy()
    ev.pods = (pod("coredns-a", restarts=1, last_reason="OOMKilled", last_exit_code=137), ev.pods[1])
    f = diagnose(ev)[0]
    assert f.rule == "coredns_oomkilled" and "memory limit" in f.title and "500Mi" in f.hypothesis.evidence[0]


def test_error_is_a_crash_not_pressure() -> None:
    ev = healthy()
    ev.pods = (pod("coredns-a", restarts=3, last_reason="Error", last_exit_code=1, ready=False,
                   waiting_reason="CrashLoopBackOff", previous_log_tail=("[ERROR] something broke",)), ev.pods[1])
    f = diagnose(ev)[0]
    assert f.rule == "coredns_crash" and "CrashLoopBackOff" in f.title and "pressure" not in f.title
    assert any("something broke" in e for e in f.hypothesis.evidence)


def test_forward_loop() -> None:
    ev = healthy()
    loop = '[FATAL] plugin/loop: Loop (127.0.0.1:5 -> :53) detected for zone "."'
    ev.pods = (pod("coredns-a", restarts=2, last_reason="Error", ready=False, previous_log_tail=(loop,)), ev.pods[1])
    assert top(ev) == "forward_loop"


def test_bad_custom() -> None:
    ev = healthy()
    ev.config_issues = (ConfigIssue("override_forward", "coredns-custom key x.override, line 1", "second forward",
                                    "move it", "critical"),)
    ev.logs = (LogSummary(LogClass.RELOAD_ERROR, 2, ("coredns-a",), ("[ERROR] Restart failed: ...",)),)
    f = diagnose(ev)[0]
    assert f.rule == "bad_coredns_custom" and f.hypothesis.confidence == "high"


def test_metrics_missing_leads_when_alone() -> None:
    ev = healthy()
    ev.metrics_available = False
    ev.metrics_note = "Kubernetes API error 503"
    ev.pods = tuple(dataclasses.replace(p, usage=None) for p in ev.pods)
    assert top(ev) == "metrics_unavailable"


def test_hot_pod() -> None:
    ev = healthy()
    ev.scrapes = (scrape("coredns-a", 400), scrape("coredns-b", 10))
    f = diagnose(ev)[0]
    assert f.rule == "hot_pod" and "coredns-a" in f.title


def test_failing_forwarder() -> None:
    ev = healthy()
    ev.scrapes = (scrape("coredns-a", 20, hc=3), scrape("coredns-b", 20, hc=3))
    ev.logs = (LogSummary(LogClass.UPSTREAM_TIMEOUT, 4, ("coredns-a",), ("x",)),)
    assert top(ev) == "failing_forwarder"


def test_localdns_dead() -> None:
    ev = healthy()
    rec = ProbeRecord(Layer.LOCALDNS, "n3", "169.254.10.10", "kubernetes.default.svc.cluster.local", "A", 1,
                      "TIMEOUT", None)
    ok = dataclasses.replace(rec, target="n1", status="NOERROR", latency_ms=1.0)
    ev.localdns = (LocalDnsNode("n1", True, (ok,)), LocalDnsNode("n3", True, (rec,)))
    f = diagnose(ev)[0]
    assert f.rule == "localdns_dead" and "n3" in f.title and "n1" not in f.title


def test_throttling_and_overcommit() -> None:
    ev = healthy()
    ev.pods = (pod("coredns-a", usage=Usage(2700, 40)), ev.pods[1])
    ev.nodes = (node(cpu_limits_pct=157),)
    rules = [f.rule for f in diagnose(ev)]
    assert rules[0] == "cpu_throttling_risk" and "node_overcommit_risk" in rules


def test_overcommit_is_a_risk_until_the_node_is_busy() -> None:
    ev = healthy()
    ev.nodes = (node(cpu_limits_pct=157, allocatable_cpu="1900m", allocatable_memory="4694956Ki",
                     usage=Usage(200, 900)),)
    found = diagnose(ev)
    assert found[0].rule == "all_healthy" and found[1].rule == "node_overcommit_risk"  # the testbed's own state
    ev.nodes = (node(cpu_limits_pct=157, allocatable_cpu="1900m", allocatable_memory="4694956Ki",
                     usage=Usage(1700, 900)),)
    assert diagnose(ev)[0].rule == "node_overcommitted"


def test_node_not_ready() -> None:
    ev = healthy()
    ev.nodes = (node(conditions=(Condition("Ready", "False", "KubeletNotReady"),
                                 Condition("MemoryPressure", "True"))),)
    f = diagnose(ev)[0]
    assert f.rule == "node_conditions" and "MemoryPressure=True" in f.hypothesis.evidence[0]


def test_describe_node_text() -> None:
    text = describe_node_text(node(cpu_requests="420m", cpu_requests_pct=9, cpu_limits="1762m", cpu_limits_pct=41,
                                   memory_requests="420Mi", memory_requests_pct=9, memory_limits="1762Mi",
                                   memory_limits_pct=41))
    assert "  cpu       420m (9%)   1762m (41%)" in text  # the guide's columns: 2 spaces after the widest cell
    assert text.splitlines()[1] == "Allocated resources:"


def test_evidence_round_trip() -> None:
    ev = healthy()
    ev.localdns = (LocalDnsNode("n1", True, (ProbeRecord(Layer.LOCALDNS, "n1", "169.254.10.10", "a", "A", 1,
                                                           "NOERROR", 1.0),)),)
    again = HealthEvidence.from_dict(ev.to_dict())
    assert again == ev


@pytest.mark.parametrize("knob", ["oom", "crash"])
def test_titles_name_the_reason(knob: str) -> None:
    from workers.analysis.health_facts import restart_title

    p = pod("x", restarts=1, last_reason="OOMKilled" if knob == "oom" else "Error", last_exit_code=1)
    assert ("OOMKilled" if knob == "oom" else "crashed (Error, exit code 1)") in restart_title(p)
