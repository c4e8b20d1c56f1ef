"""The analysis as the on-call engineer sees it: JSON payload, text, CSV, report."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from workers.analysis.traffic.analysis import analyze_files, render
from workers.analysis.traffic.findings import expansion_storms, search_bases
from workers.analysis.traffic.report import build_report
from workers.analysis.traffic.timefmt import iso_time
from workers.pcap import synth as S
from workers.render.text import render_text
from workers.report import Status

T0 = 1_711_990_000_000_000_000


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "mixed.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, S.mixed_lookups(1, lookups=80))
    return path


def test_json_summary_holds_the_integer_counts(capture: Path) -> None:
    result = analyze_files([capture])
    doc = json.loads(render(result, "json"))
    summary = doc["summary"]
    assert isinstance(summary["unanswered_queries"], int)
    assert isinstance(summary["slow_responses"], int)
    assert summary["unanswered_queries"] == result.unanswered_queries
    assert summary["slow_responses"] == result.slow_responses
    for key in ("latency_ms", "response_rcodes", "aaaa_pairs", "unanswered_transactions", "servfail_responses"):
        assert key in summary
    for key in ("unanswered", "slow", "servers", "clients", "failing_names", "expansion_storms", "timeline",
                "guide_table", "hops", "tshark_tree"):
        assert key in doc
    assert len(doc["unanswered"]) == min(result.unanswered_transactions, 200)


def test_csv_lists_unanswered_then_slow(capture: Path) -> None:
    result = analyze_files([capture])
    rows = list(csv.DictReader(io.StringIO(str(render(result, "csv")))))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("unanswered") == len(result.unanswered)
    assert kinds.count("slow") == result.slow_responses
    slow = [r for r in rows if r["kind"] == "slow"]
    assert all(float(r["response_time_ms"]) >= 5000 for r in slow)


def test_text_names_the_figures_first(capture: Path) -> None:
    text = render_text(build_report(analyze_files([capture]), title="t", attachments=False))
    assert "Unanswered queries —" in text
    assert "Responses ≥ 5 s —" in text
    assert "Response codes (responses only)" in text
    assert "Per server" in text
    assert "When failures happen —" in text
    assert "The guide's table (its layout, Wireshark's counting rules)" in text
    assert "Attachments:" not in text


def test_unknown_format_is_refused(capture: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(analyze_files([capture]), "xml")


def test_report_has_png_histogram_csv_and_json_data(capture: Path) -> None:
    result = analyze_files([capture])
    report = build_report(result, title="analyze mixed.pcap")
    assert report.status is Status.FAIL
    histogram, timeline, table, evidence = report.attachments
    assert histogram.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert timeline.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert table.content.decode().startswith("kind,time,client,server")
    assert evidence.content.decode().startswith("signature,time,client,server")
    assert report.data["summary"]["unanswered_queries"] == result.unanswered_queries
    assert report.summary.startswith(f"{result.dns_messages:,} DNS messages")


def test_clean_capture_is_ok(tmp_path: Path) -> None:
    c, d = S.Endpoint("10.0.0.5", 40000), S.Endpoint("10.0.0.10", 53)
    packets = [S.udp_packet(T0, c, d, S.dns_message(1, "a.b")),
               S.udp_packet(T0 + 10**6, d, c, S.dns_message(1, "a.b", response=True))]
    path = tmp_path / "ok.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, packets)
    report = build_report(analyze_files([path]), title="t")
    assert report.status is Status.OK


@pytest.mark.parametrize(
    ("name", "bases"),
    [
        ("db.contoso.com.default.svc.cluster.local", ("db.contoso.com", "db.contoso.com.default")),
        # Ambiguous alone ("com" could be a namespace): grouping with the other expansions decides.
        ("db.contoso.com.svc.cluster.local", ("db.contoso", "db.contoso.com")),
        ("db.contoso.com.cluster.local", ("db.contoso.com",)),
        ("db.contoso.com.iosffyoulcwehgo1g3egb3m4oc.jx.internal.cloudapp.net", ("db.contoso.com",)),
        ("redis.svc.cluster.local", ()),  # a one-label service name
        ("db.contoso.com", ()),
    ],
)
def test_search_bases(name: str, bases: tuple[str, ...]) -> None:
    assert search_bases(name) == bases


def test_expansion_storm_groups_the_suffixes(tmp_path: Path) -> None:
    c, d = S.Endpoint("10.0.0.5", 40000), S.Endpoint("10.0.0.10", 53)
    packets = []
    suffixes = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local", "abc.jx.internal.cloudapp.net")
    for i, suffix in enumerate(suffixes):
        name = f"db.contoso.com.{suffix}"
        packets.append(S.udp_packet(T0 + i * 1000, c, d, S.dns_message(i, name)))
        packets.append(S.udp_packet(T0 + i * 1000 + 500, d, c, S.dns_message(i, name, response=True, rcode=3)))
    path = tmp_path / "storm.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, packets)
    storms = expansion_storms(analyze_files([path]))
    assert [(s.base, len(s.expansions), s.nxdomain) for s in storms] == [("db.contoso.com", 4, 4)]


def test_a_aaaa_pairs_and_lost_members(tmp_path: Path) -> None:
    c, d = S.Endpoint("10.0.0.5", 40000), S.Endpoint("10.0.0.10", 53)
    packets = [
        S.udp_packet(T0, c, d, S.dns_message(1, "a.b", S.TYPE_A)),
        S.udp_packet(T0 + 50_000, c, d, S.dns_message(2, "a.b", S.TYPE_AAAA)),
        S.udp_packet(T0 + 900_000, d, c, S.dns_message(1, "a.b", S.TYPE_A, response=True)),
        # The AAAA answer never comes: the conntrack race signature.
    ]
    path = tmp_path / "pair.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, packets)
    result = analyze_files([path])
    assert result.aaaa_pairs == 1
    assert result.aaaa_pair_members_lost == 1


def test_lookup_followed_from_client_to_upstream(tmp_path: Path) -> None:
    client, core = S.Endpoint("10.244.1.5", 40000), S.Endpoint("10.244.0.10", 53)
    core_out, upstream = S.Endpoint("10.244.0.10", 51000), S.Endpoint("168.63.129.16", 53)
    name = "db.contoso.com"
    packets = [
        S.udp_packet(T0, client, core, S.dns_message(1, name)),
        S.udp_packet(T0 + 100_000, core_out, upstream, S.dns_message(77, name)),
        S.udp_packet(T0 + 6_000_000_000, upstream, core_out, S.dns_message(77, name, response=True, rcode=2)),
        S.udp_packet(T0 + 6_000_300_000, core, client, S.dns_message(1, name, response=True, rcode=2)),
    ]
    path = tmp_path / "hops.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, packets)
    result = analyze_files([path])
    assert result.hop_count == 1
    (hop,) = result.hops
    assert hop.before_upstream_ms == pytest.approx(0.1)
    assert hop.upstream_ms == pytest.approx(5999.9)
    assert hop.after_upstream_ms == pytest.approx(0.3)
    assert hop.client_ms == pytest.approx(6000.3)
    assert hop.client_query.client == "10.244.1.5:40000"
    assert hop.upstream_query.server == "168.63.129.16:53"


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (None, ""),
        (0, "1970-01-01 00:00:00.000000"),
        (1_711_990_000_123_456_000, "2024-04-01 16:46:40.123456"),
        # Exact nanoseconds round to the nearest microsecond, half to even, where a float of
        # the seconds (0.24 µs apart in 2024) cannot tell these apart.
        (1_711_990_000_123_456_499, "2024-04-01 16:46:40.123456"),
        (1_711_990_000_123_456_501, "2024-04-01 16:46:40.123457"),
        (1_711_990_000_123_456_500, "2024-04-01 16:46:40.123456"),
        (1_711_990_000_123_457_500, "2024-04-01 16:46:40.123458"),
        (1_711_990_000_999_999_600, "2024-04-01 16:46:41.000000"),  # carries into the next second
    ],
)
def test_iso_time_from_exact_nanoseconds(ns: int | None, text: str) -> None:
    assert iso_time(ns) == text
