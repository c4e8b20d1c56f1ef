"""`check` points at `apiserver` when its evidence does: CoreDNS serves the world but not the cluster
(its kubernetes plugin has no data: `Failed to list` in its log), or the worker's own API calls fail."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.check_rules import diagnose
from workers.evidence.layers import Layer

DATA = Path(__file__).parent / "data" / "check"


def healthy() -> CheckEvidence:
    return CheckEvidence.from_dict(json.loads((DATA / "recorded_healthy.json").read_text()))


def test_cluster_names_servfail_while_external_resolve_links_to_apiserver() -> None:
    ev = healthy()
    probes = tuple(
        dataclasses.replace(r, status="SERVFAIL", answers=())
        if r.layer is Layer.COREDNS_POD and r.name in ev.internal_names else r
        for r in ev.probes
    )
    found = diagnose(dataclasses.replace(ev, probes=probes))
    link = next(f for f in found if f.rule == "apiserver_link")
    assert "/aksdns apiserver" in link.title and link.hypothesis.confidence == "high"
    assert any(a.startswith("/aksdns apiserver") for a in link.hypothesis.actions)
    assert [f.rule for f in found][:2] == ["coredns_down", "apiserver_link"]


def test_unreachable_api_notes_link_to_apiserver() -> None:
    note = ("Kubernetes API unreachable while trying to list nodes: MaxRetryError; `apiserver` finds the stage "
            "that fails")
    found = diagnose(dataclasses.replace(healthy(), notes=(note,)))
    assert found[0].rule == "apiserver_link" and note in found[0].hypothesis.evidence


def test_healthy_check_does_not_link() -> None:
    assert "apiserver_link" not in [f.rule for f in diagnose(healthy())]
