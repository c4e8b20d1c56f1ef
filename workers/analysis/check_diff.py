"""`check`'s Re-run basis: its layers, facts, failure counts and latencies, findings, and what it rules out.

The comparison itself is every command's (``workers.analysis.rerun_diff``); this module says what of a
check is worth comparing: each layer's verdict (✅ → ❌ is the news), the guide's baseline answers,
failed queries and p95 per layer, the findings, and the hypotheses a healthy layer rules out (the
handoff lists those with the layer's line as evidence).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from workers.analysis.figures import percentile
from workers.analysis.rerun_diff import Basis, RuledOut, marks
from workers.evidence.layers import Layer
from workers.report import Report

# What a healthy layer speaks against, in the guide's words.
RULES_OUT = {
    Layer.COREDNS_POD.label: "CoreDNS pods are down, failing or overloaded",
    Layer.SERVICE.label: "The kube-dns Service (ClusterIP, endpoints, kube-proxy) is broken",
    Layer.NODE.label: "Nodes cannot reach their upstream DNS server",
    Layer.VNET_DNS.label: "The virtual network's DNS server (Azure DNS or a custom one) is failing",
}
# Parts of a fact's answer that differ on every run (latencies, ages): compared without them.
_VOLATILE = re.compile(r" ?\(p95 [^)]*\)|, \d+ (?:min|s) ago")


def _stable(answer: str) -> str:
    return _VOLATILE.sub("", answer)


def _p95_by_layer(data: dict[str, Any]) -> dict[str, float]:
    latencies: dict[str, list[float]] = defaultdict(list)
    for probe in (data.get("evidence") or {}).get("probes", ()):
        ms = probe.get("latency_ms")
        if ms is None:
            continue
        try:
            latencies[Layer(probe.get("layer")).label].append(float(ms))
        except ValueError:
            continue
    return {layer: float(percentile(values, 95)) for layer, values in latencies.items() if values}


def rerun_basis(report: Report) -> dict[str, Any]:
    """What the next check in this thread compares against (a few kB, never the whole evidence)."""
    data = report.data
    states: dict[str, str] = {}
    details: dict[str, str] = {}
    ruled_out: list[RuledOut] = []
    for line in data.get("layers", ()):
        label, status, detail = str(line["layer"]), str(line["status"]), str(line.get("detail", ""))
        states[label], details[label] = status, detail
        if status == "ok" and label in RULES_OUT:
            ruled_out.append(RuledOut(RULES_OUT[label], f"{label}: {detail}"))
    for fact in data.get("facts", ()):
        states[str(fact["question"])] = _stable(str(fact["answer"]))
    figures: dict[str, float] = {}
    for layer, rate in (data.get("rates") or {}).items():
        figures[f"{layer} · failed queries"] = float(rate["failed"])
    for layer, p95 in _p95_by_layer(data).items():
        figures[f"{layer} · p95 (ms)"] = round(p95, 1)
    return Basis(
        status=report.status.value,
        findings=marks(report.findings or data.get("hypotheses", ())),
        figures=figures,
        states=states,
        details=details,
        ruled_out=tuple(ruled_out),
    ).to_dict()
