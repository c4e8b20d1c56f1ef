"""`analyze` against the oracles: tshark 4.0 and tshark 4.4.19 on the same generated captures.

Each capture shape is written byte by byte (workers.pcap.synth); we compare
``--format tshark`` with ``tshark -q -z dns,tree`` (4.0, Debian 12's package), the
``--wireshark 4.4`` text with ``tshark -q -z dns,tree -z dns_qr,tree`` of 4.4.19 (Debian
13's package, unpacked into ~/.cache/aksdns by tests/wireshark44.py on first use), and
the two counts with tshark's two-pass display filters.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import wireshark44
from workers.analysis.traffic.analysis import analyze_files, render, tshark_text
from workers.pcap import synth as S

TSHARK = shutil.which("tshark")
MERGECAP = shutil.which("mergecap")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark (the oracle) is not installed")

UNANSWERED = "(dns.flags.response == 0) && ! dns.response_in"
SLOW = "dns.time >= 5"


def tshark_tree(path: Path) -> str:
    # tshark exits 2 on a capture cut short but still prints the statistics.
    out = subprocess.run([TSHARK or "tshark", "-q", "-n", "-r", str(path), "-z", "dns,tree"],
                         capture_output=True, text=True, timeout=120)
    return out.stdout


def tshark_count(path: Path, display_filter: str) -> int:
    out = subprocess.run([TSHARK or "tshark", "-n", "-2", "-r", str(path), "-Y", display_filter],
                         capture_output=True, text=True, timeout=120)
    return sum(1 for line in out.stdout.splitlines() if line.strip())


@pytest.fixture(scope="session")
def tshark44() -> list[str]:
    """tshark 4.4.19's command line, fetched and unpacked on first use (cached)."""
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is needed to fetch tshark 4.4 from Debian 13")
    try:
        return wireshark44.ensure()
    except wireshark44.OracleUnavailable as err:
        pytest.fail(f"tshark 4.4 (the second oracle) is unavailable: {err}")


def tshark44_trees(argv: list[str], path: Path) -> str:
    out = subprocess.run([*argv, "-q", "-n", "-r", str(path), "-z", "dns,tree", "-z", "dns_qr,tree"],
                         capture_output=True, text=True, timeout=120, env=wireshark44.tshark_env())
    assert "DNS/Query-Response" in out.stdout, out.stderr[-500:]
    return out.stdout


def dns_qr_unanswered(text: str) -> int:
    """The count of the Query side's Servicing/Unanswered row of dns_qr,tree."""
    query_side = text.split("\nResponse ", 1)[0]
    (line,) = [x for x in query_side.splitlines() if x.strip().startswith("Unanswered ")]
    return int(line.split()[1])


_ORACLE_44: list[list[str]] = []


@pytest.fixture(autouse=True)
def _oracle44(tshark44: list[str]) -> None:
    _ORACLE_44[:] = [tshark44]


def tshark_slow_count(path: Path) -> int:
    """Responses (not frames: one TCP segment can carry two) with dns.time >= 5."""
    argv = [TSHARK or "tshark", "-n", "-2", "-r", str(path), "-Y", SLOW, "-T", "fields", "-e", "dns.time"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return sum(1 for line in out.stdout.split() for v in line.split(",") if float(v) >= 5)


def assert_same_as_tshark(path: Path, oracle_path: Path | None = None, *paths: Path) -> None:
    result = analyze_files([path, *paths], wireshark="4.4")
    oracle = oracle_path or path
    assert render(result, "tshark") == tshark_tree(oracle)
    assert result.unanswered_queries == tshark_count(oracle, UNANSWERED)
    assert result.slow_responses == tshark_slow_count(oracle)
    # Wireshark 4.4: both trees byte for byte, and the report's dns_qr figure.
    expected_44 = tshark44_trees(_ORACLE_44[0], oracle)
    assert render(result, "tshark", wireshark="4.4") == expected_44
    assert result.qr_unanswered == dns_qr_unanswered(expected_44)
    # The 4.0 text does not depend on whether the 4.4 trees were computed too, nor on whether
    # the pass computed only tshark's text (what `--format tshark` runs).
    assert render(analyze_files([path, *paths]), "tshark") == result.tshark_tree
    assert tshark_text([path, *paths]) == result.tshark_tree
    assert tshark_text([path, *paths], wireshark="4.4") == expected_44


def write(path: Path, packets: list[S.Packet], **kw: object) -> Path:
    with path.open("wb") as f:
        S.write_pcap(f, packets, **kw)  # type: ignore[arg-type]
    return path


LINK_SHAPES: dict[str, Callable[[Path], Path]] = {
    "pcap-us-le-ethernet": lambda d: write(d / "a.pcap", S.mixed_lookups(1)),
    "pcap-ns-be-ethernet": lambda d: write(
        d / "a.pcap", S.mixed_lookups(2), nanosecond=True, big_endian=True),
    "linux-cooked-v1": lambda d: write(
        d / "a.pcap", S.mixed_lookups(3, linktype=S.LINKTYPE_LINUX_SLL), linktype=S.LINKTYPE_LINUX_SLL),
    "linux-cooked-v2": lambda d: write(
        d / "a.pcap", S.mixed_lookups(4, linktype=S.LINKTYPE_LINUX_SLL2), linktype=S.LINKTYPE_LINUX_SLL2),
    "raw-ip": lambda d: write(d / "a.pcap", S.mixed_lookups(5, linktype=S.LINKTYPE_RAW), linktype=S.LINKTYPE_RAW),
    "loopback-null": lambda d: write(
        d / "a.pcap", S.mixed_lookups(6, linktype=S.LINKTYPE_NULL, ipv6_share=0.0), linktype=S.LINKTYPE_NULL),
    "loopback-loop": lambda d: write(
        d / "a.pcap", S.mixed_lookups(7, linktype=S.LINKTYPE_LOOP), linktype=S.LINKTYPE_LOOP),
    "ethernet-vlan": lambda d: write(d / "a.pcap", S.mixed_lookups(8, vlan=42, tcp_share=0.0)),
    "tcp-heavy": lambda d: write(d / "a.pcap", S.mixed_lookups(9, tcp_share=1.0, lookups=40)),
    "ipv6-only": lambda d: write(d / "a.pcap", S.mixed_lookups(10, ipv6_share=1.0)),
}


@pytest.mark.parametrize("shape", sorted(LINK_SHAPES))
def test_link_layers_and_transports_match_tshark(tmp_path: Path, shape: str) -> None:
    assert_same_as_tshark(LINK_SHAPES[shape](tmp_path))


def test_pcapng_multi_interface_and_sections_match_tshark(tmp_path: Path) -> None:
    eth = S.mixed_lookups(20, lookups=30)
    sll2 = [S.Packet(p.ts_ns, p.data, 1) for p in S.mixed_lookups(21, lookups=30, linktype=S.LINKTYPE_LINUX_SLL2)]
    first = sorted(eth + sll2, key=lambda p: p.ts_ns)
    later = S.mixed_lookups(22, lookups=20, start_ns=first[-1].ts_ns + 1_000_000_000)
    path = tmp_path / "multi.pcapng"
    with path.open("wb") as f:
        S.write_pcapng(f, first, linktypes=(S.LINKTYPE_ETHERNET, S.LINKTYPE_LINUX_SLL2), nanosecond=True)
        # A second section in the other byte order, with its own interface list.
        S.write_pcapng(f, later, big_endian=True)
    assert_same_as_tshark(path)


@pytest.mark.parametrize("first_has_time", [False, True])
def test_simple_packet_blocks_match_tshark(tmp_path: Path, first_has_time: bool) -> None:
    """Blocks without a time stamp; 4.4 times every frame 0 when the first one has none."""
    path = tmp_path / "spb.pcapng"
    with path.open("wb") as f:
        f.write(S.pcapng_section())
        f.write(S.pcapng_interface(S.LINKTYPE_ETHERNET))
        for i, p in enumerate(S.mixed_lookups(23, lookups=30)):
            f.write(S.pcapng_spb(p) if i % 3 == (1 if first_has_time else 0) else S.pcapng_epb(p))
    assert_same_as_tshark(path)


@pytest.mark.skipif(MERGECAP is None, reason="mergecap is not installed")
def test_merged_files_match_tshark_on_mergecap_output(tmp_path: Path) -> None:
    client = write(tmp_path / "client.pcap", S.mixed_lookups(30, client_prefix="10.0.1."))
    core1 = write(tmp_path / "core1.pcap", S.mixed_lookups(31, client_prefix="10.0.2."), nanosecond=True)
    core2_path = tmp_path / "core2.pcapng"
    with core2_path.open("wb") as f:
        S.write_pcapng(f, S.mixed_lookups(32, client_prefix="10.0.3."))
    merged = tmp_path / "merged.pcapng"
    subprocess.run([MERGECAP or "mergecap", "-w", str(merged), str(client), str(core1), str(core2_path)],
                   check=True, timeout=60)
    assert_same_as_tshark(client, merged, core1, core2_path)


def test_capture_cut_short_mid_packet_matches_tshark_and_warns(tmp_path: Path) -> None:
    full = write(tmp_path / "full.pcap", S.mixed_lookups(40)).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(full[:-30])
    assert_same_as_tshark(cut)
    result = analyze_files([cut])
    assert len(result.warnings) == 1
    assert "cut short mid-packet" in result.warnings[0]


def _header(ident: int, flags: int = 0x0100, qd: int = 1) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, 0, 0, 0)


def test_malformed_messages_are_handled_as_tshark_does(tmp_path: Path) -> None:
    c, s = S.Endpoint("10.0.0.5", 4000), S.Endpoint("10.0.0.10", 53)
    long_name = ".".join(["abcdefghij" * 6] * 5)
    msgs = [
        S.dns_message(1, "a.example.com"),
        _header(2) + b"\xc0\x0c\x00\x01\x00\x01",  # pointer loop: counted, named specially
        S.dns_message(3, "b.example.com")[:-3],  # question cut short: not counted
        b"\x00\x04\x01",  # shorter than ID + flags
        _header(5),  # promises a question it does not have
        _header(6) + b"\x03abc\xc0\x0c\x00\x01\x00\x01",
        _header(7) + b"\x80abc\x00\x00\x01\x00\x01",  # reserved label type
        _header(8) + b"\x00\x00\x02\x00\x01",  # the root
        _header(9, qd=2) + b"\x00\x00\x02\x00\x01\xc0\x0c\x00\x01\x00\x01",
        S.dns_message(10, long_name),  # longer than 255: "<Name too long>"
    ]
    t0 = 1_711_990_000_000_000_000
    packets = [S.udp_packet(t0 + i * 1_000_000, c, s, m) for i, m in enumerate(msgs)]
    bad_answer = S.dns_message(3, "b.example.com", response=True, answers=[S.a_record("b.example.com", "1.1.1.1")])
    packets.append(S.udp_packet(t0 + 50_000_000, s, c, bad_answer[:-2]))
    packets.append(S.udp_packet(t0 + 60_000_000, s, c, S.dns_message(10, long_name, response=True)))
    assert_same_as_tshark(write(tmp_path / "malformed.pcap", packets))


def test_non_dns_traffic_and_mdns_are_ignored_like_tshark(tmp_path: Path) -> None:
    t0 = 1_711_990_000_000_000_000
    c = S.Endpoint("10.0.0.5", 5353)
    packets = S.mixed_lookups(50, lookups=20)
    packets.append(S.udp_packet(t0, c, S.Endpoint("224.0.0.251", 5353), S.dns_message(1, "printer.local")))
    packets.append(S.udp_packet(t0 + 1, S.Endpoint("10.0.0.5", 5355), S.Endpoint("10.0.0.6", 5355),
                                S.dns_message(2, "host")))
    ntp = b"\x1b" + b"\0" * 47
    packets.append(S.udp_packet(t0 + 2, S.Endpoint("10.0.0.5", 40000), S.Endpoint("10.0.0.6", 123), ntp))
    packets.sort(key=lambda p: p.ts_ns)
    assert_same_as_tshark(write(tmp_path / "noise.pcap", packets))


def test_retransmission_timer_boundary_matches_tshark(tmp_path: Path) -> None:
    """Re-sent at 4.999999 s: a retransmission; at 5.000000 s: a new transaction."""
    c, s = S.Endpoint("10.0.0.5", 4000), S.Endpoint("10.0.0.10", 53)
    t0 = 1_711_990_000_000_000_000
    packets = []
    for k, gap in enumerate((4_999_999_000, 5_000_000_000, 7_000_000_000)):
        base = t0 + k * 20_000_000_000
        q = S.dns_message(100 + k, "db.contoso.com")
        packets += [
            S.udp_packet(base, c, s, q),
            S.udp_packet(base + gap, c, s, q),
            S.udp_packet(base + gap + 1_000_000, s, c, S.dns_message(100 + k, "db.contoso.com", response=True)),
        ]
    path = write(tmp_path / "timer.pcap", packets)
    assert_same_as_tshark(path)
    result = analyze_files([path])
    assert result.retransmitted_queries == 1
    assert result.unanswered_transactions == 2


def test_time_going_backwards_matches_tshark(tmp_path: Path) -> None:
    """Out-of-order time stamps exercise every branch of stats_tree's burst buckets."""
    packets = S.mixed_lookups(60, lookups=60)
    shuffled = []
    for i, p in enumerate(packets):
        # Every fifth packet is stamped 3..150 ms earlier than its place in the file.
        shift = (3_000_000 + (i * 7_919_000) % 147_000_000) if i % 5 == 4 else 0
        shuffled.append(S.Packet(p.ts_ns - shift, p.data))
    assert_same_as_tshark(write(tmp_path / "backwards.pcap", shuffled))


def test_fragmented_responses_are_reassembled_like_tshark(tmp_path: Path) -> None:
    t0 = 1_711_990_000_000_000_000
    packets = []
    for k, (cip, sip) in enumerate((("10.0.0.5", "10.0.0.10"), ("fd00::5", "fd00::a"))):
        c, d = S.Endpoint(cip, 40000 + k), S.Endpoint(sip, 53)
        name = "big.contoso.com"
        answers = [S.Record(name, S.TYPE_TXT, 30, bytes([255]) + b"x" * 255) for _ in range(8)]
        query = S.dns_message(100 + k, name, S.TYPE_TXT, additionals=[S.opt_record(4096)])
        response = S.dns_message(100 + k, name, S.TYPE_TXT, response=True, answers=answers)
        base = t0 + k * 1_000_000_000
        packets.append(S.udp_packet(base, c, d, query))
        ip = S.ip_packet(d.ip, c.ip, 17, S.udp_segment(d, c, response))
        fragments = S.fragment_ip(ip, 1280, ident=0x4242 + k)
        assert len(fragments) > 1
        for i, frag in enumerate(reversed(fragments) if k else fragments):  # IPv6 ones out of order
            packets.append(S.Packet(base + 1_000_000 + i * 1000, S.link_frame(S.LINKTYPE_ETHERNET, frag)))
    path = write(tmp_path / "fragments.pcap", packets)
    assert_same_as_tshark(path)
    assert analyze_files([path]).answered_transactions == 2


def test_tcp_messages_split_and_resent_match_tshark(tmp_path: Path) -> None:
    """A message split over two segments, two messages plus a half in one, a re-sent segment."""
    t0 = 1_711_990_000_000_000_000
    c, d = S.Endpoint("10.0.0.5", 41000), S.Endpoint("10.0.0.10", 53)
    q = [S.dns_message(i, f"svc{i}.shop.svc.cluster.local") for i in range(1, 5)]
    r = [S.dns_message(i, f"svc{i}.shop.svc.cluster.local", response=True,
                       answers=[S.a_record(f"svc{i}.shop.svc.cluster.local", "10.0.0.7")]) for i in range(1, 5)]
    stream_c = b"".join(struct.pack("!H", len(m)) + m for m in q)
    stream_s = b"".join(struct.pack("!H", len(m)) + m for m in r)
    seq = {True: 1001, False: 5001}
    packets = S.TcpFlow(c, d).handshake(t0)

    def segment(ts: int, from_client: bool, data: bytes, at: int) -> None:
        src, dst = (c, d) if from_client else (d, c)
        tcp = S.tcp_segment(src, dst, data, seq=seq[from_client] + at, ack=seq[not from_client])
        packets.append(S.Packet(ts, S.link_frame(S.LINKTYPE_ETHERNET, S.ip_packet(src.ip, dst.ip, 6, tcp))))

    cut1, cut2 = 10, len(stream_c) - 7
    segment(t0 + 10_000, True, stream_c[:cut1], 0)  # a length and part of a message
    segment(t0 + 20_000, True, stream_c[cut1:cut2], cut1)  # the rest, two more, part of the last
    segment(t0 + 30_000, True, stream_c[cut1:cut2], cut1)  # re-sent (TCP retransmission)
    segment(t0 + 40_000, True, stream_c[cut2:], cut2)
    segment(t0 + 2_000_000, False, stream_s, 0)
    assert_same_as_tshark(write(tmp_path / "tcp.pcap", packets))


@pytest.mark.parametrize("tsresol", [6, 3, 0x80 | 20])
def test_pcapng_time_resolutions_match_tshark(tmp_path: Path, tsresol: int) -> None:
    units = 10 ** tsresol if tsresol < 0x80 else 2 ** (tsresol & 0x7F)
    path = tmp_path / "res.pcapng"
    with path.open("wb") as f:
        f.write(S.pcapng_section())
        f.write(S.pcapng_interface(S.LINKTYPE_ETHERNET, tsresol=tsresol))
        for p in S.mixed_lookups(70, lookups=30, tcp_share=0.0):
            f.write(S.pcapng_epb(p, units_per_s=units))
    assert_same_as_tshark(path)


def test_gzip_compressed_capture_matches_tshark(tmp_path: Path) -> None:
    import gzip

    plain = write(tmp_path / "a.pcap", S.mixed_lookups(80, lookups=30)).read_bytes()
    path = tmp_path / "a.pcap.gz"
    path.write_bytes(gzip.compress(plain))
    assert_same_as_tshark(path)


def test_wireshark44_records_ttls_and_buckets_match_tshark(tmp_path: Path) -> None:
    """What only the 4.4 trees read: every record's type, TTLs from the global arrays (OPT
    writes none, mDNS and failed messages write without rewinding), payload and count
    buckets, label levels past the 8th, the root, a question-less query."""
    t0 = 1_711_990_000_000_000_000
    c, d = S.Endpoint("10.0.0.5", 40000), S.Endpoint("10.0.0.10", 53)
    name = "many.labels.in.this.name.a.b.c.d.e.contoso.com"
    ttls = (0, 59, 3000, 90_000, 700_000, 3_000_000, 40_000_000)
    answers = [S.a_record(name, f"10.1.0.{i}", ttl) for i, ttl in enumerate(ttls)]
    big_txt = [S.Record(name, S.TYPE_TXT, 86_400, bytes([200]) + b"t" * 200) for _ in range(4)]
    mdns_c, mdns_d = S.Endpoint("10.0.0.5", 5353), S.Endpoint("224.0.0.251", 5353)
    msgs: list[tuple[S.Endpoint, S.Endpoint, bytes]] = [
        (c, d, S.dns_message(1, name, additionals=[S.opt_record()])),
        (d, c, S.dns_message(1, name, response=True, answers=answers, authorities=[S.soa_record("contoso.com", 900)],
                             additionals=[S.a_record("ns.contoso.com", "10.1.1.1", 120), S.opt_record()])),
        (c, d, S.dns_message(2, "x.contoso.com", additionals=[S.opt_record()])),
        # Only an OPT record: its TTL rows read what the previous response left in the arrays.
        (d, c, S.dns_message(2, "x.contoso.com", response=True, additionals=[S.opt_record(), S.opt_record()])),
        # mDNS stores TTLs but never rewinds the arrays.
        (mdns_c, mdns_d, S.dns_message(0, "printer.local", response=True,
                                       answers=[S.a_record("printer.local", "10.0.0.99", 4500)])),
        (c, d, S.dns_message(3, name, S.TYPE_TXT)),
        (d, c, S.dns_message(3, name, S.TYPE_TXT, response=True, answers=big_txt)),  # UDP >= 512 B, TC clear
        (c, d, S.dns_message(4, "")),  # the root
        (c, d, _header(5, qd=0)),  # no question at all
        (c, d, S.dns_message(6, "y.contoso.com")),
        # An A record cut short after its TTL: the message fails, its TTL stays stored.
        (d, c, S.dns_message(6, "y.contoso.com", response=True,
                             answers=[S.a_record("y.contoso.com", "10.2.0.1", 7)])[:-2]),
        (c, d, S.dns_message(7, "z.contoso.com")),
        (d, c, S.dns_message(7, "z.contoso.com", response=True, authorities=[S.soa_record("contoso.com", 5)])),
        (d, c, S.dns_message(7, "z.contoso.com", response=True, authorities=[S.soa_record("contoso.com", 5)])),
        (d, c, S.dns_message(99, "nobody.asked", response=True, rcode=3)),
        (c, d, S.dns_message(8, "w.contoso.com")),
        (c, d, S.dns_message(8, "w.contoso.com")),  # re-sent: a retransmission
    ]
    packets = [S.udp_packet(t0 + i * 3_000_000, a, b, m) for i, (a, b, m) in enumerate(msgs)]
    assert_same_as_tshark(write(tmp_path / "ws44.pcap", packets))


@pytest.mark.parametrize("version", ["4.0", "4.4"])
def test_cli_prints_what_tshark_prints(tmp_path: Path, version: str, tshark44: list[str]) -> None:
    """The command users run, as a process: `aksdns analyze FILE --format tshark --wireshark V`."""
    import sys

    path = write(tmp_path / "cli.pcap", S.mixed_lookups(90, lookups=40))
    aksdns = Path(sys.executable).parent / "aksdns"
    out = subprocess.run([str(aksdns), "analyze", str(path), "--format", "tshark", "--wireshark", version],
                         capture_output=True, text=True, timeout=120, check=True)
    expected = tshark44_trees(tshark44, path) if version == "4.4" else tshark_tree(path)
    assert out.stdout == expected
