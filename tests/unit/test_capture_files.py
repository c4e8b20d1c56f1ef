"""Capture files on the worker: the pcap stream read in any chunking, the ring's cap, the pcapng merge."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from aksdns.errors import AksDnsError
from workers.capture.merge import Source, merge
from workers.capture.pcapio import PcapStream, Record, StreamInfo, pcap_header, pcap_record
from workers.capture.ring import Ring

INFO = StreamInfo(linktype=1, snaplen=8192, nanos=False, big_endian=False)


def stream_bytes(records: list[Record], info: StreamInfo = INFO) -> bytes:
    return pcap_header(info) + b"".join(pcap_record(info, r) for r in records)


def records(n: int, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000_000,
            size: int = 90) -> list[Record]:
    return [Record(start_ns + i * step_ns, size + 4, bytes([i % 251]) * size) for i in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_the_stream_reader_gives_the_same_records_however_the_bytes_are_cut(seed: int) -> None:
    want = records(200)
    data = stream_bytes(want)
    rng = random.Random(seed)
    stream, got, pos = PcapStream(), [], 0
    while pos < len(data):
        step = rng.choice([1, 3, 16, 17, 100, 4096])
        got += stream.feed(data[pos:pos + step])
        pos += step
    assert got == want and stream.pending == 0 and stream.info == INFO


def test_big_endian_and_nanosecond_streams_are_read() -> None:
    head = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 113)
    rec = struct.pack(">IIII", 1700000000, 123456789, 4, 4) + b"abcd"
    out = PcapStream().feed(head + rec)
    assert out == [Record(1700000000_123456789, 4, b"abcd")]


def test_a_stream_that_is_not_pcap_or_is_damaged_is_refused() -> None:
    with pytest.raises(AksDnsError, match="not pcap"):
        PcapStream().feed(b"tcpdump: eth0: No such device exists\n" * 2)
    damaged = pcap_header(INFO) + struct.pack("<IIII", 1, 0, 10_000_000, 10)
    with pytest.raises(AksDnsError, match="damaged"):
        PcapStream().feed(damaged)


def test_the_ring_keeps_at_most_its_cap_and_lets_the_oldest_go(tmp_path: Path) -> None:
    cap = 64 * 1024
    ring = Ring(tmp_path / "t", cap, segments=8)
    want = records(3000, size=200)
    data = stream_bytes(want)
    for i in range(0, len(data), 5000):
        ring.feed(data[i:i + 5000])
        assert ring.kept_bytes <= cap
    ring.close()
    kept = list(ring.records())
    assert sum(p.stat().st_size for p in ring.paths()) <= cap
    assert ring.counts.packets == 3000 and ring.counts.dropped_packets == 3000 - len(kept) > 0
    assert kept == want[-len(kept):]  # the newest, in order


def test_merge_orders_by_time_stamp_with_one_named_interface_per_target(tmp_path: Path) -> None:
    a, b = Ring(tmp_path / "a", 1 << 20), Ring(tmp_path / "b", 1 << 20)
    ra = records(50, step_ns=2_000_000)
    rb = records(50, start_ns=1_700_000_000_000_500_000, step_ns=2_000_000)
    a.feed(stream_bytes(ra))
    b.feed(stream_bytes(rb))
    a.close()
    b.close()
    out = tmp_path / "m.pcapng"
    assert merge([Source("default/client", "client", a), Source("kube-system/coredns-x", "coredns", b)], out) == 100
    blocks = _blocks(out.read_bytes())
    idbs = [body for kind, body in blocks if kind == 1]
    assert len(idbs) == 2 and b"default/client" in idbs[0] and b"kube-system/coredns-x" in idbs[1]
    epbs = [struct.unpack_from("<IIIII", body) for kind, body in blocks if kind == 6]
    stamps = [(hi << 32 | lo) for _if, hi, lo, _c, _o in epbs]
    assert stamps == sorted(stamps) and [e[0] for e in epbs][:4] == [0, 1, 0, 1]


def _blocks(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        out.append((kind, data[pos + 8:pos + length - 4]))
        pos += length
    return out
