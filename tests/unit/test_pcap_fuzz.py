"""Fuzz the reader and the DNS parser: hostile bytes give figures or a CaptureFileError,
never a crash, a hang or unbounded memory.  Bounded in examples and time."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aksdns.errors import CaptureFileError
from workers.analysis.traffic.analysis import analyze_files
from workers.pcap import synth as S

T0 = 1_711_990_000_000_000_000
C = S.Endpoint("10.0.0.5", 40000)
D = S.Endpoint("10.0.0.10", 53)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _analyze_bytes(content: bytes) -> None:
    fd, name = tempfile.mkstemp(suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        try:
            result = analyze_files([name])
        except CaptureFileError as err:
            assert err.path == name
            assert "\n" not in str(err)
            return
        assert result.dns_messages + result.malformed <= max(result.frames, 1) * 64
        assert result.unanswered_transactions <= result.transactions
    finally:
        Path(name).unlink()


def _valid_capture(ng: bool) -> bytes:
    import io

    buf = io.BytesIO()
    packets = S.mixed_lookups(3, lookups=6)
    if ng:
        S.write_pcapng(buf, packets)
    else:
        S.write_pcap(buf, packets)
    return buf.getvalue()


PCAP = _valid_capture(False)
PCAPNG = _valid_capture(True)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(content: bytes) -> None:
    _analyze_bytes(content)


@FUZZ
@given(st.sampled_from([PCAP, PCAPNG]), st.binary(max_size=2048))
def test_random_records_after_a_valid_header(capture: bytes, tail: bytes) -> None:
    header = capture[:24] if capture is PCAP else capture[:28 + 20]
    _analyze_bytes(header + tail)


@FUZZ
@given(st.sampled_from([PCAP, PCAPNG]),
       st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=24))
def test_mutated_captures(capture: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(capture)
    for pos, value in flips:
        data[pos % len(data)] = value
    _analyze_bytes(bytes(data))


@FUZZ
@given(st.sampled_from([PCAP, PCAPNG]), st.integers(min_value=1, max_value=4000))
def test_truncated_captures(capture: bytes, cut: int) -> None:
    _analyze_bytes(capture[: max(0, len(capture) - cut)])


dns_header = st.builds(
    lambda ident, flags, counts: struct.pack("!HH", ident, flags) + struct.pack("!HHHH", *counts),
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.tuples(*[st.integers(0, 0xFFFF)] * 4),
)
label_soup = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=3),
        st.builds(lambda n: bytes([0xC0 | (n >> 8), n & 0xFF]), st.integers(0, 0x3FFF)),  # pointers
        st.builds(lambda s: bytes([len(s)]) + s, st.binary(max_size=63)),
    ),
    max_size=40,
).map(b"".join)


@FUZZ
@given(st.lists(st.tuples(st.booleans(), dns_header, label_soup), min_size=1, max_size=20))
def test_hostile_dns_messages_in_valid_frames(messages: list[tuple[bool, bytes, bytes]]) -> None:
    import io

    packets = []
    for i, (to_server, header, body) in enumerate(messages):
        src, dst = (C, D) if to_server else (D, C)
        packets.append(S.udp_packet(T0 + i * 1000, src, dst, header + body))
    buf = io.BytesIO()
    S.write_pcap(buf, packets)
    _analyze_bytes(buf.getvalue())


@FUZZ
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=10), st.booleans())
def test_hostile_tcp_streams(segments: list[bytes], syn: bool) -> None:
    import io

    packets = S.TcpFlow(C, D).handshake(T0) if syn else []
    seq = {True: 1001, False: 5001}
    for i, payload in enumerate(segments):
        from_client = i % 2 == 0
        src, dst = (C, D) if from_client else (D, C)
        seg = S.tcp_segment(src, dst, payload, seq=seq[from_client], ack=seq[not from_client])
        seq[from_client] += len(payload)
        frame = S.link_frame(S.LINKTYPE_ETHERNET, S.ip_packet(src.ip, dst.ip, 6, seg))
        packets.append(S.Packet(T0 + (i + 1) * 10_000, frame))
    buf = io.BytesIO()
    S.write_pcap(buf, packets)
    _analyze_bytes(buf.getvalue())
