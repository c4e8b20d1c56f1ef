"""Health evidence and findings → the thread: status lines, tables, `kubectl describe node` text,
log classes, configuration review, what changed since the previous run, and the JSON/CSV files."""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from workers.analysis.figures import ago, plural
from workers.analysis.health_facts import (
    all_rates,
    cpu_limit_share,
    rcode_rates,
    restart_title,
    throttling_risk,
)
from workers.evidence.health import HealthEvidence, NodeHealth
from workers.findings import Finding
from workers.report import Markdown, Section, Status, StatusLine, Table


def config_digest(corefile: str, custom: Mapping[str, str]) -> str:
    raw = json.dumps({"Corefile": corefile, "custom": dict(custom)}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- lines


def pods_line(ev: HealthEvidence) -> StatusLine:
    if not ev.pods:
        return StatusLine(Status.FAIL, "CoreDNS pods", "no pod with label k8s-app=kube-dns")
    ready = sum(p.ready for p in ev.pods)
    parts = []
    status = Status.OK if ready == len(ev.pods) else (Status.FAIL if ready == 0 else Status.WARN)
    for p in ev.pods:
        flags = [] if p.ready else ["not Ready"]
        if p.restarts:
            flags.append(f"{plural(p.restarts, 'restart')}: {restart_title(p)}")
            status = Status.FAIL if status is Status.FAIL else Status.WARN
        if throttling_risk(p):
            flags.append(f"CPU at {cpu_limit_share(p) or 0:.0%} of its limit")
            status = Status.FAIL if status is Status.FAIL else Status.WARN
        if flags:
            parts.append(f"{p.name}: {', '.join(flags)}")
    usage = "" if ev.metrics_available else " · usage unknown (metrics.k8s.io unavailable)"
    return StatusLine(status, "CoreDNS pods", f"{ready}/{len(ev.pods)} Ready" + (" · " + " · ".join(parts)
                                                                                 if parts else "") + usage)


def metrics_line(ev: HealthEvidence) -> StatusLine:
    rates = all_rates(ev)
    failed = [m for m in ev.scrapes if m.error]
    if not rates:
        why = failed[0].error if failed else "no pod to scrape"
        return StatusLine(Status.INFO, "CoreDNS metrics (:9153)", f"not read ({why})")
    total = sum(r.requests for r in rates)
    seconds = max(r.seconds for r in rates)
    hc = sum(sum(r.healthcheck_failures.values()) for r in rates)
    hits = sum(r.cache_hits for r in rates)
    lookups = hits + sum(r.cache_misses for r in rates)
    parts = [f"{total / seconds:.1f} queries/s over {len(rates)} pods"]
    if total:
        parts.append("busiest " + max(rates, key=lambda r: r.requests).pod
                     + f" ({max(r.requests for r in rates) / total:.0%})")
    if lookups:
        parts.append(f"cache hits {hits / lookups:.0%}")
    status = Status.OK
    if hc:
        parts.append(f"{hc:.0f} forwarder health-check failures")
        status = Status.FAIL
    if any(r.panics_total for r in rates):
        parts.append("panics")
        status = Status.FAIL
    if failed:
        parts.append(f"{len(failed)} pods not scraped")
        status = Status.WARN if status is Status.OK else status
    return StatusLine(status, "CoreDNS metrics (:9153)", " · ".join(parts))


def nodes_line(ev: HealthEvidence) -> StatusLine:
    if not ev.nodes:
        return StatusLine(Status.INFO, "Nodes", "not read")
    bad = [n for n in ev.nodes if n.bad_conditions]
    over = [n for n in ev.nodes if n.overcommitted]
    parts = [f"{len(ev.nodes)} nodes (hosting CoreDNS" + (" or the client" if ev.client_pods else "") + ")"]
    if bad:
        parts.append("conditions: " + "; ".join(f"{n.name} " + ", ".join(c.type + "=" + c.status
                                                                          for c in n.bad_conditions) for n in bad))
    if over:
        parts.append("over-committed: " + ", ".join(f"{n.name} (limits cpu {n.cpu_limits_pct}%, memory "
                                                     f"{n.memory_limits_pct}%)" for n in over))
    npd = sum(len(n.npd_events) for n in ev.nodes)
    if npd:
        parts.append(f"{npd} NPD DNS events")
    status = Status.FAIL if bad else (Status.WARN if over else Status.OK)
    return StatusLine(status, "Nodes", " · ".join(parts))


def logs_line(ev: HealthEvidence) -> StatusLine:
    if not ev.logs:
        detail = f"{ev.log_lines} lines in the last {ev.minutes} min, none classed as an error"
        if ev.log_errors:
            detail += f" · not read: {', '.join(ev.log_errors)}"
        return StatusLine(Status.OK if not ev.log_errors else Status.WARN, "CoreDNS logs", detail)
    worst = {"panic", "loop", "reload_error", "upstream_timeout", "api_access"}
    status = Status.FAIL if any(s.kind.value in worst for s in ev.logs) else Status.WARN
    return StatusLine(status, "CoreDNS logs", f"last {ev.minutes} min: "
                      + ", ".join(f"{s.kind.label} ×{s.count}" for s in ev.logs))


def config_line(ev: HealthEvidence) -> StatusLine:
    crit = [i for i in ev.config_issues if i.severity == "critical"]
    warn = [i for i in ev.config_issues if i.severity == "warning"]
    keys = ", ".join(sorted(ev.custom)) or "none"
    detail = f"coredns-custom keys: {keys}"
    a = ev.autoscaler
    if a.present and a.expected_replicas is not None:
        detail += f" · autoscaler {a.mode}: {a.expected_replicas} replicas for {a.nodes} nodes (running {a.replicas})"
    elif not a.present:
        detail += " · no coredns-autoscaler ConfigMap"
    if crit or warn:
        detail += " · " + ", ".join(f"{i.rule.replace('_', ' ')} ({i.where})" for i in (*crit, *warn))
    return StatusLine(Status.FAIL if crit else (Status.WARN if warn else Status.OK), "Configuration", detail)


def localdns_line(ev: HealthEvidence) -> StatusLine | None:
    enabled = [n for n in ev.localdns if n.enabled]
    if not enabled:
        return None
    dead = [n.node for n in enabled if n.dead]
    unknown = [f"{n.node} ({n.error})" for n in enabled if n.error]
    detail = f"on {len(enabled)} nodes (169.254.10.10 / .11)"
    if dead:
        detail += f" · dead on {', '.join(dead)}"
    if unknown:
        detail += f" · not probed: {', '.join(unknown)}"
    return StatusLine(Status.FAIL if dead else (Status.WARN if unknown else Status.OK), "LocalDNS", detail)


# ---------------------------------------------------------------------------- tables


def pods_table(ev: HealthEvidence) -> Table:
    rows = []
    for p in ev.pods:
        status = p.waiting_reason or p.phase
        restarts = str(p.restarts) + (f" ({p.last_reason} {ago(p.last_finished_age_s)} ago)" if p.last_reason else "")
        r = p.resources
        cpu = "-" if p.usage is None else f"{p.usage.cpu_m}m"
        mem = "-" if p.usage is None else f"{p.usage.memory_mi}Mi"
        rows.append((p.name, "1/1" if p.ready else "0/1", status, restarts, ago(p.age_s), p.node,
                     f"{r.cpu_request or '-'} / {r.cpu_limit or '-'}",
                     f"{r.memory_request or '-'} / {r.memory_limit or '-'}", cpu, mem))
    return Table("CoreDNS pods (kubectl get pods -o wide, kubectl top pods)",
                 ("NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "CPU req/lim", "MEMORY req/lim",
                  "CPU(cores)", "MEMORY(bytes)"), tuple(rows))


def metrics_table(ev: HealthEvidence) -> Table:
    rows = []
    by_pod = {r.pod: r for r in all_rates(ev)}
    for m in ev.scrapes:
        r = by_pod.get(m.pod)
        if r is None:
            rows.append((m.pod, "-", "-", "-", "-", "-", "-", m.error or "not scraped"))
            continue
        hc = ", ".join(f"{to} ×{n:.0f}" for to, n in r.healthcheck_failures.items()) or "0"
        ratio = "-" if r.cache_ratio is None else f"{r.cache_ratio:.0%}"
        fwd = f"{r.forward_requests / r.seconds:.1f}/s" + (f", avg {r.forward_avg_ms:.0f} ms" if r.forward_avg_ms
                                                             is not None else "")
        rows.append((m.pod, f"{r.rps:.1f}", rcode_rates(r), fwd, hc, ratio, f"{r.panics_total:.0f}", ""))
    return Table("CoreDNS metrics (two scrapes of :9153)",
                 ("POD", "QUERIES/s", "RCODES", "FORWARDED", "HEALTH-CHECK FAILURES", "CACHE HITS", "PANICS", "NOTE"),
                 tuple(rows))


def describe_node_text(n: NodeHealth) -> str:
    """The lines the guide's `kubectl describe node | grep -A5 ...` shows, as kubectl prints them."""
    rows = [("Resource", "Requests", "Limits"), ("--------", "--------", "------"),
            ("cpu", f"{n.cpu_requests} ({n.cpu_requests_pct}%)", f"{n.cpu_limits} ({n.cpu_limits_pct}%)"),
            ("memory", f"{n.memory_requests} ({n.memory_requests_pct}%)",
             f"{n.memory_limits} ({n.memory_limits_pct}%)")]
    rows += [(name, f"{req} ({req_pct}%)", f"{lim} ({lim_pct}%)") for name, req, req_pct, lim, lim_pct in n.other_rows]
    w0 = max(len(r[0]) for r in rows) + 2
    w1 = max(len(r[1]) for r in rows) + 2
    lines = [f"Name:               {n.name}", "Allocated resources:",
             "  (Total limits may be over 100 percent, i.e., overcommitted.)"]
    lines += [f"  {a:<{w0}}{b:<{w1}}{c}".rstrip() for a, b, c in rows]
    return "\n".join(lines)


def nodes_section(ev: HealthEvidence) -> Markdown:
    blocks = []
    for n in ev.nodes:
        notes = [f"roles: {', '.join(n.roles)}"]
        bad = ", ".join(f"{c.type}={c.status}" for c in n.bad_conditions)
        notes.append("conditions: " + (bad or "Ready, no pressure"))
        if n.usage is not None:
            notes.append(f"kubectl top: {n.usage.cpu_m}m, {n.usage.memory_mi}Mi")
        if n.overcommitted:
            notes.append("over-committed (limits > 100%)")
        for e in (*n.events[:3], *n.npd_events[:3]):
            notes.append(f"event {e.reason} ×{e.count} ({ago(e.age_s)} ago): {e.message[:100]}")
        blocks.append("```\n" + describe_node_text(n) + "\n```\n" + " · ".join(notes))
    return Markdown("*Nodes (kubectl describe node)*\n" + "\n".join(blocks))


def logs_table(ev: HealthEvidence) -> Table:
    rows = tuple((s.kind.label, str(s.count), ", ".join(s.pods), " | ".join(s.samples[:2])) for s in ev.logs)
    title = (f"CoreDNS logs, last {ev.minutes} min ({ev.log_lines} lines; "
             f"`. NS` health checks: {ev.health_check_errors})")
    return Table(title, ("CLASS", "COUNT", "PODS", "SAMPLES"), rows)


def config_table(ev: HealthEvidence) -> Table:
    rows = tuple((i.severity, i.where, i.problem, i.fix) for i in ev.config_issues)
    return Table("Configuration review (coredns, coredns-custom)", ("SEVERITY", "WHERE", "PROBLEM", "FIX"), rows)


def localdns_table(ev: HealthEvidence) -> Table:
    rows = []
    for n in ev.localdns:
        if not n.enabled:
            continue
        per: dict[str, list[str]] = {}
        for r in n.records:
            per.setdefault(r.server, []).append(r.status)
        answers = "; ".join(f"{s}: {', '.join(sorted(set(v)))}" for s, v in per.items()) or (n.error or "-")
        rows.append((n.node, "dead" if n.dead else ("answering" if n.answering else "unknown"), answers))
    return Table("LocalDNS (asked from each node)", ("NODE", "STATE", "ANSWERS"), tuple(rows))


# ---------------------------------------------------------------------------- configuration since the previous run


def changes(previous: Mapping[str, Any] | None, data: Mapping[str, Any]) -> list[Section]:
    """The configuration's edits since the previous `health` in this thread, line by line (the shared
    Re-run diff names the changed keys and everything else; this shows what was written)."""
    if not previous or "config" not in previous or previous.get("digest") == data.get("digest"):
        return []
    lines: list[str] = []
    before, after = previous.get("config") or {}, data.get("config") or {}
    b_custom, a_custom = before.get("custom") or {}, after.get("custom") or {}
    for key in sorted(set(b_custom) | set(a_custom)):
        if key not in b_custom:
            lines.append(f"coredns-custom key {key} added")
        elif key not in a_custom:
            lines.append(f"coredns-custom key {key} removed")
        elif b_custom[key] != a_custom[key]:
            lines.append(f"coredns-custom key {key} changed")
        else:
            continue
        diff = difflib.unified_diff(str(b_custom.get(key, "")).splitlines(),
                                    str(a_custom.get(key, "")).splitlines(), lineterm="", n=0)
        lines += [f"    {d}" for d in list(diff)[2:8]]
    if before.get("corefile") != after.get("corefile"):
        lines.append("the coredns ConfigMap's Corefile changed")
    return [Markdown("*Configuration since the previous `health` in this thread*\n"
                     + "\n".join(f"• {x}" for x in lines))]


# ---------------------------------------------------------------------------- data and files


def result_data(ev: HealthEvidence, findings: Sequence[Finding], status: Status) -> dict[str, Any]:
    return {
        "cluster": ev.cluster,
        "status": status.value,
        "top": findings[0].rule if findings else "",
        "findings": [f.title for f in findings],
        "hypotheses": [f.to_dict() for f in findings],
        "digest": config_digest(ev.corefile, ev.custom),
        "config": {"corefile": ev.corefile, "custom": dict(ev.custom)},
        "elapsed_s": ev.elapsed_s,
        "evidence": ev.to_dict(),
    }


def pods_csv(ev: HealthEvidence) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(("pod", "node", "ready", "phase", "restarts", "last_reason", "last_exit_code", "cpu_request",
                "cpu_limit", "memory_request", "memory_limit", "cpu_usage_m", "memory_usage_mi", "queries_per_s",
                "cache_hit_ratio", "healthcheck_failures", "panics"))
    rates = {r.pod: r for r in all_rates(ev)}
    for p in ev.pods:
        r = rates.get(p.name)
        w.writerow((p.name, p.node, p.ready, p.phase, p.restarts, p.last_reason,
                    "" if p.last_exit_code is None else p.last_exit_code, p.resources.cpu_request,
                    p.resources.cpu_limit, p.resources.memory_request, p.resources.memory_limit,
                    "" if p.usage is None else p.usage.cpu_m, "" if p.usage is None else p.usage.memory_mi,
                    "" if r is None else f"{r.rps:.2f}",
                    "" if r is None or r.cache_ratio is None else f"{r.cache_ratio:.3f}",
                    "" if r is None else f"{sum(r.healthcheck_failures.values()):.0f}",
                    "" if r is None else f"{r.panics_total:.0f}"))
    return out.getvalue()
