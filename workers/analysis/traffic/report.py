"""The thread's report of an analysis: status lines, tables, pictures and CSV files."""

from __future__ import annotations

from workers.analysis.traffic import charts, formats, guide_table, pattern, signatures
from workers.analysis.traffic.findings import expansion_storms, headline, servfail_count, verdict
from workers.analysis.traffic.model import AnalysisResult
from workers.report import Attachment, Markdown, Report, Status, StatusLine, Table

EVIDENCE_SHOWN = 10
EVIDENCE_COLUMNS = ("time (UTC)", "client", "server", "type", "name", "detail")


def _signature_sections(sigs: tuple[signatures.Signature, ...]) -> list[StatusLine | Table]:
    out: list[StatusLine | Table] = []
    for s in sigs:
        if not s.found:
            out.append(StatusLine(Status.OK, s.title, "not seen"))
            continue
        out.append(StatusLine(Status.WARN, s.title, f"{s.count:,} — {s.meaning}"))
        rows = tuple((e.time[11:23], e.client, e.server, e.qtype, e.name, e.detail)
                     for e in s.evidence[:EVIDENCE_SHOWN])
        if rows:
            out.append(Table(f"Evidence: {s.title}", EVIDENCE_COLUMNS, rows))
    return out


def build_report(result: AnalysisResult, *, title: str, attachments: bool = True) -> Report:
    """The report; ``attachments=False`` skips the pictures and CSV files (nothing would
    show them, e.g. the CLI without ``--out``)."""
    status = verdict(result)
    sections: list[Markdown | StatusLine | Table] = []
    for w in result.warnings:
        sections.append(StatusLine(Status.WARN, "Capture damaged", w))
    sections.append(StatusLine(
        Status.FAIL if result.unanswered_transactions else Status.OK,
        "Unanswered queries",
        f"{result.unanswered_transactions:,} transactions never answered; "
        f"{result.unanswered_queries:,} queries match `(dns.flags.response == 0) && ! dns.response_in` "
        "(it also counts re-sent queries and duplicate copies of one); "
        f"Wireshark 4.4's dns_qr Unanswered: {result.qr_unanswered:,} (queries not re-sent, less answered responses)",
    ))
    sections.append(StatusLine(
        Status.WARN if result.slow_responses else Status.OK,
        f"Responses ≥ {result.slow_threshold_s:g} s",
        f"{result.slow_responses:,} (`dns.time >= {result.slow_threshold_s:g}`)",
    ))
    sf = servfail_count(result)
    sections.append(StatusLine(Status.FAIL if sf else Status.OK, "SERVFAIL responses", f"{sf:,}"))
    when = pattern.classify(result.timeline)
    sections.append(StatusLine(
        Status.INFO if when.kind == "none" else Status.WARN, "When failures happen", when.text))
    lat = result.latency
    sections.append(Markdown(
        f"*Response time* over {lat.count:,} answered transactions: p50 {lat.p50_ms:.2f} ms, "
        f"p90 {lat.p90_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms, max {lat.max_ms:.1f} ms"))
    sections.append(Table("Response codes (responses only)", ("rcode", "responses"),
                          tuple((name, f"{n:,}") for name, n in result.response_rcodes)))
    if result.unanswered:
        sections.append(Table("First unanswered queries", formats.TX_COLUMNS[:6],
                              tuple(r[:6] for r in formats.tx_table_rows(result.unanswered))))
    if result.slow:
        sections.append(Table("First slow responses", formats.TX_COLUMNS, tuple(formats.tx_table_rows(result.slow))))
    sections.append(Table("Per server", formats.PEER_COLUMNS, tuple(formats.peer_rows(result.servers))))
    sections.append(Table("Per client", formats.PEER_COLUMNS, tuple(formats.peer_rows(result.clients))))
    if result.failing_names:
        sections.append(Table("Top failing names", ("count", "rcode", "name"),
                              tuple((f"{f.count:,}", f.rcode, f.name) for f in result.failing_names[:10])))
    storms = expansion_storms(result)
    if storms:
        sections.append(Table("Search-list amplification (ndots:5): NXDOMAIN answers each name cost",
                              ("NXDOMAIN", "expansions", "name"),
                              tuple((f"{s.nxdomain:,}", str(len(s.expansions)), s.base) for s in storms[:10])))
    sigs = signatures.all_signatures(result)
    sections += _signature_sections(sigs)
    if result.aaaa_pairs:
        sections.append(StatusLine(
            Status.WARN if result.aaaa_pair_members_lost else Status.INFO,
            "A/AAAA pairs from one socket",
            f"{result.aaaa_pairs:,} pairs; {result.aaaa_pair_members_lost:,} members re-sent or never answered",
        ))
    sections.append(Table(guide_table.TITLE, guide_table.COLUMNS, tuple(guide_table.rows(result))))
    sections.append(Markdown(
        "No Wireshark version prints the guide's table: its layout is the guide's, each row is computed "
        "by the Wireshark definition docs/analyze.md gives for it, and bucket edges beyond the guide's "
        "are this project's choice. `aksdns analyze FILE --format tshark [--wireshark 4.4]` prints "
        "tshark's own statistics."))
    files: list[Attachment] = []
    if attachments:
        files = [
            Attachment("dns-response-times.png", charts.histogram_png(result), "DNS response-time histogram", "png"),
            Attachment("dns-timeline.png", charts.timeline_png(result, when),
                       "Queries, unanswered, SERVFAIL and slow answers over time", "png"),
            Attachment("dns-unanswered-and-slow.csv", formats.render_csv(result).encode(),
                       "Unanswered queries and slow responses", "csv"),
            Attachment("dns-signatures.csv", signatures.render_csv(sigs).encode(),
                       "Evidence of the failure signatures", "csv"),
        ]
    return Report(
        title=title,
        status=status,
        summary=headline(result),
        sections=list(sections),
        attachments=files,
        data=formats.payload(result),
    )
