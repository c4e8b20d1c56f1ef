"""The check rules on recorded evidence: each fault gives the right top hypothesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.check_rules import diagnose

DATA = Path(__file__).parent / "data" / "check"


def load(name: str) -> CheckEvidence:
    return CheckEvidence.from_dict(json.loads((DATA / f"{name}.json").read_text()))


@pytest.mark.parametrize(
    ("fixture", "top_rule", "title_words"),
    [
        ("healthy", "all_healthy", ["All healthy"]),
        ("custom_vnet_dns_healthy", "all_healthy", ["All healthy"]),
        ("upstream_dead", "vnet_dns", ["virtual network", "Azure DNS", "does not answer"]),
        ("upstream_drops", "vnet_dns", ["virtual network", "%"]),
        ("upstream_servfail", "vnet_dns", ["SERVFAIL"]),
        ("upstream_slow", "vnet_dns", ["slowly"]),
        ("one_pod_dead", "one_coredns_pod", ["coredns-57d886c994-x9wqz"]),
        ("service_kube_proxy", "service_ip", ["Service IP", "kube-proxy"]),
        ("service_no_endpoints", "service_ip", ["no ready endpoints"]),
        ("conntrack_race", "conntrack_race", ["conntrack"]),
        ("private_zone", "private_zone", ["mydb.privatelink.database.windows.net", "private DNS zone"]),
        ("custom_forwarder_dead", "custom_forwarder", ["10.10.0.4"]),
        ("node_upstream_unreachable", "node_upstream", ["Node-level"]),
        ("search_storm", "search_storm", ["8 queries"]),
        ("coredns_oom", "coredns_unhealthy", ["OOMKilled"]),
        # Recorded on the testbed (real CoreDNS, probe pods, upstream stand-in), by fault knob.
        ("recorded_healthy", "all_healthy", ["All healthy"]),
        ("recorded_upstream_dead", "vnet_dns", ["does not answer"]),
        ("recorded_upstream_delay_6s", "vnet_dns", ["virtual network"]),
        ("recorded_upstream_drops_40", "vnet_dns", ["virtual network"]),
        ("recorded_coredns_pod_dead", "one_coredns_pod", ["One CoreDNS pod"]),
    ],
)
def test_top_hypothesis(fixture: str, top_rule: str, title_words: list[str]) -> None:
    findings = diagnose(load(fixture))
    top = findings[0]
    assert top.rule == top_rule, [f.rule for f in findings]
    for word in title_words:
        assert word in top.hypothesis.title
    assert top.hypothesis.evidence, "a hypothesis always shows its evidence"
    assert top.hypothesis.actions and top.hypothesis.links


def test_healthy_is_said_plainly_and_alone() -> None:
    findings = diagnose(load("healthy"))
    assert [f.rule for f in findings] == ["all_healthy"]
    assert findings[0].hypothesis.confidence == "high"


def test_findings_are_ranked() -> None:
    for path in DATA.glob("*.json"):
        scores = [f.score for f in diagnose(load(path.stem))]
        assert scores == sorted(scores, reverse=True), path.name


def test_one_dead_pod_is_not_called_coredns_down() -> None:
    rules = [f.rule for f in diagnose(load("one_pod_dead"))]
    assert "coredns_down" not in rules


def test_all_pods_dead_is_coredns_down() -> None:
    ev = load("one_pod_dead")
    from dataclasses import replace

    dead = tuple(replace(r, status="TIMEOUT", latency_ms=None) if r.layer in ("coredns_pod", "service") else r
                 for r in ev.probes)
    ev.probes = dead
    assert diagnose(ev)[0].rule == "coredns_down"


def test_cached_answers_do_not_hide_a_dead_upstream() -> None:
    # Recorded: CoreDNS still answered microsoft.com from its cache while the upstream was dead;
    # the worker's direct queries to the virtual network's DNS are what tell the story.
    rules = [f.rule for f in diagnose(load("recorded_upstream_dead"))]
    assert rules[0] == "vnet_dns" and "node_upstream" not in rules


def test_node_only_failure_does_not_blame_the_vnet_dns() -> None:
    rules = [f.rule for f in diagnose(load("node_upstream_unreachable"))]
    assert "vnet_dns" not in rules


def test_custom_forwarder_zone_is_not_blamed_on_azure_dns() -> None:
    rules = [f.rule for f in diagnose(load("custom_forwarder_dead"))]
    assert "vnet_dns" not in rules


def test_actions_are_exact_commands() -> None:
    top = diagnose(load("one_pod_dead"))[0]
    assert "kubectl -n kube-system logs coredns-57d886c994-x9wqz --tail 100" in top.hypothesis.actions
    top = diagnose(load("service_no_endpoints"))[0]
    assert "kubectl -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns" in top.hypothesis.actions


def test_unrecognised_failures_still_get_a_hypothesis() -> None:
    ev = load("healthy")
    from dataclasses import replace

    first = ev.probes[0]
    ev.probes = (replace(first, status="REFUSED"), *ev.probes[1:])
    findings = diagnose(ev)
    assert findings and findings[0].rule != "all_healthy"
