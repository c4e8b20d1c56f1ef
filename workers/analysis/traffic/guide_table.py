"""The guide's table: its layout, every row computed by a stated Wireshark counting rule.

The troubleshooting guide shows a DNS statistics table that no Wireshark version prints
(its rows exist in no Wireshark source and its figures contradict each other: see
docs/analyze.md).  Users follow the guide, so the report keeps its layout; each row below
says which Wireshark definition computes it.  Bucket edges past the two the guide shows
("0.0-0.1 secs", "6.0-7.0 secs"; "0-63 bytes", "64-127 bytes") are this project's choice:
tenths of a second below 1 s, whole seconds up to 10 s; powers of two for sizes.
"""

from __future__ import annotations

from workers.analysis.traffic.model import AnalysisResult

TITLE = "The guide's table (its layout, Wireshark's counting rules)"
COLUMNS = ("topic / item", "count", "average", "min", "max", "percent")

# Row -> the Wireshark definition it uses (docs/analyze.md repeats these).
DEFINITIONS: dict[str, str] = {
    "Total Packets": "DNS messages on port 53 that dissect (dns,tree's Total Packets)",
    "rcode": "every message by its rcode, queries too (dns,tree's rcode: a query counts as No error)",
    "Query/Response": "messages by the QR bit (dns,tree's Query/Response)",
    "Response / Question": "responses by the type of their question (dns.qry.type)",
    "Answer RRs": "answer records per response: average, min, max of dns.count.answers",
    "Total RRs": "answer records of all responses, by type (dns.resp.type in the answer section)",
    "TTL": "TTL of those answer records (dns.resp.ttl): average, min, max",
    "Query / Question": "queries by the type of their question (dns.qry.type)",
    "Question type": "every message by the type of its question (dns,tree's Query Type)",
    "Response time (secs)": "dns.time of answered transactions (first response to the original query; "
    "duplicates and unsolicited responses excluded), in seconds",
    "Unsolicited": "responses with no query in the capture (dns,tree's no. of unsolicited responses)",
    "Retransmission": "duplicate responses to an answered query (dns,tree's no. of retransmissions)",
    "Request not found": "queries matching `(dns.flags.response == 0) && ! dns.response_in` in two passes "
    "(never answered, plus every re-sent query)",
    "Payload size": "DNS message length (over TCP with its 2-byte prefix), as dns,tree's Payload size",
}


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.2f}%" if total else ""


def rows(result: AnalysisResult) -> list[tuple[str, ...]]:
    """The table, indented by level, in the guide's order of rows."""
    g = result.guide
    total = result.dns_messages
    out: list[tuple[str, ...]] = [("Total Packets", f"{total:,}", "", "", "", "100%")]
    out.append(("  rcode", f"{total:,}", "", "", "", _pct(total, total)))
    out += [(f"    {name}", f"{n:,}", "", "", "", _pct(n, total)) for name, n in g.rcodes]
    out.append(("Query/Response", f"{total:,}", "", "", "", "100%"))
    out.append(("  Response", f"{result.responses:,}", "", "", "", _pct(result.responses, total)))
    out.append(("    Question", f"{result.responses:,}", "", "", "", _pct(result.responses, result.responses)))
    out += [(f"      {name}", f"{n:,}", "", "", "", _pct(n, result.responses)) for name, n in g.response_types]
    a = g.answer_rrs
    out.append(("    Answer RRs", f"{a.count:,}", f"{a.average:.2f}", f"{a.min:g}", f"{a.max:g}",
                _pct(a.count, result.responses)))
    rrs = sum(n for _, n in g.answer_types)
    out.append(("      Total RRs", f"{rrs:,}", "", "", "", ""))
    ttl = {t.label: t for t in g.ttl_by_type}
    for name, n in g.answer_types:
        out.append((f"        {name}", f"{n:,}", "", "", "", _pct(n, rrs)))
        t = ttl.get(name)
        if t is not None:
            out.append(("          TTL", f"{t.count:,}", f"{t.average:.2f}", f"{t.min:g}", f"{t.max:g}", ""))
    out.append(("  Query", f"{result.queries:,}", "", "", "", _pct(result.queries, total)))
    out.append(("    Question", f"{result.queries:,}", "", "", "", _pct(result.queries, result.queries)))
    out += [(f"      {name}", f"{n:,}", "", "", "", _pct(n, result.queries)) for name, n in g.query_types]
    out.append(("Question type", f"{total:,}", "", "", "", "100%"))
    both: dict[str, int] = {}
    for name, n in (*g.query_types, *g.response_types):
        both[name] = both.get(name, 0) + n
    out += [(f"  {name}", f"{n:,}", "", "", "", _pct(n, total))
            for name, n in sorted(both.items(), key=lambda kv: (-kv[1], kv[0]))]
    lat = result.latency
    out.append(("Response time (secs)", f"{lat.count:,}", f"{lat.average_ms / 1000:.4f}",
                f"{lat.min_ms / 1000:.6f}", f"{lat.max_ms / 1000:.6f}", "100%"))
    out += [(f"  {b.label}", f"{b.count:,}", f"{b.average:.4f}", f"{b.min:.6f}", f"{b.max:.6f}",
             _pct(b.count, lat.count)) for b in g.response_time_buckets]
    service = g.unsolicited + g.retransmissions + g.request_not_found
    out.append(("Service stats", f"{service:,}", "", "", "", "100%"))
    out.append(("  Unsolicited", f"{g.unsolicited:,}", "", "", "", _pct(g.unsolicited, total)))
    out.append(("  Retransmission", f"{g.retransmissions:,}", "", "", "", _pct(g.retransmissions, total)))
    out.append(("  Request not found", f"{g.request_not_found:,}", "", "", "", _pct(g.request_not_found, total)))
    out.append(("Payload size", f"{total:,}", "", "", "", "100%"))
    out += [(f"  {b.label}", f"{b.count:,}", f"{b.average:.2f}", f"{b.min:g}", f"{b.max:g}", _pct(b.count, total))
            for b in g.payload_size_buckets]
    return out
