"""`analyze`: Wireshark-grade DNS statistics from capture files, in one pass.

gather (read the files: the compiled core streams them) -> analyse (the same pass) ->
build a report (pure) -> render (text, JSON, CSV or tshark's own ``dns,tree`` text).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from workers.analysis.traffic import formats
from workers.analysis.traffic.findings import expansion_storms, headline, servfail_count, verdict
from workers.analysis.traffic.histogram import histogram_png
from workers.analysis.traffic.model import AnalysisResult
from workers.pcap.native import analyze_raw
from workers.report import Attachment, Markdown, Report, Status, StatusLine, Table

FORMATS = ("text", "json", "csv", "tshark")
LIST_LIMIT = 1000  # list entries kept per list (unanswered, slow, followed lookups)


def analyze_files(paths: Sequence[str | os.PathLike[str]], *, slow_s: float = 5.0) -> AnalysisResult:
    """Analyse the captures as one merged capture (mergecap order: by time stamp).

    Raises :class:`aksdns.errors.CaptureFileError` for a file that is empty, not a
    capture or cut short in its header; a capture cut short mid-packet gives statistics
    for every complete packet and a warning in ``result.warnings``.
    """
    if not paths:
        raise ValueError("analyze_files needs at least one capture file")
    return AnalysisResult.from_json(analyze_raw(paths, slow_s=slow_s, list_limit=LIST_LIMIT))


def render(result: AnalysisResult, fmt: str) -> str | bytes:
    """``text``, ``json``, ``csv`` (unanswered and slow lists) or ``tshark`` (dns,tree)."""
    if fmt == "text":
        return formats.render_text(result)
    if fmt == "json":
        return formats.render_json(result)
    if fmt == "csv":
        return formats.render_csv(result)
    if fmt == "tshark":
        return formats.render_tshark(result)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def build_report(result: AnalysisResult, *, title: str) -> Report:
    """The thread's report: summary lines, tables, the PNG histogram and the CSV lists."""
    status = verdict(result)
    sections: list[Markdown | StatusLine | Table] = []
    for w in result.warnings:
        sections.append(StatusLine(Status.WARN, "Capture damaged", w))
    sections.append(StatusLine(
        Status.FAIL if result.unanswered_transactions else Status.OK,
        "Unanswered queries",
        f"{result.unanswered_transactions:,} transactions never answered; "
        f"{result.unanswered_queries:,} queries match `(dns.flags.response == 0) && ! dns.response_in` "
        "(it also counts re-sent queries and duplicate copies of one)",
    ))
    sections.append(StatusLine(
        Status.WARN if result.slow_responses else Status.OK,
        f"Responses ≥ {result.slow_threshold_s:g} s",
        f"{result.slow_responses:,} (`dns.time >= {result.slow_threshold_s:g}`)",
    ))
    sf = servfail_count(result)
    sections.append(StatusLine(Status.FAIL if sf else Status.OK, "SERVFAIL responses", f"{sf:,}"))
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
        sections.append(Table("Search-list expansion storms (ndots:5)", ("NXDOMAIN", "expansions", "name"),
                              tuple((f"{s.nxdomain:,}", str(len(s.expansions)), s.base) for s in storms[:10])))
    if result.aaaa_pairs:
        sections.append(StatusLine(
            Status.WARN if result.aaaa_pair_members_lost else Status.INFO,
            "A/AAAA pairs from one socket",
            f"{result.aaaa_pairs:,} pairs; {result.aaaa_pair_members_lost:,} members re-sent or never answered",
        ))
    sections.append(Table("Wireshark DNS statistics (the guide's table)", formats.GUIDE_COLUMNS,
                          tuple(formats.guide_rows(result))))
    data = formats.payload(result)
    attachments = [
        Attachment("dns-response-times.png", histogram_png(result), "DNS response-time histogram", "png"),
        Attachment("dns-unanswered-and-slow.csv", formats.render_csv(result).encode(),
                   "Unanswered queries and slow responses", "csv"),
    ]
    return Report(
        title=title,
        status=status,
        summary=headline(result),
        sections=list(sections),
        attachments=attachments,
        data=data,
    )
