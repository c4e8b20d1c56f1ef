"""The capture reader: formats, merging, and bad input (one line naming the file)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from aksdns.errors import AksDnsError, CaptureFileError
from workers.analysis.traffic.analysis import analyze_files
from workers.pcap import native
from workers.pcap import synth as S

T0 = 1_711_990_000_000_000_000
CLIENT = S.Endpoint("10.0.0.5", 40000)
SERVER = S.Endpoint("10.0.0.10", 53)


def lookup(ts: int, ident: int, delay_ns: int = 2_000_000) -> list[S.Packet]:
    return [
        S.udp_packet(ts, CLIENT, SERVER, S.dns_message(ident, "db.contoso.com")),
        S.udp_packet(ts + delay_ns, SERVER, CLIENT, S.dns_message(ident, "db.contoso.com", response=True)),
    ]


def write_pcap(path: Path, packets: list[S.Packet], **kw: object) -> Path:
    with path.open("wb") as f:
        S.write_pcap(f, packets, **kw)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"ab", "not a pcap or pcapng capture (too short)"),
        (b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", "not a pcap or pcapng capture"),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4), "pcap file header cut short"),
        (struct.pack("<II", 0x0A0D0D0A, 28), "pcapng section header cut short"),
        (struct.pack("<III", 0x0A0D0D0A, 28, 0x11223344) + b"\0" * 16,
         "pcapng section header has a bad byte-order magic"),
    ],
)
def test_unreadable_files_raise_one_line_naming_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "upload.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureFileError) as err:
        analyze_files([path])
    assert err.value.path == str(path)
    assert err.value.reason == reason
    assert str(err.value) == f"{path}: {reason}"
    assert "\n" not in err.value.user_message


def test_missing_file_and_directory_are_capture_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CaptureFileError, match="no such file"):
        analyze_files([tmp_path / "nope.pcap"])
    with pytest.raises(CaptureFileError, match="is a directory"):
        analyze_files([tmp_path])


def test_the_first_bad_file_of_several_is_named(tmp_path: Path) -> None:
    good = write_pcap(tmp_path / "good.pcap", lookup(T0, 1))
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with pytest.raises(CaptureFileError) as err:
        analyze_files([good, bad])
    assert err.value.path == str(bad)


def test_capture_cut_short_mid_packet_keeps_every_complete_packet(tmp_path: Path) -> None:
    full = write_pcap(tmp_path / "full.pcap", lookup(T0, 1) + lookup(T0 + 10**9, 2)).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(full[:-5])
    result = analyze_files([cut])
    assert result.frames == 3
    assert result.dns_messages == 3
    assert result.unanswered_transactions == 1
    assert result.warnings == (f"{cut}: capture cut short mid-packet after 3 complete packets; the rest was ignored",)


def test_capture_cut_inside_a_record_header_warns(tmp_path: Path) -> None:
    full = write_pcap(tmp_path / "full.pcap", lookup(T0, 1)).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(full + b"\x01\x02\x03")
    result = analyze_files([cut])
    assert result.frames == 2
    assert "inside a record header" in result.warnings[0]


def test_absurd_record_length_stops_reading_without_allocating_it(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "a.pcap", lookup(T0, 1))
    with path.open("ab") as f:
        f.write(struct.pack("<IIII", 1, 0, 0x7FFF_FFFF, 0x7FFF_FFFF) + b"junk")
    result = analyze_files([path])
    assert result.frames == 2
    assert "claims 2147483647 bytes" in result.warnings[0]


def test_pcapng_impossible_block_length_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    with path.open("wb") as f:
        S.write_pcapng(f, lookup(T0, 1))
        f.write(struct.pack("<II", 6, 0xFFFF_FFF0))
    result = analyze_files([path])
    assert result.frames == 2
    assert "impossible length" in result.warnings[0]


def test_pcap_variants_read_the_same(tmp_path: Path) -> None:
    packets = lookup(T0, 1, delay_ns=1_234_000) + lookup(T0 + 10**9, 2)  # whole µs: every variant holds it
    results = [
        analyze_files([write_pcap(tmp_path / f"{i}.pcap", packets, nanosecond=ns, big_endian=be)])
        for i, (ns, be) in enumerate([(False, False), (True, False), (False, True), (True, True)])
    ]
    ng = tmp_path / "a.pcapng"
    with ng.open("wb") as f:
        S.write_pcapng(f, packets, big_endian=True, nanosecond=True)
    results.append(analyze_files([ng]))
    trees = {r.tshark_tree for r in results}
    assert len(trees) == 1
    assert all(r.latency.min_ms == pytest.approx(1.234, abs=1e-4) for r in results)


def test_pcapng_unknown_blocks_are_skipped_and_interfaces_honoured(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    raw = [S.Packet(p.ts_ns, p.data, 1) for p in (
        S.udp_packet(T0, CLIENT, SERVER, S.dns_message(7, "a.b"), linktype=S.LINKTYPE_RAW),
        S.udp_packet(T0 + 1000, SERVER, CLIENT, S.dns_message(7, "a.b", response=True), linktype=S.LINKTYPE_RAW),
    )]
    with path.open("wb") as f:
        S.write_pcapng(f, lookup(T0 - 10**9, 1) + raw, linktypes=(S.LINKTYPE_ETHERNET, S.LINKTYPE_RAW))
    result = analyze_files([path])
    assert result.frames == 4
    assert result.answered_transactions == 2


def test_files_merge_by_time_stamp_like_mergecap(tmp_path: Path) -> None:
    query, response = lookup(T0, 9, delay_ns=3_000_000)
    # The query is in one file, its response in another: merged, they make one transaction.
    a = write_pcap(tmp_path / "client.pcap", [query, *lookup(T0 + 5_000_000, 10)])
    b = write_pcap(tmp_path / "coredns.pcap", [response], nanosecond=True)
    result = analyze_files([b, a])
    assert result.answered_transactions == 2
    assert result.unsolicited_responses == 0
    assert result.files == ((str(b), 1), (str(a), 3))
    assert result.first_time_ns == T0


def test_non_ip_and_other_ports_are_ignored(tmp_path: Path) -> None:
    arp = S.Packet(T0, b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\0" * 28)
    ntp = S.udp_packet(T0 + 1, CLIENT, S.Endpoint("10.0.0.10", 123), b"\x1b" + b"\0" * 47)
    first_fragment = bytes.fromhex("4500001c00012000401100000a0000050a00000a") + b"\0" * 8  # MF set
    frag = S.Packet(T0 + 2, S.link_frame(S.LINKTYPE_ETHERNET, first_fragment))
    result = analyze_files([write_pcap(tmp_path / "a.pcap", [arp, ntp, frag, *lookup(T0 + 10, 3)])])
    assert result.frames == 5
    assert result.dns_messages == 2
    assert result.ignored["not_ip"] == 1
    assert result.ignored["other_ports"] == 1
    assert result.ignored["ip_fragments"] == 1


def test_missing_native_core_is_a_clear_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fail(name: str) -> None:
        raise ImportError(name)

    monkeypatch.setattr(native.importlib, "import_module", fail)
    with pytest.raises(AksDnsError) as err:
        analyze_files([tmp_path / "x.pcap"])
    assert err.value.user_message == native.INSTALL_HINT


def test_gzip_captures_are_read_and_damaged_ones_warn(tmp_path: Path) -> None:
    import gzip

    raw = write_pcap(tmp_path / "a.pcap", lookup(T0, 1) + lookup(T0 + 10**9, 2)).read_bytes()
    gz = tmp_path / "a.pcap.gz"
    gz.write_bytes(gzip.compress(raw))
    assert analyze_files([gz]).answered_transactions == 2
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(gzip.compress(raw)[:-20])
    result = analyze_files([cut])
    assert result.warnings
    empty = tmp_path / "empty.pcap.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(CaptureFileError, match="empty file"):
        analyze_files([empty])
