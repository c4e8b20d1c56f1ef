"""Per hop: where a query's time went between a client pod, CoreDNS and the upstream.

With captures on client pods and on the CoreDNS pods, each client query is found again where CoreDNS
received it (same client address, port, DNS id and question: kube-proxy only rewrites the destination),
and CoreDNS's forward of it to the upstream (same question, sent between CoreDNS's receipt and its
answer: the forward plugin uses an id of its own). Its time then splits into

* **client → CoreDNS**: the client's wait minus CoreDNS's (the network and the node both ways: the
  Service's DNAT, conntrack, the veths);
* **CoreDNS**: CoreDNS's own time minus the upstream's (plugins, cache, queueing);
* **upstream**: from CoreDNS's forward to the upstream's answer, as CoreDNS's pod saw it.

Client queries that no CoreDNS pod received are lost on the way; a CoreDNS pod that is a Ready endpoint
but received nothing while queries through the Service were lost is named as where they went (kube-proxy
keeps sending it its share). Queries sent to addresses that are neither the Service nor a current
endpoint nor an upstream (a stale conntrack entry, a client pinned to an old pod IP) are named.
Clocks of different nodes may differ by milliseconds, so a hop that comes out negative counts as 0.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from workers.analysis.capture_wire import DnsMessage, type_name
from workers.analysis.figures import percentile
from workers.evidence.capture import ClusterView, Role, Target

HOPS = ("client → CoreDNS", "CoreDNS", "upstream")
NS_PER_MS = 1_000_000


@dataclass
class Transaction:
    """One query as seen at one place: when it was sent or received, and its answer."""

    qname: str
    qtype: int
    asked_ns: int
    src: tuple[str, int]
    dst: tuple[str, int]
    id: int
    answered_ns: int | None = None
    rcode: int | None = None
    resent: int = 0

    @property
    def ms(self) -> float | None:
        return None if self.answered_ns is None else (self.answered_ns - self.asked_ns) / NS_PER_MS


def transactions(messages: Iterable[DnsMessage]) -> list[Transaction]:
    """Pair queries with answers within one capture point (key: both ends, id and question)."""
    open_: dict[tuple[object, ...], Transaction] = {}
    out: list[Transaction] = []
    for m in messages:
        if not m.qname:
            continue
        key = (m.client, m.server, m.id, m.qname, m.qtype)
        if not m.response:
            tx = open_.get(key)
            if tx is not None and tx.answered_ns is None:
                tx.resent += 1
                continue
            tx = Transaction(m.qname, m.qtype, m.ts_ns, m.client, m.server, m.id)
            open_[key] = tx
            out.append(tx)
        else:
            tx = open_.get(key)
            if tx is not None and tx.answered_ns is None:
                tx.answered_ns, tx.rcode = m.ts_ns, m.rcode
    return out


@dataclass
class HopRow:
    """One client query followed through the hops (ms; None where a hop was not seen)."""

    client: str
    qname: str
    qtype: str
    total_ms: float | None
    coredns_pod: str = ""
    network_ms: float | None = None
    coredns_ms: float | None = None
    upstream_ms: float | None = None
    upstream: str = ""
    fate: str = "answered"  # answered · lost before CoreDNS · not answered by CoreDNS · upstream did not answer


@dataclass
class PodTally:
    name: str
    ip: str
    received: int = 0
    answered: int = 0
    forwarded: int = 0
    upstream_unanswered: int = 0
    upstream_ms: list[float] = field(default_factory=list)


@dataclass
class StaleDestination:
    address: str
    queries: int
    unanswered: int
    was: str  # the CoreDNS pod that had this address, or ""


@dataclass
class HopView:
    """The per-hop result."""

    rows: list[HopRow]
    pods: list[PodTally]
    hop_ms: dict[str, list[float]]
    lost_before_coredns: int
    silent_endpoints: list[str]  # Ready endpoints (pod names) that received nothing while queries were lost
    stale: list[StaleDestination]
    clients: int
    verdict: str  # one line: where the time (or the queries) went
    slowest_hop: str = ""


def _within(candidates: list[Transaction], starts: list[int], lo: int, hi: int) -> Transaction | None:
    """The first forward sent in [lo, hi] (CoreDNS's receipt and its answer)."""
    i = bisect.bisect_left(starts, lo)
    if i < len(candidates) and candidates[i].asked_ns <= hi:
        return candidates[i]
    return None


def per_hop(
    targets: list[Target],
    messages: Mapping[int, list[DnsMessage]],  # target index -> its decoded messages, in time order
    view: ClusterView,
    *,
    slow_ms: float = 100.0,
) -> HopView:
    """Follow every client query through CoreDNS to the upstream."""
    by_role: dict[Role, list[int]] = defaultdict(list)
    for i, t in enumerate(targets):
        by_role[t.role].append(i)
    coredns_ips = {targets[i].ip: targets[i].name for i in by_role[Role.COREDNS]}

    # At CoreDNS: what each pod received (key: client end, id, question) and what it forwarded.
    received: dict[tuple[object, ...], tuple[str, Transaction]] = {}
    forwards: dict[tuple[str, str, int], list[Transaction]] = defaultdict(list)
    tallies = {targets[i].ip: PodTally(targets[i].name, targets[i].ip) for i in by_role[Role.COREDNS]}
    for i in by_role[Role.COREDNS]:
        ip = targets[i].ip
        for tx in transactions(messages.get(i, [])):
            if tx.dst[0] == ip and tx.src[0] != ip:
                received[(tx.src, tx.id, tx.qname, tx.qtype)] = (ip, tx)
                tallies[ip].received += 1
                tallies[ip].answered += tx.answered_ns is not None
            elif tx.src[0] == ip:
                forwards[(ip, tx.qname, tx.qtype)].append(tx)
                tallies[ip].forwarded += 1
                if tx.answered_ns is None:
                    tallies[ip].upstream_unanswered += 1
                elif tx.ms is not None:
                    tallies[ip].upstream_ms.append(tx.ms)
    starts = {k: [f.asked_ns for f in v] for k, v in forwards.items()}
    upstreams = {f.dst[0] for v in forwards.values() for f in v}

    rows: list[HopRow] = []
    hop_ms: dict[str, list[float]] = {h: [] for h in HOPS}
    lost = 0
    lost_via_service = 0
    by_dest: dict[str, list[Transaction]] = defaultdict(list)
    client_ips = set()
    for i in by_role[Role.CLIENT]:
        client_ip = targets[i].ip
        client_ips.add(client_ip)
        for tx in transactions(messages.get(i, [])):
            if tx.src[0] != client_ip:
                continue  # answers the client gave as a server, or someone else's traffic
            by_dest[tx.dst[0]].append(tx)
            row = HopRow(targets[i].label, tx.qname, type_name(tx.qtype), tx.ms)
            hit = received.get((tx.src, tx.id, tx.qname, tx.qtype))
            if hit is None:
                if tx.answered_ns is None:
                    row.fate = "lost before CoreDNS"
                    lost += 1
                    lost_via_service += tx.dst[0] in view.service_ips
                else:
                    row.fate = "answered (not seen at a captured CoreDNS pod)"
                rows.append(row)
                continue
            ip, at = hit
            row.coredns_pod = coredns_ips.get(ip, ip)
            core_ms = at.ms
            fwd = _within(forwards.get((ip, tx.qname, tx.qtype), []), starts.get((ip, tx.qname, tx.qtype), []),
                          at.asked_ns, at.answered_ns if at.answered_ns is not None else at.asked_ns + 10**12)
            if fwd is not None:
                row.upstream = fwd.dst[0]
                row.upstream_ms = fwd.ms
            if at.answered_ns is None:
                row.fate = "upstream did not answer" if fwd is not None and fwd.answered_ns is None \
                    else "not answered by CoreDNS"
            elif tx.ms is None:
                row.fate = "answer lost on the way back"
            if tx.ms is not None and core_ms is not None:
                row.network_ms = max(0.0, tx.ms - core_ms)
                row.coredns_ms = max(0.0, core_ms - (row.upstream_ms or 0.0))
                hop_ms[HOPS[0]].append(row.network_ms)
                hop_ms[HOPS[1]].append(row.coredns_ms)
                if row.upstream_ms is not None:
                    hop_ms[HOPS[2]].append(row.upstream_ms)
            rows.append(row)

    silent = [tallies[ip].name for ip in view.ready_endpoints
              if ip in tallies and tallies[ip].received == 0] if lost_via_service else []
    known = set(view.service_ips) | set(view.ready_endpoints) | upstreams
    stale = [StaleDestination(addr, len(txs), sum(t.answered_ns is None for t in txs), view.coredns_pods.get(addr, ""))
             for addr, txs in sorted(by_dest.items()) if addr not in known]
    view_out = HopView(rows, sorted(tallies.values(), key=lambda p: p.name), hop_ms, lost, silent, stale,
                       len(client_ips), "")
    view_out.slowest_hop, view_out.verdict = _verdict(view_out, slow_ms)
    return view_out


def _verdict(v: HopView, slow_ms: float) -> tuple[str, str]:
    medians = {h: percentile(ms, 50) for h, ms in v.hop_ms.items() if ms}
    parts: list[str] = []
    slowest = ""
    if medians:
        slowest = max(medians, key=lambda h: medians[h])
        total = sum(medians.values()) or 1.0
        if medians[slowest] >= slow_ms:
            parts.append(f"the time goes to the *{slowest}* hop: median {medians[slowest]:.0f} ms of "
                         f"{total:.0f} ms ({100 * medians[slowest] / total:.0f} %)")
    if v.silent_endpoints:
        parts.append(f"{v.lost_before_coredns} client queries never reached a CoreDNS pod; "
                     f"{', '.join(v.silent_endpoints)} (a Ready endpoint of the Service) received none: "
                     "kube-proxy keeps sending it its share")
    elif v.lost_before_coredns:
        parts.append(f"{v.lost_before_coredns} client queries never reached a captured CoreDNS pod")
    for s in v.stale:
        was = f" (was {s.was})" if s.was else ""
        parts.append(f"{s.queries} queries went to {s.address}{was}, not a kube-dns endpoint")
    if not parts:
        parts.append("no hop stands out" if medians else "no client query was followed through CoreDNS")
    return slowest, "; ".join(parts)
