"""`health`'s Re-run basis: what of a health review the next run in the thread compares against.

The comparison is every command's (``workers.analysis.rerun_diff``); this module says what of a health
review is worth comparing: each part's verdict (CoreDNS pods ✅ → ❌ is the news), restarts per pod, the
log classes' counts, the nodes' Allocated-resources percentages, forwarder health-check failures, the
configuration (one short digest per coredns-custom key and the Corefile, so an added, removed or edited
key shows), the findings, and the hypotheses a healthy part rules out (the handoff lists those).

Usage (`kubectl top`) and query rates are left out: they move on every run and would drown the news.
The configuration itself rides along under ``config`` (a few kB) for health's line-by-line diff of
what changed in coredns-custom; the shared diff ignores keys it does not know.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from workers.analysis.rerun_diff import Basis, RuledOut, marks
from workers.report import Report

# What a healthy part speaks against, in the guide's words.
RULES_OUT = {
    "CoreDNS pods": "CoreDNS pods are crashing, not Ready or near their CPU limit",
    "CoreDNS metrics (:9153)": "A forwarder fails CoreDNS's health checks, or CoreDNS panics",
    "Nodes": "The nodes hosting CoreDNS are under pressure or over-committed",
    "CoreDNS logs": "CoreDNS logs upstream time-outs, loops, API access failures or reload errors",
    "Configuration": "A coredns-custom mistake (a second forward, a redefined .:53, a key that does not parse)",
    "LocalDNS": "LocalDNS is dead on a node",
}
CONFIG_KEYS = ("config", "digest")  # kept for health's own configuration diff


def short_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def config_states(config: Mapping[str, Any]) -> dict[str, str]:
    """One state per coredns-custom key and the Corefile: a short digest, "—" when absent."""
    states = {"Corefile": short_digest(str(config.get("corefile", "")))}
    for key, value in sorted(dict(config.get("custom") or {}).items()):
        states[f"coredns-custom {key}"] = short_digest(str(value))
    return states


def _figures(evidence: Mapping[str, Any]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for pod in evidence.get("pods", ()):
        figures[f"{pod.get('name', '')} · restarts"] = float(pod.get("restarts") or 0)
    for s in evidence.get("logs", ()):
        figures[f"logs · {s.get('kind', '')} lines"] = float(s.get("count") or 0)
    for node in evidence.get("nodes", ()):
        name = node.get("name", "")
        figures[f"{name} · CPU limits (%)"] = float(node.get("cpu_limits_pct") or 0)
        figures[f"{name} · memory limits (%)"] = float(node.get("memory_limits_pct") or 0)
    figures["forwarder health-check failures (log)"] = float(evidence.get("health_check_errors") or 0)
    return figures


def rerun_basis(report: Report) -> dict[str, Any]:
    """What the next `health` in this thread compares against (never the whole evidence)."""
    data = report.data
    states: dict[str, str] = {}
    details: dict[str, str] = {}
    ruled_out: list[RuledOut] = []
    for part in data.get("parts", ()):
        label, status, detail = str(part["part"]), str(part["status"]), str(part.get("detail", ""))
        states[label], details[label] = status, detail
        if status == "ok" and label in RULES_OUT:
            ruled_out.append(RuledOut(RULES_OUT[label], f"{label}: {detail}"))
    states.update(config_states(data.get("config") or {}))
    basis = Basis(
        status=report.status.value,
        findings=marks(report.findings or data.get("hypotheses", ())),
        figures=_figures(data.get("evidence") or {}),
        states=states,
        details=details,
        ruled_out=tuple(ruled_out),
    ).to_dict()
    basis.update({k: data[k] for k in CONFIG_KEYS if k in data})
    return basis
