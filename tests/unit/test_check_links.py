"""`check` points at `service` and `ipam` where its evidence leads there."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.check_rules import diagnose

DATA = Path(__file__).parent / "data" / "check"


def load(name: str) -> CheckEvidence:
    return CheckEvidence.from_dict(json.loads((DATA / f"{name}.json").read_text()))


def actions(ev: CheckEvidence, rule: str) -> tuple[str, ...]:
    return next(f.hypothesis.actions for f in diagnose(ev) if f.rule == rule)


def test_a_failing_kube_dns_service_points_at_the_service_ladder() -> None:
    for fixture in ("service_kube_proxy", "service_no_endpoints"):
        assert any(a.startswith("/aksdns service kube-system/kube-dns") for a in actions(load(fixture), "service_ip"))


def test_coredns_pods_without_an_address_point_at_ipam_on_their_node() -> None:
    ev = load("one_pod_dead")
    bad = next(p for p in ev.coredns_pods if p.name == "coredns-57d886c994-x9wqz")  # the one that fails
    pending = dataclasses.replace(bad, ip="", phase="Pending", ready=False)
    ev = dataclasses.replace(ev, coredns_pods=tuple(pending if p is bad else p for p in ev.coredns_pods))
    found = [a for f in diagnose(ev) for a in f.hypothesis.actions if a.startswith("/aksdns ipam")]
    assert found and f"--node {bad.node}" in found[0]
    assert not any(a.startswith("/aksdns ipam") for f in diagnose(load("one_pod_dead")) for a in f.hypothesis.actions)
