"""Capture files: reading tcpdump's pcap stream as it arrives, writing pcap segments, writing pcapng.

Hand-written rather than a library: the capture path needs exactly three small things with bounded
memory and no copies beyond one record (scapy and dpkt parse every packet into objects, pyshark needs
tshark at run time), and the formats are fixed (https://www.tcpdump.org/manpages/pcap-savefile.5.html,
https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aksdns.errors import AksDnsError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
MAX_RECORD_BYTES = 262144 + 64  # tcpdump's largest snap length, plus slack
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")


class StreamError(AksDnsError):
    """The bytes a capture agent sent are not a pcap stream."""


@dataclass(frozen=True)
class StreamInfo:
    """What a pcap stream's global header says."""

    linktype: int
    snaplen: int
    nanos: bool
    big_endian: bool


@dataclass(frozen=True)
class Record:
    """One captured packet."""

    ts_ns: int  # epoch nanoseconds
    orig_len: int
    data: bytes


class PcapStream:
    """Incremental reader of a classic pcap byte stream (``tcpdump -w -``), fed in arbitrary chunks.

    ``feed`` returns the complete records so far; memory holds at most one partial record.
    """

    def __init__(self) -> None:
        self.info: StreamInfo | None = None
        self._buf = bytearray()
        self._record = RECORD_HEADER

    def feed(self, chunk: bytes) -> list[Record]:
        self._buf += chunk
        out: list[Record] = []
        pos = 0
        buf = self._buf
        if self.info is None:
            if len(buf) < 24:
                return out
            self.info = self._header(bytes(buf[:24]))
            self._record = struct.Struct(">IIII" if self.info.big_endian else "<IIII")
            pos = 24
        unpack = self._record.unpack_from
        scale = 1 if self.info.nanos else 1000
        n = len(buf)
        while n - pos >= 16:
            sec, frac, incl, orig = unpack(buf, pos)
            if incl > MAX_RECORD_BYTES:
                raise StreamError(f"capture stream damaged: a record claims {incl} bytes")
            end = pos + 16 + incl
            if end > n:
                break
            out.append(Record(sec * 1_000_000_000 + frac * scale, orig, bytes(buf[pos + 16:end])))
            pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of a record not complete yet (a stream that ends here was cut short)."""
        return len(self._buf)

    @staticmethod
    def _header(head: bytes) -> StreamInfo:
        magic_le = struct.unpack("<I", head[:4])[0]
        magic_be = struct.unpack(">I", head[:4])[0]
        for magic, big in ((magic_le, False), (magic_be, True)):
            if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                fmt = ">IHHiIII" if big else "<IHHiIII"
                _m, _maj, _min, _tz, _sig, snaplen, linktype = struct.unpack(fmt, head)
                return StreamInfo(linktype & 0x0FFFFFFF, snaplen, magic == PCAP_MAGIC_NS, big)
        raise StreamError("capture stream is not pcap (tcpdump did not start?)")


def pcap_header(info: StreamInfo) -> bytes:
    """A little-endian global header for segments written from a stream."""
    magic = PCAP_MAGIC_NS if info.nanos else PCAP_MAGIC_US
    return PCAP_HEADER.pack(magic, 2, 4, 0, 0, info.snaplen, info.linktype)


def pcap_record(info: StreamInfo, rec: Record) -> bytes:
    div = 1 if info.nanos else 1000
    sec, frac = divmod(rec.ts_ns // div, 1_000_000_000 // div)
    return RECORD_HEADER.pack(sec, frac, len(rec.data), rec.orig_len) + rec.data


def read_pcap(path: Path, chunk: int = 1 << 20) -> Iterator[tuple[StreamInfo, Record]]:
    """Records of a pcap file, streamed (one chunk and one record in memory)."""
    stream = PcapStream()
    with path.open("rb") as fh:
        while data := fh.read(chunk):
            for rec in stream.feed(data):
                assert stream.info is not None
                yield stream.info, rec


# ---- pcapng -------------------------------------------------------------------------------------------

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
EPB_FIXED = struct.Struct("<IIIIIII")  # type, total length, interface, ts high, ts low, caplen, origlen


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * _pad4(len(value))


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header(application: str) -> bytes:
    options = _option(SHB_USERAPPL, application.encode()) + _option(OPT_ENDOFOPT, b"")
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options
    return _block(SHB_TYPE, body)


def interface_block(linktype: int, snaplen: int, name: str, description: str, nanos: bool) -> bytes:
    options = _option(IF_NAME, name.encode()[:255]) + _option(IF_DESCRIPTION, description.encode()[:1000])
    if nanos:
        options += _option(IF_TSRESOL, bytes([9]))  # default is microseconds (6)
    options += _option(OPT_ENDOFOPT, b"")
    return _block(IDB_TYPE, struct.pack("<HHI", linktype, 0, snaplen) + options)


def packet_block(interface: int, ts_units: int, orig_len: int, data: bytes) -> bytes:
    pad = _pad4(len(data))
    total = 32 + len(data) + pad
    head = EPB_FIXED.pack(EPB_TYPE, total, interface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), orig_len)
    return head + data + b"\0" * pad + struct.pack("<I", total)


class PcapngWriter:
    """Writes one section with the given interfaces, then packets, to a binary file."""

    def __init__(self, out: BinaryIO, application: str) -> None:
        self.out = out
        self.nanos: list[bool] = []
        out.write(section_header(application))

    def add_interface(self, linktype: int, snaplen: int, name: str, description: str, nanos: bool) -> int:
        self.out.write(interface_block(linktype, snaplen, name, description, nanos))
        self.nanos.append(nanos)
        return len(self.nanos) - 1

    def packet(self, interface: int, rec: Record) -> None:
        units = rec.ts_ns if self.nanos[interface] else rec.ts_ns // 1000
        self.out.write(packet_block(interface, units, rec.orig_len, rec.data))
