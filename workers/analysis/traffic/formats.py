"""Pure renderings of an analysis: the JSON payload, text for a terminal, CSV lists and
tshark's own ``-z dns,tree`` text."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from workers.analysis.traffic.findings import expansion_storms, headline, servfail_count, verdict
from workers.analysis.traffic.model import AnalysisResult, Peer, TxRecord

LIST_SHOWN = 20
CSV_COLUMNS = (
    "kind", "time", "client", "server", "transport", "id", "type", "name", "rcode",
    "response_time_ms", "retransmissions",
)


def iso_time(ns: int | None) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def summary(result: AnalysisResult) -> dict[str, Any]:
    """Every headline figure, as plain JSON values (the payload's ``summary``)."""
    lat = result.latency
    return {
        "status": verdict(result).value,
        "headline": headline(result),
        "unanswered_queries": result.unanswered_queries,
        "unanswered_transactions": result.unanswered_transactions,
        "slow_responses": result.slow_responses,
        "slow_threshold_s": result.slow_threshold_s,
        "servfail_responses": servfail_count(result),
        "frames": result.frames,
        "dns_messages": result.dns_messages,
        "queries": result.queries,
        "responses": result.responses,
        "malformed": result.malformed,
        "transactions": result.transactions,
        "answered_transactions": result.answered_transactions,
        "retransmitted_queries": result.retransmitted_queries,
        "retransmitted_responses": result.retransmitted_responses,
        "unsolicited_responses": result.unsolicited_responses,
        "response_rcodes": dict(result.response_rcodes),
        "latency_ms": {
            "count": lat.count, "average": lat.average_ms, "min": lat.min_ms, "p50": lat.p50_ms,
            "p90": lat.p90_ms, "p99": lat.p99_ms, "max": lat.max_ms,
        },
        "aaaa_pairs": result.aaaa_pairs,
        "aaaa_pair_members_lost": result.aaaa_pair_members_lost,
        "followed_lookups": result.hop_count,
        "first_time": iso_time(result.first_time_ns),
        "last_time": iso_time(result.last_time_ns),
        "duration_s": result.duration_s,
        "ignored_frames": dict(result.ignored),
    }


def _tx(r: TxRecord) -> dict[str, Any]:
    d = asdict(r)
    d["time"] = iso_time(r.time_ns)
    return d


def payload(result: AnalysisResult) -> dict[str, Any]:
    """The ``--format json`` document (also ``Report.data``)."""
    return {
        "summary": summary(result),
        "files": [{"path": p, "packets": n} for p, n in result.files],
        "warnings": list(result.warnings),
        "unanswered": [_tx(r) for r in result.unanswered],
        "slow": [_tx(r) for r in result.slow],
        "servers": [asdict(p) | {"rt_avg_ms": p.rt_avg_ms} for p in result.servers],
        "clients": [asdict(p) | {"rt_avg_ms": p.rt_avg_ms} for p in result.clients],
        "failing_names": [asdict(f) for f in result.failing_names],
        "expansion_storms": [asdict(s) for s in expansion_storms(result)],
        "timeline": [asdict(s) for s in result.timeline],
        "latency_histogram_ms": [list(b) for b in result.latency.histogram],
        "guide_table": asdict(result.guide),
        "hops": [
            {**asdict(h), "client_query": _tx(h.client_query), "upstream_query": _tx(h.upstream_query)}
            for h in result.hops
        ],
        "tshark_tree": [asdict(r) for r in result.tree_rows],
    }


def render_json(result: AnalysisResult) -> str:
    return json.dumps(payload(result), indent=2, sort_keys=False) + "\n"


def render_tshark(result: AnalysisResult) -> str:
    """Byte for byte what ``tshark -q -z dns,tree`` (Wireshark 4.0) prints."""
    return result.tshark_tree


def _csv_row(kind: str, r: TxRecord) -> list[str]:
    rt = "" if r.response_time_ms is None else f"{r.response_time_ms:.3f}"
    return [kind, iso_time(r.time_ns), r.client, r.server, r.transport, f"0x{r.id:04x}", r.qtype, r.qname,
            r.rcode or "", rt, str(r.retransmissions)]


def render_csv(result: AnalysisResult) -> str:
    """Unanswered queries and slow responses, one row each."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in result.unanswered:
        w.writerow(_csv_row("unanswered", r))
    for r in result.slow:
        w.writerow(_csv_row("slow", r))
    return buf.getvalue()


def tx_table_rows(records: tuple[TxRecord, ...], *, with_time: bool = True) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in records[:LIST_SHOWN]:
        rt = "" if r.response_time_ms is None else f"{r.response_time_ms / 1000:.3f} s"
        row = (iso_time(r.time_ns)[11:23], r.client, r.server, f"0x{r.id:04x}", r.qtype, r.qname, r.rcode or "", rt)
        rows.append(row if with_time else row[1:])
    return rows


def peer_rows(peers: tuple[Peer, ...], limit: int = 10) -> list[tuple[str, ...]]:
    return [
        (p.address, str(p.queries), str(p.responses), str(p.nxdomain), str(p.servfail), str(p.unanswered),
         str(p.slow), f"{p.rt_avg_ms:.1f}", f"{p.rt_max_ms:.1f}")
        for p in peers[:limit]
    ]


PEER_COLUMNS = ("address", "queries", "responses", "NXDOMAIN", "SERVFAIL", "unanswered", "slow", "avg ms", "max ms")
TX_COLUMNS = ("time (UTC)", "client", "server", "id", "type", "name", "rcode", "response time")


def _table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return ["  " + fmt.format(*columns).rstrip()] + ["  " + fmt.format(*r).rstrip() for r in rows]


def render_text(result: AnalysisResult) -> str:
    """What the on-call engineer needs first, for a terminal."""
    out: list[str] = []
    files = ", ".join(f"{p} ({n:,} packets)" for p, n in result.files)
    out.append(f"DNS analysis of {files}")
    out.append(f"{verdict(result).mark} {headline(result)}")
    if result.first_time_ns is not None:
        out.append(f"Time span: {iso_time(result.first_time_ns)[:19]} to {iso_time(result.last_time_ns)[:19]} UTC "
                   f"({result.duration_s:.1f} s)")
    for w in result.warnings:
        out.append(f"Warning: {w}")
    if result.malformed:
        out.append(f"Malformed DNS messages (not counted): {result.malformed:,}")
    out.append("")
    out.append("Response codes (responses only):")
    for name, n in result.response_rcodes:
        share = 100.0 * n / result.responses if result.responses else 0.0
        out.append(f"  {name:<28} {n:>10,}  {share:6.2f}%")
    out.append("")
    out.append(f"Unanswered queries: {result.unanswered_queries:,} (Wireshark: (dns.flags.response == 0) && "
               f"! dns.response_in); transactions never answered: {result.unanswered_transactions:,}; "
               f"re-sent queries: {result.retransmitted_queries:,}")
    if result.unanswered:
        out += _table(TX_COLUMNS[:6], [r[:6] for r in tx_table_rows(result.unanswered)])
    out.append("")
    out.append(f"Slow responses (dns.time >= {result.slow_threshold_s:g} s): {result.slow_responses:,}")
    if result.slow:
        out += _table(TX_COLUMNS, tx_table_rows(result.slow))
    lat = result.latency
    out.append("")
    out.append(f"Response time over {lat.count:,} answered transactions: p50 {lat.p50_ms:.3f} ms, "
               f"p90 {lat.p90_ms:.3f} ms, p99 {lat.p99_ms:.3f} ms, max {lat.max_ms:.3f} ms")
    out.append(f"Duplicate responses: {result.retransmitted_responses:,}; unsolicited responses: "
               f"{result.unsolicited_responses:,}")
    out.append("")
    out.append("Per server:")
    out += _table(PEER_COLUMNS, peer_rows(result.servers))
    out.append("Per client:")
    out += _table(PEER_COLUMNS, peer_rows(result.clients))
    if result.failing_names:
        out.append("")
        out.append("Top failing names:")
        out += _table(("count", "rcode", "name"),
                      [(f"{f.count:,}", f.rcode, f.name) for f in result.failing_names[:10]])
    storms = expansion_storms(result)
    if storms:
        out.append("")
        out.append("Search-list expansion storms (ndots:5; use a trailing dot or lower ndots):")
        out += _table(("NXDOMAIN", "expansions", "name"),
                      [(f"{s.nxdomain:,}", str(len(s.expansions)), s.base) for s in storms[:10]])
    out.append("")
    out.append(f"A/AAAA pairs sent from one socket: {result.aaaa_pairs:,}; pair members re-sent or never "
               f"answered: {result.aaaa_pair_members_lost:,} (conntrack race signature if > 0)")
    if result.hops:
        out.append("")
        out.append(f"Lookups followed from client to CoreDNS to upstream: {result.hop_count:,}")
        rows = []
        for h in sorted(result.hops, key=lambda h: -(h.client_ms or 0.0))[:10]:
            lookup = f"{h.client_query.qname} {h.client_query.qtype}"
            rows.append((lookup, h.client_query.client, h.upstream_query.server,
                         _ms(h.client_ms, "no answer"), _ms(h.upstream_ms, "no answer"), _ms(h.after_upstream_ms)))
        out += _table(("name", "client", "upstream", "client wait", "upstream", "after upstream"), rows)
    busiest = sorted(result.timeline, key=lambda s: (-(s.errors + s.unanswered + s.slow), s.second))[:5]
    if busiest and any(s.errors + s.unanswered + s.slow for s in busiest):
        out.append("")
        out.append("Worst seconds (errors + unanswered + slow):")
        out += _table(("second (UTC)", "queries", "responses", "errors", "unanswered", "slow"),
                      [(iso_time(s.second * 1_000_000_000)[:19], str(s.queries), str(s.responses), str(s.errors),
                        str(s.unanswered), str(s.slow)) for s in busiest])
    out.append("")
    out.append("Wireshark's DNS statistics (the guide's table; `--format tshark` gives tshark 4.0's tree):")
    out += _table(GUIDE_COLUMNS, guide_rows(result))
    return "\n".join(out) + "\n"


GUIDE_COLUMNS = ("topic / item", "count", "average", "min", "max")


def guide_rows(result: AnalysisResult) -> list[tuple[str, ...]]:
    """The guide's table (Wireshark's newer DNS dialog), indented by level."""
    g = result.guide
    rows: list[tuple[str, ...]] = [("Total Packets", f"{result.dns_messages:,}", "", "", "")]
    rows.append(("  rcode", f"{result.dns_messages:,}", "", "", ""))
    rows += [(f"    {name}", f"{n:,}", "", "", "") for name, n in g.rcodes]
    rows.append(("Query/Response", f"{result.dns_messages:,}", "", "", ""))
    rows.append(("  Response", f"{result.responses:,}", "", "", ""))
    rows += [(f"    {name}", f"{n:,}", "", "", "") for name, n in g.response_types]
    a = g.answer_rrs
    rows.append(("    Answer RRs", f"{a.count:,}", f"{a.average:.2f}", f"{a.min:g}", f"{a.max:g}"))
    rows += [(f"      {name}", f"{n:,}", "", "", "") for name, n in g.answer_types]
    rows += [(f"      TTL {t.label}", f"{t.count:,}", f"{t.average:.2f}", f"{t.min:g}", f"{t.max:g}")
             for t in g.ttl_by_type]
    rows.append(("  Query", f"{result.queries:,}", "", "", ""))
    rows += [(f"    {name}", f"{n:,}", "", "", "") for name, n in g.query_types]
    lat = result.latency
    rows.append(("Response time (secs)", f"{lat.count:,}", f"{lat.average_ms / 1000:.4f}",
                 f"{lat.min_ms / 1000:.6f}", f"{lat.max_ms / 1000:.6f}"))
    rows += [(f"  {b.label}", f"{b.count:,}", f"{b.average:.4f}", f"{b.min:.6f}", f"{b.max:.6f}")
             for b in g.response_time_buckets]
    rows.append(("Service stats", "", "", "", ""))
    rows.append(("  Unsolicited", f"{g.unsolicited:,}", "", "", ""))
    rows.append(("  Retransmission", f"{g.retransmissions:,}", "", "", ""))
    rows.append(("  Request not found", f"{g.request_not_found:,}", "", "", ""))
    rows.append(("Payload size", f"{result.dns_messages:,}", "", "", ""))
    rows += [(f"  {b.label}", f"{b.count:,}", f"{b.average:.2f}", f"{b.min:g}", f"{b.max:g}")
             for b in g.payload_size_buckets]
    return rows


def _ms(v: float | None, missing: str = "-") -> str:
    return missing if v is None else f"{v:.1f} ms"
