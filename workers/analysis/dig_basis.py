"""`dig`'s Re-run basis: per server, whether it answered, how many failed, how slowly.

`dig` reports no ranked findings of its own, so the basis names what a thread should notice: a
server that fails (or loses answers, or answers slowly) is a finding about that server; servers
that disagree are one; a server that answered every question rules out "this server is not
answering" (the handoff says so, with its line as evidence).
"""

from __future__ import annotations

from typing import Any

from workers.analysis.rerun_diff import Basis, Mark, RuledOut
from workers.report import Report


def _line(server: dict[str, Any]) -> str:
    parts = [f"{server.get('answered', 0)}/{server.get('queries', 0)} answered"]
    parts += [f"{n} {s}" for s, n in sorted((server.get("statuses") or {}).items()) if s not in ("NOERROR", "NXDOMAIN")]
    if server.get("p95_ms") is not None:
        parts.append(f"p95 {float(server['p95_ms']):.1f} ms")
    return " · ".join(parts)


def rerun_basis(report: Report) -> dict[str, Any]:
    summary = report.data.get("summary") or {}
    findings: list[Mark] = []
    figures: dict[str, float] = {}
    states: dict[str, str] = {}
    details: dict[str, str] = {}
    ruled_out: list[RuledOut] = []
    for s in summary.get("servers", ()):
        server, status, line = str(s["server"]), str(s.get("status", "info")), _line(s)
        subject = (f"server {server}",)
        if status == "fail":
            title = f"DNS server {server} fails every query"
            findings.append(Mark("dig_server_fails", title, "critical", subject, line))
        elif status == "warn":
            findings.append(
                Mark("dig_server_degraded", f"DNS server {server} loses answers or answers slowly", "warning",
                     subject, line)
            )
        else:
            ruled_out.append(RuledOut(f"DNS server {server} is not answering", f"{server}: {line}"))
        states[server], details[server] = status, line
        figures[f"{server} · failed"] = float(s.get("failed", 0))
        figures[f"{server} · slow answers"] = float(s.get("slow", 0))
        if s.get("p95_ms") is not None:
            figures[f"{server} · p95 (ms)"] = round(float(s["p95_ms"]), 1)
    for d in summary.get("disagreements", ()):
        what = f"{d.get('name', '')} {d.get('type', '')}"
        by = "; ".join(f"{st} from {', '.join(v)}" for st, v in sorted((d.get("statuses") or {}).items()))
        findings.append(Mark("dig_disagree", f"Servers disagree on {what}", "warning", (f"name {what}",), by))
    findings.sort(key=lambda m: {"critical": 0, "warning": 1}.get(m.severity, 2))
    return Basis(
        status=report.status.value,
        findings=tuple(findings),
        figures=figures,
        states=states,
        details=details,
        ruled_out=tuple(ruled_out),
    ).to_dict()
