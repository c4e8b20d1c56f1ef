"""Pure renderings of an analysis: the JSON payload, the CSV list of unanswered and slow
queries, and the table rows the report shows."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from workers.analysis.traffic import guide_table, pattern, signatures
from workers.analysis.traffic.analysis import SHOWN
from workers.analysis.traffic.findings import expansion_storms, headline, servfail_count, verdict
from workers.analysis.traffic.model import HOPS_KEPT, AnalysisResult, Peer, TxRecord
from workers.analysis.traffic.timefmt import iso_time

LIST_SHOWN = 20
JSON_LIST_LIMIT = SHOWN  # the typed result holds no more of unanswered, slow and clients
JSON_HOPS = HOPS_KEPT
# Which Wireshark definition each headline figure uses.
DEFINITIONS = {
    "unanswered_queries": "queries matching `(dns.flags.response == 0) && ! dns.response_in` with tshark -2 "
    "(transactions never answered, plus every re-sent query)",
    "unanswered_transactions": "transactions (conversation + DNS ID, dns.retransmission_timer 5 s) never answered",
    "unanswered_dns_qr": "Wireshark 4.4 dns_qr,tree's Query/Servicing/Unanswered: queries that are not "
    "retransmissions, less one for each answered response",
    "slow_responses": "responses matching `dns.time >= S` (time from the original query to the first response)",
    "retransmitted_responses": "dns,tree's no. of retransmissions (duplicate responses)",
    "unsolicited_responses": "dns,tree's no. of unsolicited responses (no query in the capture)",
}
CSV_COLUMNS = (
    "kind", "time", "client", "server", "transport", "id", "type", "name", "rcode",
    "response_time_ms", "retransmissions",
)


def summary(result: AnalysisResult) -> dict[str, Any]:
    """Every headline figure, as plain JSON values (the payload's ``summary``)."""
    lat = result.latency
    return {
        "status": verdict(result).value,
        "headline": headline(result),
        "unanswered_queries": result.unanswered_queries,
        "unanswered_transactions": result.unanswered_transactions,
        "unanswered_dns_qr": result.qr_unanswered,
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


def _flat(obj: Any) -> dict[str, Any]:
    """A flat dataclass as a dict (``asdict`` deep-copies: ten times slower on big lists)."""
    return dict(vars(obj))


def _tx(r: TxRecord) -> dict[str, Any]:
    d = _flat(r)
    d["time"] = iso_time(r.time_ns)
    return d


def payload(result: AnalysisResult) -> dict[str, Any]:
    """The ``--format json`` document (also ``Report.data``).

    Lists hold their first ``JSON_LIST_LIMIT`` entries (followed lookups ``JSON_HOPS``);
    the CSV attachment lists up to 1,000 unanswered and slow queries, and the counts are
    in ``summary``.
    """
    n = JSON_LIST_LIMIT
    return {
        "summary": summary(result),
        "files": [{"path": p, "packets": c} for p, c in result.files],
        "warnings": list(result.warnings),
        "unanswered": [_tx(r) for r in result.unanswered[:n]],
        "slow": [_tx(r) for r in result.slow[:n]],
        "servers": [_flat(p) | {"rt_avg_ms": p.rt_avg_ms} for p in result.servers[:n]],
        "clients": [_flat(p) | {"rt_avg_ms": p.rt_avg_ms} for p in result.clients[:n]],
        "failing_names": [_flat(f) for f in result.failing_names[:n]],
        "expansion_storms": [asdict(s) for s in expansion_storms(result)[:n]],
        "timeline": [_flat(s) for s in result.timeline],
        "timeline_pattern": asdict(pattern.classify(result.timeline)),
        "server_timelines": [{"address": t.address, "seconds": [_flat(s) for s in t.seconds]}
                             for t in result.server_timelines],
        "signatures": [
            {**{k: v for k, v in _flat(sig).items() if k != "evidence"},
             "evidence": [_flat(e) for e in sig.evidence[:n]]}
            for sig in signatures.all_signatures(result)
        ],
        "latency_histogram_ms": [list(b) for b in result.latency.histogram],
        "guide_table": asdict(result.guide),
        "guide_table_definitions": guide_table.DEFINITIONS,
        "definitions": DEFINITIONS,
        "hops": [
            {**_flat(h), "client_query": _tx(h.client_query), "upstream_query": _tx(h.upstream_query)}
            for h in result.hops[:JSON_HOPS]
        ],
        "tshark_tree": [_flat(r) for r in result.tree_rows],
    }


def render_json(result: AnalysisResult) -> str:
    return json.dumps(payload(result), indent=2, sort_keys=False) + "\n"


def render_csv(result: AnalysisResult) -> str:
    """Unanswered queries and slow responses, one row each (columns ``CSV_COLUMNS``): the core
    writes them (native/src/tx_csv.rs), every kept record, not only the ones ``result`` holds."""
    return result.tx_csv


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
