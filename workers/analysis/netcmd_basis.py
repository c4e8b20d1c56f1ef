"""`ipam`'s and `service`'s Re-run bases: what of a run the next run of the same command compares against.

The comparison is every command's (``workers.analysis.rerun_diff``); this module says what of these two
commands is worth comparing. ``ipam``: each node's verdict, the guide's two counts per node (allocated
addresses, running pods) and the stale store entries as figures, and the other facts' answers.
``service``: each rung's verdict (the first rung that turns ❌ is the news), the ready endpoints and the
failed connects from each vantage point as figures, and the causes a passing rung rules out (the
handoff lists those with the rung's line as evidence).
"""

from __future__ import annotations

from typing import Any

from workers.analysis.ipam_evidence import IpamEvidence
from workers.analysis.ipam_facts import QUESTIONS, accounts
from workers.analysis.rerun_diff import Basis, RuledOut, marks
from workers.evidence.service import OPEN
from workers.report import Report

# The ipam fact whose answer is the per-node counts: compared as figures, not as text.
_COUNTS = QUESTIONS[1]

# What a passing rung of the ladder speaks against (labels as in ``service_ladder.LABELS``).
SERVICE_RULES_OUT = {
    "DNS name (through CoreDNS)": "The Service's DNS name does not resolve to it",
    "Selector → pods": "The selector matches no pod",
    "Readiness": "The Service's pods are not Ready",
    "targetPort → containerPort": "targetPort does not match the containers' port",
    "Endpoints / EndpointSlices": "The Service has no endpoints",
    "NetworkPolicies": "A NetworkPolicy drops the traffic to the Service's pods",
    "TCP to each endpoint": "The backends do not listen on their port",
    "TCP to the ClusterIP": "The ClusterIP does not forward to the pods (kube-proxy)",
    "kube-proxy": "kube-proxy is down",
}


def _lines(data: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    states: dict[str, str] = {}
    details: dict[str, str] = {}
    for line in data.get("layers", ()):
        label = str(line["layer"])
        states[label], details[label] = str(line["status"]), str(line.get("detail", ""))
    return states, details


def _basis(report: Report, figures: dict[str, float], states: dict[str, str], details: dict[str, str],
           ruled_out: tuple[RuledOut, ...] = ()) -> dict[str, Any]:
    return Basis(status=report.status.value, findings=marks(report.findings), figures=figures, states=states,
                 details=details, ruled_out=ruled_out).to_dict()


def ipam_basis(report: Report) -> dict[str, Any]:
    """Node verdicts, per-node counts as figures, the facts that are not counts."""
    data = report.data
    states, details = _lines(data)
    for fact in data.get("facts", ()):
        if fact["question"] != _COUNTS:
            states[str(fact["question"])] = str(fact["answer"])
    figures: dict[str, float] = {}
    if data.get("evidence"):
        for a in accounts(IpamEvidence.from_dict(data["evidence"])):
            if a.allocated is not None:
                figures[f"{a.node} · allocated addresses"] = float(a.allocated)
            figures[f"{a.node} · running pods"] = float(a.running)
            figures[f"{a.node} · stale store entries"] = float(a.stale_held + a.stale_recent + a.stale_old)
    return _basis(report, figures, states, details)


def service_basis(report: Report) -> dict[str, Any]:
    """Rung verdicts, ready endpoints and failed connects per vantage point, what passing rungs rule out."""
    data = report.data
    states, details = _lines(data)
    ruled_out = tuple(
        RuledOut(SERVICE_RULES_OUT[label], f"{label}: {details[label]}")
        for label, status in states.items()
        if status == "ok" and label in SERVICE_RULES_OUT
    )
    evidence = data.get("evidence") or {}
    figures: dict[str, float] = {}
    for connect in evidence.get("connects", ()):
        name = f"TCP from {connect.get('source', '?')} · failed connects"
        figures[name] = figures.get(name, 0.0) + (0.0 if connect.get("status") == OPEN else 1.0)
    for fact in data.get("facts", ()):
        if fact["question"] == "Ready endpoint addresses":
            answer = str(fact["answer"])
            figures["Ready endpoint addresses"] = float(answer) if answer.isdigit() else 0.0
    return _basis(report, figures, states, details, ruled_out)
