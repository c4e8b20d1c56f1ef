"""The failure timeline: its named pattern, and the picture of it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from workers.analysis.traffic import charts, pattern
from workers.analysis.traffic.analysis import analyze_files
from workers.analysis.traffic.model import Second
from workers.pcap import synth as S

T0 = 1_711_990_000_000_000_000


def _seconds(n: int, bad: set[int]) -> list[Second]:
    return [Second(1000 + i, 10, 10, 0, 0, 0, servfail=1 if i in bad else 0) for i in range(n)]


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (set(), "none"),
        ({i for i in range(300) if i % 30 == 7}, "periodic"),
        ({i for i in range(300) if i % 30 in (7, 8)}, "periodic"),
        (set(range(100, 112)), "bursts"),
        (set(range(0, 300, 2)), "constant"),
        ({3, 50, 51, 200, 290}, "intermittent"),
    ],
)
def test_pattern_kinds(bad: set[int], kind: str) -> None:
    assert pattern.classify(_seconds(300, bad)).kind == kind


def test_periodic_pattern_names_its_period() -> None:
    p = pattern.classify(_seconds(300, {i for i in range(300) if i % 30 == 7}))
    assert p.period_s == pytest.approx(30)
    assert p.text == "periodic: failures every 30 s (10 bursts)"


def _capture(tmp_path: Path, servfail_every: int | None) -> Path:
    """200 s of lookups, one a second to each of two servers; SERVFAIL every N s from one."""
    c = S.Endpoint("10.0.0.5", 40000)
    servers = (S.Endpoint("10.0.0.10", 53), S.Endpoint("10.0.0.11", 53))
    packets = []
    for sec in range(200):
        for k, server in enumerate(servers):
            ident = sec * 2 + k
            t = T0 + sec * 1_000_000_000 + k * 1_000_000
            rcode = 2 if servfail_every and k == 1 and sec % servfail_every == 5 else 0
            packets.append(S.udp_packet(t, c, server, S.dns_message(ident, "db.contoso.com")))
            packets.append(S.udp_packet(t + 300_000, server, c,
                                        S.dns_message(ident, "db.contoso.com", response=True, rcode=rcode)))
    path = tmp_path / "t.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, packets)
    return path


def test_capture_with_servfail_every_30s_is_named_periodic_and_drawn_per_server(tmp_path: Path) -> None:
    result = analyze_files([_capture(tmp_path, 30)])
    assert [t.address for t in result.server_timelines] == ["10.0.0.10", "10.0.0.11"]
    assert sum(s.servfail for s in result.server_timelines[1].seconds) == 7
    assert sum(s.servfail for s in result.server_timelines[0].seconds) == 0
    p = pattern.classify(result.timeline)
    assert (p.kind, p.period_s) == ("periodic", 30)
    png = charts.timeline_png(result, p)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.height > 4 * 120  # queries, all failures, then one failure panel per server


def test_clean_capture_has_no_pattern(tmp_path: Path) -> None:
    result = analyze_files([_capture(tmp_path, None)])
    assert pattern.classify(result.timeline).kind == "none"
    assert Image.open(io.BytesIO(charts.histogram_png(result))).size == (charts.W, charts.H)
