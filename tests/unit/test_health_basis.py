"""health's Re-run basis through the registry and the shared diff: a part's verdict, restarts and the
coredns-custom keys are what a second run in the thread names; usage noise is not."""

from __future__ import annotations

import dataclasses

from aksdns.commands import HealthCommand
from tests.unit.test_health_rules import healthy, pod
from workers import jobs
from workers.analysis import rerun_diff
from workers.analysis.health_report import changes
from workers.evidence.health import HealthEvidence, Usage
from workers.jobs.health import build_report

COREFILE = ".:53 {\n    errors\n    forward . /etc/resolv.conf\n    cache 30\n    reload\n}\n"
STUB = "contoso.com:53 {\n    forward . 10.0.0.4\n}\n"


def basis_of(ev: HealthEvidence) -> dict[str, object]:
    cmd = HealthCommand()
    basis = jobs.rerun_basis(cmd, build_report(cmd, ev))  # the registry's rerun_basis, as the runner calls it
    assert basis is not None
    return basis


def configured(ev: HealthEvidence, custom: dict[str, str]) -> HealthEvidence:
    return dataclasses.replace(ev, corefile=COREFILE, custom=custom)


def test_same_review_twice_changes_nothing_though_usage_moves() -> None:
    first = configured(healthy(), {"stub.server": STUB})
    busier = dataclasses.replace(first, pods=tuple(dataclasses.replace(p, usage=Usage(90, 60)) for p in first.pods))
    d = rerun_diff.diff(rerun_diff.Basis.from_dict(basis_of(first)), rerun_diff.Basis.from_dict(basis_of(busier)))
    assert d.unchanged, rerun_diff.lines(d)


def test_a_crash_and_an_added_key_are_named() -> None:
    before = configured(healthy(), {"stub.server": STUB})
    after = configured(healthy(), {"stub.server": STUB, "log.override": "log\n"})
    after = dataclasses.replace(after, pods=(pod("coredns-a", restarts=3, last_reason="OOMKilled"), after.pods[1]))
    b0, b1 = basis_of(before), basis_of(after)
    d = rerun_diff.diff(rerun_diff.Basis.from_dict(b0), rerun_diff.Basis.from_dict(b1))
    text = "\n".join(rerun_diff.lines(d))
    assert "CoreDNS pods: ✅ → " in text
    assert "coredns-custom log.override: — → " in text
    assert "coredns-a · restarts: 0 → 3" in text
    assert any(m.rule != "all_healthy" for m in d.appeared)
    # health's own section shows what was written in the key, line by line
    cmd = HealthCommand()
    (section,) = changes(b0, build_report(cmd, after).data)
    assert "coredns-custom key log.override added" in str(section) and "+log" in str(section)


def test_healthy_parts_rule_out_their_hypotheses() -> None:
    b = rerun_diff.Basis.from_dict(basis_of(configured(healthy(), {})))
    assert "CoreDNS pods are crashing, not Ready or near their CPU limit" in {r.hypothesis for r in b.ruled_out}
    assert "config" in basis_of(configured(healthy(), {}))  # kept for the line-by-line diff


def test_no_configuration_section_when_nothing_changed() -> None:
    ev = configured(healthy(), {"stub.server": STUB})
    cmd = HealthCommand()
    assert changes(basis_of(ev), build_report(cmd, ev).data) == []
