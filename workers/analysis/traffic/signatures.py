"""DNS failure signatures nobody flags, each with its evidence rows.

- **conntrack race**: glibc and musl send A and AAAA back to back from one socket; when
  conntrack drops one of the pair the resolver waits its time-out (5 s) and re-sends it.
  Evidence: a pair member, unanswered, re-sent 4-6 s later from the same socket and ID.
- **truncation without TC**: a UDP answer of 512 bytes or more without the TC bit (a
  client limited to 512 bytes drops it), and a name whose UDP answer (TC clear) holds a
  different number of records than its TCP answer within 30 s (Azure DNS cuts UDP answers
  short without TC).
- **dead server**: a server address that got queries and answered none of them while other
  servers in the same capture answered (a dead or stale endpoint, e.g. an old CoreDNS pod IP).
- **names AKS answers NXDOMAIN itself**: the VNet's search domains append
  ``reddog.microsoft.com`` and ``<hash>.<region>.internal.cloudapp.net``; Azure DNS answers
  those expansions NXDOMAIN, each one a wasted round trip.  (Search-list amplification in
  ``findings.expansion_storms`` groups the same names by what the client asked for.)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from workers.analysis.traffic.findings import NXDOMAIN, search_bases
from workers.analysis.traffic.model import AnalysisResult, TxRecord
from workers.analysis.traffic.timefmt import iso_time

# A VM's own name is <host>.<hash>.<region>.internal.cloudapp.net: six labels.  Anything
# longer is a search-list expansion of another name.
_CLOUDAPP = ".internal.cloudapp.net"
_REDDOG = ".reddog.microsoft.com"
_VM_NAME_LABELS = 6

CSV_COLUMNS = ("signature", "time", "client", "server", "transport", "type", "name", "detail")


@dataclass(frozen=True)
class Evidence:
    """One row of evidence for a signature."""

    time: str
    client: str
    server: str
    transport: str
    qtype: str
    name: str
    detail: str


@dataclass(frozen=True)
class Signature:
    """One failure signature: whether it shows, how often, and the rows that show it."""

    key: str
    title: str
    meaning: str
    count: int
    evidence: tuple[Evidence, ...]

    @property
    def found(self) -> bool:
        return self.count > 0


def _tx(r: TxRecord, detail: str) -> Evidence:
    return Evidence(iso_time(r.time_ns), r.client, r.server, r.transport, r.qtype, r.qname, detail)


def conntrack_race(result: AnalysisResult) -> Signature:
    sig = result.signatures
    rows = tuple(_tx(r, f"re-sent after {(r.response_time_ms or 0.0) / 1000:.2f} s (ID 0x{r.id:04x})")
                 for r in sig.race)
    return Signature(
        "conntrack-race", "A/AAAA pair member lost and re-sent ~5 s later (conntrack race)",
        "one query of a parallel A/AAAA pair from one socket got no answer and the resolver re-sent it "
        "after its 5 s time-out: the Linux conntrack race (use `single-request-reopen`, TCP, or NodeLocal DNSCache)",
        sig.race_events, rows)


def truncation(result: AnalysisResult) -> Signature:
    sig = result.signatures
    rows = [_tx(r, "UDP answer ≥ 512 bytes with TC clear") for r in sig.udp_large]
    rows += [
        Evidence(iso_time(d.time_ns), "", d.server, "udp/tcp", d.qtype, d.qname,
                 f"UDP {d.udp_answers} records ({d.udp_bytes} B) vs TCP {d.tcp_answers} records ({d.tcp_bytes} B)")
        for d in sig.udp_tcp_differ
    ]
    return Signature(
        "truncation", "UDP answers ≥ 512 bytes without TC, or UDP and TCP answers that differ",
        "a large UDP answer without the TC bit is dropped by 512-byte clients, and a UDP answer with fewer "
        "records than the TCP one was cut short without TC (Azure DNS does this): force TCP for that zone "
        "(`force_tcp` in CoreDNS's forward plugin) or shorten the answer",
        sig.udp_large_no_tc + sig.udp_tcp_differ_events, tuple(rows))


def dead_servers(result: AnalysisResult) -> Signature:
    answering = [p for p in result.servers if p.responses > 0]
    dead = [p for p in result.servers if p.queries > 0 and p.responses == 0 and p.address != "other"]
    if not answering:
        dead = []
    rows = tuple(Evidence("", "", p.address, "", "", "", f"{p.queries:,} queries, no answer at all")
                 for p in dead)
    return Signature(
        "dead-server", "Server addresses that never answer while others do",
        "queries go to an address that answered nothing in the whole capture while other servers answered: "
        "a dead endpoint or a stale address (an old CoreDNS pod IP, a removed upstream)",
        sum(p.queries for p in dead), rows)


def aks_self_nxdomain(result: AnalysisResult) -> Signature:
    rows: list[Evidence] = []
    count = 0
    for f in result.failing_names:
        if f.rcode != NXDOMAIN:
            continue
        name = f.name.lower().rstrip(".")
        if name.endswith(_REDDOG):
            why = "reddog.microsoft.com search suffix"
        elif name.endswith(_CLOUDAPP) and name.count(".") + 1 > _VM_NAME_LABELS:
            why = "internal.cloudapp.net search suffix on a longer name"
        else:
            continue
        bases = search_bases(name)
        asked = min(bases, key=len) if bases else ""
        count += f.count
        rows.append(Evidence("", "", "", "", "", f.name,
                             f"{f.count:,} NXDOMAIN ({why}){f'; asked for {asked}' if asked else ''}"))
    return Signature(
        "aks-self-nxdomain", "Names AKS answers NXDOMAIN itself",
        "the VNet search domains turn a lookup into names Azure DNS can only answer NXDOMAIN; each costs a "
        "round trip before the real answer (use a trailing dot, fewer search domains, or lower ndots)",
        count, tuple(rows))


def all_signatures(result: AnalysisResult) -> tuple[Signature, ...]:
    return (conntrack_race(result), truncation(result), dead_servers(result), aks_self_nxdomain(result))


def render_csv(signatures: tuple[Signature, ...]) -> str:
    """Every evidence row of every signature (the thread's CSV attachment)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for s in signatures:
        for e in s.evidence:
            w.writerow([s.key, e.time, e.client, e.server, e.transport, e.qtype, e.name, e.detail])
    return buf.getvalue()
