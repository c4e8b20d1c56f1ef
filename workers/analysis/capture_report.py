"""`capture`'s thread message: what each target gave, where the time went per hop, the findings.

Pure: the job hands in what the capture produced (:class:`CaptureOutcome`); the analysis of the merged
file itself is `analyze`'s report, posted next to this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.analysis.capture_hops import HOPS, HopView, PodTally
from workers.analysis.capture_live import LiveSummary, progress_line
from workers.analysis.figures import percentile, plural
from workers.evidence.capture import MECHANISM_TEXT, TargetProblem, TargetResult
from workers.findings import HIGH, MEDIUM, Finding, Subject, diagnose
from workers.report import Hypothesis, Markdown, Report, Section, Status, StatusLine, Table

GUIDE = "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/dns/troubleshoot-dns-failures-across-an-aks-cluster-in-real-time"
ROW_LIMIT = 15


@dataclass
class CaptureOutcome:
    """Everything the job learned, ready to report."""

    duration_s: int
    elapsed_s: float
    ended_by: str  # duration · stopped · ended (every stream ended by itself)
    filter: str
    snaplen: int
    cap_bytes: int
    results: list[TargetResult]
    problems: list[TargetProblem] = field(default_factory=list)
    merged_name: str = ""  # the file in the thread
    merged_packets: int = 0
    delivery: str = ""  # how the file reached the thread (size, compressed, or why not)
    hops: HopView | None = None
    hop_note: str = ""
    live: LiveSummary | None = None
    live_file: str = ""
    slow_ms: float = 100.0


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.0f}")


def target_line(r: TargetResult) -> StatusLine:
    how = MECHANISM_TEXT.get(r.mechanism, "") if r.mechanism else ""
    if r.error:
        detail = r.error + (f" (tried: {how})" if how else "")
        return StatusLine(Status.FAIL, r.target.label, detail)
    parts = [f"{r.packets:,} packets, {_size(r.bytes)}", f"{how} on `{r.interface}`" if how else ""]
    if r.fallback_reason:
        parts.append(f"fallback: {r.fallback_reason}")
    if r.ring_dropped_packets:
        parts.append(f"byte cap reached: the ring let the {r.ring_dropped_packets:,} oldest packets go")
    if r.kernel_dropped:
        parts.append(f"{r.kernel_dropped:,} dropped by the kernel")
    parts += r.notes
    status = Status.OK if r.packets else Status.WARN
    return StatusLine(status, r.target.label, " · ".join(p for p in parts if p))


def hop_table(v: HopView) -> Table:
    rows = []
    for hop in HOPS:
        values = v.hop_ms.get(hop, [])
        rows.append((hop, f"{len(values):,}", ms(percentile(values, 50)), ms(percentile(values, 90)),
                     ms(max(values) if values else None)))
    return Table("Where the time went, per hop (ms)", ("hop", "queries", "p50", "p90", "max"), tuple(rows))


def pod_table(pods: list[PodTally]) -> Table:
    return Table("CoreDNS pods", ("pod", "received", "answered", "forwarded", "upstream p50 ms", "upstream unanswered"),
                 tuple((p.name, f"{p.received:,}", f"{p.answered:,}", f"{p.forwarded:,}",
                        ms(percentile(p.upstream_ms, 50)), f"{p.upstream_unanswered:,}") for p in pods))


def slowest_table(v: HopView) -> Table | None:
    rows = [r for r in v.rows if r.total_ms is not None or r.fate != "answered"]
    rows.sort(key=lambda r: (r.total_ms is not None, -(r.total_ms or 0.0)))
    if not rows:
        return None
    return Table("Slowest and unanswered client queries (ms)",
                 ("client", "name", "type", "total", "→CoreDNS", "CoreDNS", "upstream", "CoreDNS pod", "fate"),
                 tuple((r.client, r.qname, r.qtype, ms(r.total_ms), ms(r.network_ms), ms(r.coredns_ms),
                        ms(r.upstream_ms), r.coredns_pod or "-", r.fate) for r in rows[:ROW_LIMIT]))


# ---- findings ---------------------------------------------------------------------------------------------


def _median(v: HopView, hop: str) -> float | None:
    result: float | None = percentile(v.hop_ms.get(hop, []), 50)
    return result


def _slow_hop(o: CaptureOutcome, hop: str) -> HopView | None:
    """The per-hop view when ``hop`` is where the time goes (its median at least the slow threshold)."""
    v = o.hops
    if v is None or v.slowest_hop != hop or (_median(v, hop) or 0) < o.slow_ms:
        return None
    return v


def upstream_slow(o: CaptureOutcome) -> Finding | None:
    v = _slow_hop(o, HOPS[2])
    if v is None:
        return None
    ups = sorted({r.upstream for r in v.rows if r.upstream})
    return Finding.of("capture.upstream_slow", 70, Hypothesis(
        "The upstream DNS server is slow: CoreDNS waits for it",
        HIGH,
        (f"median {ms(_median(v, HOPS[2]))} ms from CoreDNS's forward to the upstream's answer "
         f"({', '.join(ups) or 'upstream'}), against {ms(_median(v, HOPS[0]))} ms client → CoreDNS and "
         f"{ms(_median(v, HOPS[1]))} ms inside CoreDNS",),
        ("Run `/aksdns check` to ask the virtual network's DNS servers from the nodes directly",
         "If the virtual network uses custom DNS servers, check their load and their own forwarders",),
        (GUIDE,),
    ), subjects=[Subject("server", u) for u in ups])


# hop -> (rule, title, what the median measures, actions)
_OTHER_HOPS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    HOPS[1]: ("capture.coredns_slow", "CoreDNS itself is slow (not the network, not the upstream)",
              "between CoreDNS receiving a query and answering it, beyond the upstream's own time",
              ("Run `/aksdns health` for CoreDNS restarts, CPU throttling and its logs",
               "kubectl -n kube-system top pods -l k8s-app=kube-dns")),
    HOPS[0]: ("capture.network_slow", "Time is lost between the client pods and CoreDNS",
              "on the way to CoreDNS and back (the Service's DNAT, conntrack, the nodes)",
              ("Look for conntrack insertion failures on the client's node: conntrack -S",
               "Run `/aksdns analyze` on the capture for the conntrack-race signature (A/AAAA pairs)")),
}


def other_hop_slow(o: CaptureOutcome) -> Finding | None:
    for hop, (rule, title, what, actions) in _OTHER_HOPS.items():
        v = _slow_hop(o, hop)
        if v is not None:
            return Finding.of(rule, 60, Hypothesis(title, MEDIUM, (f"median {ms(_median(v, hop))} ms {what}",),
                                                   actions, (GUIDE,)))
    return None


def silent_endpoint(o: CaptureOutcome) -> Finding | None:
    v = o.hops
    if v is None or not v.silent_endpoints:
        return None
    pods = v.silent_endpoints
    return Finding.of("capture.silent_endpoint", 90, Hypothesis(
        f"CoreDNS pod {', '.join(pods)} receives none of its share of queries",
        HIGH,
        (f"{v.lost_before_coredns} client queries through the kube-dns Service never reached a CoreDNS pod",
         f"{', '.join(pods)} is a Ready endpoint of the Service yet its capture saw no query: kube-proxy keeps "
         "sending it about 1 in every endpoints' count"),
        (f"kubectl -n kube-system describe pod {pods[0]}",
         f"kubectl -n kube-system delete pod {pods[0]}   # its Deployment starts a healthy one"),
        (GUIDE,),
    ), subjects=[Subject("pod", p, "kube-system") for p in pods])


def lost_queries(o: CaptureOutcome) -> Finding | None:
    v = o.hops
    if v is None or not v.lost_before_coredns or v.silent_endpoints:
        return None
    return Finding.of("capture.lost_before_coredns", 60, Hypothesis(
        "Client queries are lost before they reach CoreDNS", MEDIUM,
        (f"{v.lost_before_coredns} client queries were never seen at a captured CoreDNS pod",),
        ("Capture every CoreDNS pod (--coredns) to see whether one of them receives them",
         "Check the client node's conntrack table and network policies"),
        (GUIDE,)))


def stale_destinations(o: CaptureOutcome) -> Finding | None:
    v = o.hops
    if v is None or not v.stale:
        return None
    return Finding.of("capture.stale_destination", 50, Hypothesis(
        "Queries go to addresses that are not kube-dns endpoints", MEDIUM,
        tuple(f"{s.queries} queries to {s.address}" + (f" (was {s.was})" if s.was else "")
              + f", {s.unanswered} unanswered" for s in v.stale),
        ("A stale conntrack entry keeps sending a client's flow to an old pod IP: "
         "conntrack -D -p udp --dport 53 on the client's node clears it",),
        (GUIDE,)))


RULES = (silent_endpoint, upstream_slow, other_hop_slow, lost_queries, stale_destinations)


def _none(o: CaptureOutcome) -> Finding:
    v = o.hops
    text = "No hop stands out" if v is not None and v.rows else "No client query could be followed through CoreDNS"
    return Finding.of("capture.none", 0, Hypothesis(text, MEDIUM, (v.verdict if v else o.hop_note or "",), ()))


def findings(o: CaptureOutcome) -> list[Finding]:
    return diagnose(o, RULES, when_none=_none)


# ---- the report ------------------------------------------------------------------------------------------


def build_report(o: CaptureOutcome, *, title: str) -> Report:
    sections: list[Section] = [target_line(r) for r in o.results]
    sections += [StatusLine(Status.FAIL, p.label, p.reason) for p in o.problems]
    ok = [r for r in o.results if not r.error]
    packets = sum(r.packets for r in ok)
    ended = {"duration": f"after {o.duration_s} s", "stopped": f"stopped after {o.elapsed_s:.0f} s",
             "ended": f"every stream ended after {o.elapsed_s:.0f} s"}.get(o.ended_by, o.ended_by)
    sections.insert(0, Markdown(f"*Capture* {ended} · filter `{o.filter}` · snap length {o.snaplen} B · "
                                f"at most {_size(o.cap_bytes)} kept per target"
                                + (f"\n*File*: {o.delivery}" if o.delivery else "")))
    found = findings(o) if o.live is None else []
    if o.hops is not None:
        sections.append(Markdown(f"*Per hop*: {o.hops.verdict}" + (f"\n_{o.hop_note}_" if o.hop_note else "")))
        sections.append(hop_table(o.hops))
        if o.hops.pods:
            sections.append(pod_table(o.hops.pods))
        slow = slowest_table(o.hops)
        if slow is not None:
            sections.append(slow)
    elif o.hop_note:
        sections.append(Markdown(f"_{o.hop_note}_"))
    if o.live is not None:
        sections += live_sections(o)
    sections += [f.hypothesis for f in found]
    status = Status.FAIL if not ok else (Status.WARN if o.problems or any(r.error for r in o.results) else Status.OK)
    if found and found[0].score >= 80:
        status = Status.FAIL
    elif found and found[0].score >= 40 and status is Status.OK:
        status = Status.WARN
    verdict = o.hops.verdict if o.hops is not None else (progress_line(o.live, o.slow_ms) if o.live else "")
    summary = f"{packets:,} packets from {plural(len(ok), 'target')}" + (f"; {verdict}" if verdict else "")
    return Report(title=title, status=status, summary=summary, sections=sections, findings=found,
                  data=payload(o, found))


def live_sections(o: CaptureOutcome) -> list[Section]:
    s = o.live
    assert s is not None
    out: list[Section] = [Markdown(f"*Live trace*: {progress_line(s, o.slow_ms)}"
                                   + (f" — every row in `{o.live_file}`" if o.live_file else ""))]
    cols = ("time", "target", "client", "server", "name", "type", "id", "rcode", "latency ms")
    if s.unanswered_rows:
        out.append(Table("Unanswered queries (first ones)", cols, tuple(r.cells() for r in s.unanswered_rows)))
    worst = s.worst_slow()
    if worst:
        out.append(Table("Slowest answers", cols, tuple(r.cells() for r in worst)))
    if s.by_rcode:
        out.append(Table("Answers by rcode", ("rcode", "answers"),
                         tuple((k, f"{v:,}") for k, v in sorted(s.by_rcode.items(), key=lambda kv: -kv[1]))))
    return out


def payload(o: CaptureOutcome, found: list[Finding]) -> dict[str, Any]:
    v = o.hops
    return {
        "duration_s": o.duration_s, "elapsed_s": round(o.elapsed_s, 1), "ended_by": o.ended_by, "filter": o.filter,
        "file": o.merged_name, "packets_merged": o.merged_packets,
        "targets": [{"target": r.target.label, "role": r.target.role.value,
                     "mechanism": r.mechanism.value if r.mechanism else None, "interface": r.interface,
                     "packets": r.packets, "bytes": r.bytes, "error": r.error, "fallback": r.fallback_reason,
                     "kernel_dropped": r.kernel_dropped, "ring_dropped_packets": r.ring_dropped_packets,
                     "notes": list(r.notes)}
                    for r in o.results],
        "problems": [{"target": p.label, "reason": p.reason} for p in o.problems],
        "per_hop": None if v is None else {
            "verdict": v.verdict, "slowest_hop": v.slowest_hop, "lost_before_coredns": v.lost_before_coredns,
            "silent_endpoints": v.silent_endpoints,
            "hops": {h: {"queries": len(x), "p50_ms": percentile(x, 50), "p90_ms": percentile(x, 90)}
                     for h, x in v.hop_ms.items()},
            "stale": [{"address": s.address, "queries": s.queries, "unanswered": s.unanswered, "was": s.was}
                      for s in v.stale],
        },
        "live": None if o.live is None else {"answered": o.live.answered, "unanswered": o.live.unanswered,
                                             "slow": o.live.slow, "by_rcode": o.live.by_rcode},
        "findings": [f.to_dict() for f in found],
    }
