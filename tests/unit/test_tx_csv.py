"""The CSV of unanswered and slow records, written by the core (native/src/tx_csv.rs): the
same bytes Python's ``csv`` module writes from the same records, and the typed result holds
only the first ``analysis.SHOWN`` records while the CSV keeps all of them."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import aksdns_native
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.analysis.traffic import analysis, formats
from workers.analysis.traffic.timefmt import iso_time
from workers.pcap import synth as S

T0 = 1_711_990_000_000_000_000
C = S.Endpoint("10.0.0.5", 40000)
D = S.Endpoint("10.0.0.10", 53)


def python_csv(doc: dict[str, Any]) -> str:
    """The rows as the `csv` module writes them from the core's full record lists."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(formats.CSV_COLUMNS)
    for kind, records in (("unanswered", doc["unanswered"]), ("slow", doc["slow"])):
        for r in records:
            rt = "" if r["response_time_ms"] is None else f"{r['response_time_ms']:.3f}"
            w.writerow([kind, iso_time(r["time_ns"]), r["client"], r["server"], r["transport"], f"0x{r['id']:04x}",
                        r["qtype"], r["qname"], r["rcode"] or "", rt, str(r["retransmissions"])])
    return buf.getvalue()


def core_doc(path: Path, slow_s: float, shown: int | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(aksdns_native.analyze([str(path)], slow_s, 1000, False, False, shown))
    return doc


def write(path: Path, packets: list[S.Packet]) -> Path:
    with path.open("wb") as f:
        S.write_pcap(f, packets, nanosecond=True)
    return path


def lookups(names: list[str], gaps_ns: list[int], offsets_ns: list[int], rcodes: list[int]) -> list[S.Packet]:
    """One query per name; a response after its gap (None: never answered), over UDP."""
    packets = []
    for i, (name, gap, offset, rcode) in enumerate(zip(names, gaps_ns, offsets_ns, rcodes, strict=True)):
        t = T0 + i * 10_000_000 + offset
        packets.append(S.udp_packet(t, C, D, S.dns_message(i, name, S.TYPE_A)))
        if gap >= 0:
            packets.append(S.udp_packet(t + gap, D, C, S.dns_message(i, name, S.TYPE_A, response=True, rcode=rcode)))
    return sorted(packets, key=lambda p: p.ts_ns)


def test_header_is_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "q.pcap", lookups(["a.b"], [-1], [0], [0]))
    assert core_doc(path, 5.0)["tx_csv"].splitlines()[0] == ",".join(formats.CSV_COLUMNS)


def test_quotes_ties_and_rcodes_match_the_csv_module(tmp_path: Path) -> None:
    # Names with a comma and a quote; times on a half microsecond (rounded half to even);
    # response times of exactly 0.0625 ms and 1.0005 ms (ties in the third decimal).
    names = ['a,b.contoso.com', 'say"hi".contoso.com', "plain.contoso.com", "x.y", 'both,"q".z', "late.z"]
    gaps = [62_500, 1_000_500, -1, 2_500, 7_000_000_001, -1]
    offsets = [500, 1_500, 2_500, 0, 999, 499]
    rcodes = [0, 3, 0, 2, 5, 0]
    path = write(tmp_path / "q.pcap", lookups(names, gaps, offsets, rcodes))
    doc = core_doc(path, 0.0)
    assert doc["tx_csv"] == python_csv(doc)
    rows = list(csv.DictReader(io.StringIO(doc["tx_csv"])))
    assert [r["name"] for r in rows if r["kind"] == "unanswered"] == ["plain.contoso.com", "late.z"]
    assert {r["name"] for r in rows if r["kind"] == "slow"} == {n for n, g in zip(names, gaps, strict=True) if g >= 0}


def test_the_result_holds_the_first_records_and_the_csv_all(tmp_path: Path) -> None:
    n = analysis.SHOWN + 50
    path = write(tmp_path / "q.pcap", lookups([f"h{i}.contoso.com" for i in range(n)], [-1] * n, [0] * n, [0] * n))
    full = core_doc(path, 5.0)
    assert len(full["unanswered"]) == n
    result = analysis.analyze_files([path])
    assert [r.qname for r in result.unanswered] == [r["qname"] for r in full["unanswered"][:analysis.SHOWN]]
    assert analysis.render(result, "csv") == full["tx_csv"] == python_csv(full)
    assert analysis.render(result, "csv").count("\nunanswered,") == n


NAME = st.text(alphabet='abc,"-_ 0', min_size=1, max_size=12).map(lambda s: s + ".contoso.com")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(NAME, st.integers(-1, 8_000_000), st.integers(0, 999_999), st.sampled_from([0, 2, 3])),
                min_size=1, max_size=30),
       st.sampled_from([0.0, 0.001, 0.004]))
def test_fuzzed_records_match_the_csv_module(rows: list[tuple[str, int, int, int]], slow_s: float) -> None:
    names, gaps, offsets, rcodes = (list(c) for c in zip(*rows, strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        doc = core_doc(write(Path(tmp) / "q.pcap", lookups(names, gaps, offsets, rcodes)), slow_s)
    assert doc["tx_csv"] == python_csv(doc)
