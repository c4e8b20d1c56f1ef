"""Evidence → the guide's step 1: one status line per layer and the baseline-questions table.

Pure functions of :class:`CheckEvidence`.  The questions are the guide's ("Troubleshooting
Step 1: Collect the facts"), worded as there so an engineer recognises them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.figures import SLOW_MS, ago, format_ms, pct, percentile, plural
from workers.analysis.health_facts import cpu_limit_share, restart_title, throttling_risk
from workers.evidence.cluster import CorednsPod
from workers.evidence.layers import Layer, ProbeRecord, UpstreamRole
from workers.report import Status, StatusLine, Table

FAIL_SHARE = 0.5  # a layer that fails half its queries or more is down, not flaky

QUESTIONS = (
    "Where does the DNS resolution fail?",
    "What kind of DNS error do you get?",
    "How often do the DNS errors occur?",
    "Which records are affected?",
    "Do any custom DNS configurations exist?",
    "What kind of performance problems are affecting the nodes?",
    "What kind of performance problems are affecting the CoreDNS pods?",
    "What causes DNS latency? (answers slower than 5 s)",
)
SEARCH_QUESTION = "How many queries does one short name cost? (search list)"


# ---------------------------------------------------------------------------- tallies


@dataclass(frozen=True)
class Tally:
    """Counts of one set of probe records."""

    total: int
    ok: int
    timeouts: int
    nxdomain: int
    servfail: int
    other: int  # REFUSED, ERROR, FORMERR, ...
    slow: int  # answered, but at or after 5 s
    p50_ms: float
    p95_ms: float
    max_ms: float
    other_rcodes: tuple[tuple[str, int], ...] = ()  # the "other" answers by rcode, most frequent first

    @property
    def failed(self) -> int:
        return self.total - self.ok

    @property
    def server_failures(self) -> int:
        """Failures that are the server's fault (NXDOMAIN is an answer about the name)."""
        return self.timeouts + self.servfail + self.other

    @property
    def fail_share(self) -> float:
        return self.server_failures / self.total if self.total else 0.0


def tally(records: Iterable[ProbeRecord]) -> Tally:
    rows = list(records)
    statuses = Counter(r.status for r in rows)
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None and r.status != "TIMEOUT"]
    ok = statuses["NOERROR"]
    timeouts = statuses["TIMEOUT"]
    nx = statuses["NXDOMAIN"]
    sf = statuses["SERVFAIL"]
    return Tally(
        total=len(rows),
        ok=ok,
        timeouts=timeouts,
        nxdomain=nx,
        servfail=sf,
        other=len(rows) - ok - timeouts - nx - sf,
        other_rcodes=tuple(
            (code, n) for code, n in statuses.most_common()
            if code not in ("NOERROR", "TIMEOUT", "NXDOMAIN", "SERVFAIL")
        ),
        slow=sum(1 for r in rows if r.slow),
        p50_ms=percentile(latencies, 50, empty=0.0),
        p95_ms=percentile(latencies, 95, empty=0.0),
        max_ms=max(latencies, default=0.0),
    )


def error_kinds(t: Tally) -> str:
    """The guide's kinds of DNS error, with counts ("time-out ×3, no such host ×1")."""
    parts = []
    if t.timeouts:
        parts.append(f"time-out ×{t.timeouts}")
    if t.nxdomain:
        parts.append(f"no such host (NXDOMAIN) ×{t.nxdomain}")
    if t.servfail:
        parts.append(f"SERVFAIL ×{t.servfail}")
    if t.other:
        # The guide's kind is "other DNS error"; the rcode says which (REFUSED from an upstream, FORMERR...).
        codes = ", ".join(f"{code} ×{n}" for code, n in t.other_rcodes) or f"×{t.other}"
        parts.append(f"other DNS error: {codes}")
    return ", ".join(parts)


def upstream_records(ev: CheckEvidence) -> list[ProbeRecord]:
    """Every query that went straight to a virtual-network-level server (from nodes or the worker)."""
    return ev.records((Layer.NODE, Layer.VNET_DNS))


def by_server(records: Iterable[ProbeRecord]) -> dict[tuple[str, str], list[ProbeRecord]]:
    """Records grouped by (server, role)."""
    groups: dict[tuple[str, str], list[ProbeRecord]] = defaultdict(list)
    for r in records:
        groups[(r.server, r.role)].append(r)
    return dict(groups)


def role_label(role: str) -> str:
    try:
        return UpstreamRole(role).label
    except ValueError:
        return "upstream"


def failing_names(records: Iterable[ProbeRecord]) -> list[str]:
    """Names with at least one non-NOERROR answer, in first-seen order."""
    seen: dict[str, None] = {}
    for r in records:
        if not r.ok:
            seen.setdefault(r.name, None)
    return list(seen)


# ---------------------------------------------------------------------------- layer lines


def _layer_status(t: Tally) -> Status:
    if t.total == 0:
        return Status.INFO
    if t.fail_share >= FAIL_SHARE:
        return Status.FAIL
    if t.server_failures or t.nxdomain or t.slow:
        return Status.WARN
    return Status.OK


def _answered(t: Tally) -> str:
    text = f"{t.ok}/{t.total} NOERROR"
    if t.failed:
        text += f" ({error_kinds(t)})"
    if t.total > t.timeouts:
        text += f", p95 {format_ms(t.p95_ms, fine=False)}"
    return text


def coredns_pods_line(ev: CheckEvidence) -> StatusLine:
    pods = ev.coredns_pods
    if not pods:
        return StatusLine(Status.FAIL, Layer.COREDNS_POD.label, "no pods with label k8s-app=kube-dns")
    ready = sum(p.ready for p in pods)
    status = _layer_status(tally(ev.records(Layer.COREDNS_POD)))
    per_pod = []
    for p in pods:
        t = tally(ev.records(Layer.COREDNS_POD, target=p.name))
        # One dead pod out of two is only half the queries, but it is a failed pod.
        if t.total and t.fail_share >= FAIL_SHARE:
            status = Status.FAIL
        elif t.server_failures and status is Status.OK:
            status = Status.WARN
        flags = [] if p.ready else ["not Ready"]
        if p.restarts:
            flags.append(plural(p.restarts, "restart") + ("" if p.recently_restarted else ", none in the last hour"))
        if p.oom_killed:
            flags.append("OOMKilled")
        per_pod.append(f"{p.name}: {_answered(t)}" + (f" [{', '.join(flags)}]" if flags else ""))
    if any(p.troubled for p in pods):
        status = Status.FAIL if ready == 0 else max(status, Status.WARN, key=_severity)
    return StatusLine(status, Layer.COREDNS_POD.label, f"{ready}/{len(pods)} Ready · " + " · ".join(per_pod))


def service_line(ev: CheckEvidence) -> StatusLine:
    svc = ev.service
    if svc is None:
        return StatusLine(Status.FAIL, Layer.SERVICE.label, "Service kube-dns not found in kube-system")
    t = tally(ev.records(Layer.SERVICE))
    status = _layer_status(t)
    plural = "" if svc.ready_endpoints == 1 else "s"
    detail = f"{svc.ip} ({svc.ready_endpoints} ready endpoint{plural}): {_answered(t)}"
    if svc.ready_endpoints == 0:
        status = Status.FAIL
    return StatusLine(status, Layer.SERVICE.label, detail)


def nodes_line(ev: CheckEvidence) -> StatusLine:
    probed = [p for p in ev.node_probes if p.ok]
    t = tally(ev.records(Layer.NODE))
    status = _layer_status(t)
    parts = [f"{len(probed)}/{len(ev.node_probes)} probe pods ran"]
    if t.total:
        parts.append(f"node upstreams: {_answered(t)}")
    failed = [p for p in ev.node_probes if not p.ok]
    if failed:
        parts.append("; ".join(f"{p.node}: {p.error}" for p in failed))
        status = max(status, Status.WARN, key=_severity)
    if not ev.node_probes:
        status = Status.INFO
        parts = ["not probed" + (f" ({ev.notes[0]})" if ev.notes else "")]
    not_ready = [n.name for n in ev.nodes if not n.ready]
    if not_ready:
        parts.append(f"NotReady: {', '.join(not_ready)}")
        status = max(status, Status.WARN, key=_severity)
    return StatusLine(status, Layer.NODE.label, " · ".join(parts))


def vnet_line(ev: CheckEvidence) -> StatusLine:
    groups = by_server(upstream_records(ev))
    if not groups:
        return StatusLine(Status.INFO, Layer.VNET_DNS.label, "no upstream queried")
    status = Status.OK
    parts = []
    for (server, role), rows in sorted(groups.items()):
        t = tally(rows)
        status = max(status, _layer_status(t), key=_severity)
        parts.append(f"{role_label(role)} {server}: {_answered(t)}")
    return StatusLine(status, Layer.VNET_DNS.label, " · ".join(parts))


_SEVERITY = {Status.OK: 0, Status.INFO: 0, Status.WARN: 1, Status.FAIL: 2}


def _severity(s: Status) -> int:
    return _SEVERITY[s]


def localdns_line(ev: CheckEvidence) -> StatusLine | None:
    """AKS LocalDNS (169.254.10.10 for the node, .11 for its pods), asked from each node that uses it."""
    rows = ev.records(Layer.LOCALDNS)
    if not rows:
        return None
    per_node: dict[str, list[ProbeRecord]] = defaultdict(list)
    for r in rows:
        per_node[r.target].append(r)
    dead = sorted(n for n, recs in per_node.items() if not any(r.ok for r in recs))
    status = Status.FAIL if dead else _layer_status(tally(rows))
    detail = f"on {len(per_node)} nodes: {_answered(tally(rows))}"
    if dead:
        detail += f" · dead on {', '.join(dead)}"
    return StatusLine(status, Layer.LOCALDNS.label, detail)


def layer_lines(ev: CheckEvidence) -> list[StatusLine]:
    """The compact summary: CoreDNS pods, CoreDNS Service, nodes (and LocalDNS), virtual network DNS."""
    local = localdns_line(ev)
    return [coredns_pods_line(ev), service_line(ev), nodes_line(ev), *([local] if local else []), vnet_line(ev)]


def overall_status(lines: Iterable[StatusLine]) -> Status:
    worst = Status.OK
    for line in lines:
        if _severity(line.status) > _severity(worst):
            worst = line.status
    return worst


# ---------------------------------------------------------------------------- facts table


def _where(ev: CheckEvidence) -> str:
    pod_side = tally(ev.records((Layer.COREDNS_POD, Layer.SERVICE)))
    node_side = tally(ev.records(Layer.NODE))
    pod_bad = pod_side.failed > 0
    node_bad = node_side.failed > 0
    if pod_bad and node_bad:
        return "Both pods and nodes"
    if pod_bad:
        layers = [
            layer.label
            for layer in (Layer.COREDNS_POD, Layer.SERVICE)
            if tally(ev.records(layer)).failed
        ]
        return f"Pod (through {' and '.join(layers)}); nodes resolve" + (
            "" if node_side.total else " (nodes not probed)"
        )
    if node_bad:
        return "Node (node upstreams); pods resolve through CoreDNS"
    vnet = tally(ev.records(Layer.VNET_DNS))
    if vnet.failed:
        return "Only direct queries to the virtual network's DNS from the worker"
    return "Nowhere: every probe got NOERROR"


def _kind(ev: CheckEvidence) -> str:
    t = tally(ev.probes)
    return error_kinds(t) or "None"


def _how_often(ev: CheckEvidence) -> str:
    bad = [r for r in ev.probes if not r.ok]
    if not bad:
        return "Never in this run"
    # Per (layer, target, name, type) group: always failing, or sometimes.
    groups: dict[tuple[str, str, str, str], list[ProbeRecord]] = defaultdict(list)
    for r in ev.probes:
        groups[(r.layer, r.target, r.name, r.rdtype)].append(r)
    affected = {k: v for k, v in groups.items() if any(not r.ok for r in v)}
    attempts = sum(len(v) for v in affected.values())
    failures = sum(sum(not r.ok for r in v) for v in affected.values())
    always = all(all(not r.ok for r in v) for v in affected.values())
    patterns = _patterns(ev)
    if always and ev.repeat > 1:
        text = f"Always ({failures}/{attempts} attempts of the affected queries)"
    elif always:
        text = f"Every time in this run ({failures}/{attempts}; use --repeat N to tell always from intermittent)"
    else:
        text = f"Intermittently: {failures}/{attempts} attempts ({pct(failures, attempts)}) of the affected queries"
    return text + (f"; pattern: {'; '.join(patterns)}" if patterns else "")


def _patterns(ev: CheckEvidence) -> list[str]:
    """Shapes in the failures the guide tells apart (AAAA only, ~6 s SERVFAIL, one pod, one node)."""
    out = []
    bad = [r for r in ev.probes if not r.ok and r.status != "NXDOMAIN"]
    if bad and all(r.rdtype == "AAAA" for r in bad):
        out.append("AAAA only")
    late_servfail = [r for r in bad if r.status == "SERVFAIL" and (r.latency_ms or 0) >= 4500]
    if late_servfail:
        typical = percentile([r.latency_ms or 0 for r in late_servfail], 50)
        out.append(f"SERVFAIL after ~{format_ms(typical, fine=False)}")
    pod_bad = {r.target for r in bad if r.layer is Layer.COREDNS_POD}
    if len(pod_bad) == 1 and len(ev.coredns_pods) > 1:
        out.append(f"one CoreDNS pod ({next(iter(pod_bad))})")
    node_bad = {r.target for r in bad if r.layer is Layer.NODE}
    probed_nodes = {p.node for p in ev.node_probes if p.ok}
    if node_bad and len(node_bad) < len(probed_nodes):
        out.append(f"some nodes ({', '.join(sorted(node_bad))})")
    return out


def _which(ev: CheckEvidence) -> str:
    bad = failing_names(ev.probes)
    if not bad:
        return "None"
    probed = [n for n in ev.names]
    if len(bad) == len(probed) and len(probed) > 1:
        return "Any domain: " + ", ".join(bad)
    internal = [n for n in bad if n in ev.internal_names]
    if internal and len(bad) == len(internal):
        return "Cluster names only: " + ", ".join(bad)
    return ("A specific domain: " if len(bad) == 1 else "Specific domains: ") + ", ".join(bad)


def _custom(ev: CheckEvidence) -> str:
    parts = []
    vnet_custom = sorted(
        {ns for p in ev.node_probes for ns in p.nameservers if ns != ev.azure_dns and not ns.startswith("169.254.")}
    )
    if vnet_custom:
        parts.append(f"Custom DNS server on the virtual network: {', '.join(vnet_custom)}")
    elif any(p.nameservers for p in ev.node_probes):
        parts.append(f"Virtual network uses Azure DNS ({ev.azure_dns})")
    c = ev.custom
    if c.present and c.keys:
        what = []
        for f in c.forwarders:
            what.append(f"forward {f.zone} → {' '.join(f.servers)} ({f.key})")
        if c.overrides:
            what.append("overrides: " + ", ".join(c.overrides))
        parts.append("Custom DNS on CoreDNS configuration (coredns-custom): " + ("; ".join(what) or ", ".join(c.keys)))
    else:
        parts.append("No CoreDNS custom configuration (coredns-custom empty or absent)")
    if not c.default_corefile:
        parts.append("the coredns ConfigMap no longer forwards to /etc/resolv.conf")
    return "; ".join(parts)


def _node_perf(ev: CheckEvidence) -> str:
    parts = []
    for n in ev.nodes:
        issues = [] if n.ready else ["NotReady"]
        issues += list(n.pressure)
        if n.overcommitted:
            issues.append(f"limits CPU {n.cpu_limits_pct}% / memory {n.memory_limits_pct}% of allocatable")
        if issues:
            parts.append(f"{n.name}: {', '.join(issues)}")
    # Usage and Allocated resources of the nodes hosting CoreDNS, as `kubectl top` / `describe node` print them.
    usage = [f"{n.name} {n.usage.cpu_m}m CPU, {n.usage.memory_mi}Mi" for n in ev.node_health if n.usage is not None]
    if not parts:
        head = f"None seen on {len(ev.nodes)} nodes (Ready, no pressure, limits ≤ 100%)"
        return head + _usage_tail(ev, usage, "CoreDNS hosts use")
    return "; ".join(parts) + _usage_tail(ev, usage, "CoreDNS hosts use")


def _usage_tail(ev: CheckEvidence, usage: list[str], what: str) -> str:
    if usage:
        return f"; {what} {'; '.join(usage)} (kubectl top)"
    if ev.metrics_available is False:
        return f"; usage unknown: {ev.metrics_note or 'metrics.k8s.io unavailable'}"
    if ev.metrics_available and ev.pod_health:
        # metrics.k8s.io answers but lists no CoreDNS pod yet: metrics-server reports a pod after its
        # first scrapes (about a minute after a pod or metrics-server starts). Say so rather than nothing.
        return "; usage not in metrics.k8s.io yet (metrics-server lists a pod after its first scrapes)"
    return ""


def _pod_perf(ev: CheckEvidence) -> str:
    detail = {p.name: p for p in ev.pod_health}
    parts = []
    for p in ev.coredns_pods:
        issues = [] if p.ready else ["not Ready"]
        h = detail.get(p.name)
        if p.recently_restarted:
            # Titled by the last termination's reason: OOMKilled is memory, Error a crash, not "pressure".
            why = restart_title(h) if h is not None else (f"last: {p.last_reason}" if p.last_reason else "")
            issues.append(plural(p.restarts, "restart") + (f" ({why}{_ago(p)})" if why else ""))
        elif p.oom_killed:
            issues.append("OOMKilled (memory)")
        if h is not None and throttling_risk(h):
            share = cpu_limit_share(h) or 0
            issues.append(f"CPU at {share:.0%} of its {h.resources.cpu_limit} limit (throttling risk)")
        if issues:
            parts.append(f"{p.name}: {', '.join(issues)}")
    usage = [f"{h.name} {h.usage.cpu_m}m CPU / {h.resources.cpu_limit or 'no'} limit, {h.usage.memory_mi}Mi / "
             f"{h.resources.memory_limit or 'no'} limit" for h in ev.pod_health if h.usage is not None]
    if not parts:
        head = f"None seen on {len(ev.coredns_pods)} pods (Ready, no restarts, no OOMKilled)"
        return head + _usage_tail(ev, usage, "usage")
    return "; ".join(parts) + _usage_tail(ev, usage, "usage")


def _ago(p: CorednsPod) -> str:
    age = p.last_restart_age_s
    return "" if age is None else f", {ago(age)} ago"


def _latency(ev: CheckEvidence) -> str:
    t = tally(ev.probes)
    parts = []
    if t.slow:
        worst = format_ms(t.max_ms, fine=False)
        parts.append(f"{t.slow} answers at or after {format_ms(SLOW_MS, fine=False)} (max {worst})")
    if t.timeouts:
        parts.append(f"{t.timeouts} queries unanswered (time-out)")
    if not parts:
        p95, worst = format_ms(t.p95_ms, fine=False), format_ms(t.max_ms, fine=False)
        return f"No answer took 5 s or more (p95 {p95}, max {worst})"
    return "; ".join(parts)


def _search(ev: CheckEvidence) -> str:
    if not ev.walks:
        return "Not measured"
    parts = []
    for w in ev.walks:
        found = f"answered by {w.answered_by}" if w.answered_by else "no candidate answered NOERROR"
        parts.append(f"{w.name}: {w.queries} queries ({len(w.candidates)} names × A/AAAA, ndots:{w.ndots}; {found})")
    return "; ".join(parts)


def facts_table(ev: CheckEvidence) -> Table:
    """One line per baseline question of the guide, plus the cost of the search list."""
    answers = (
        _where(ev),
        _kind(ev),
        _how_often(ev),
        _which(ev),
        _custom(ev),
        _node_perf(ev),
        _pod_perf(ev),
        _latency(ev),
    )
    rows = [(q, a) for q, a in zip(QUESTIONS, answers, strict=True)]
    rows.append((SEARCH_QUESTION, _search(ev)))
    return Table(title="Facts (the guide's baseline questions)", columns=("Question", "Answer"), rows=tuple(rows))
