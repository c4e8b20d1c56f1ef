"""One target's bytes on the worker's disk: a ring of pcap segments with a cap on what it keeps.

The stream from a capture agent is cut into ``segments`` pcap files of ``cap / segments`` bytes each;
when one more would exceed the cap, the oldest is deleted (tcpdump's ``-C size -W count`` ring, kept on
the worker's side so the target's node stores nothing). Memory holds one record; the counts say how many
packets arrived and how many the ring let go.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from workers.capture.pcapio import PcapStream, Record, StreamInfo, pcap_header, pcap_record, read_pcap

DEFAULT_SEGMENTS = 10


@dataclass
class RingCounts:
    packets: int = 0  # arrived
    bytes: int = 0  # arrived, as captured (record data)
    dropped_packets: int = 0  # let go by the ring (the oldest segments)
    dropped_bytes: int = 0


@dataclass
class Ring:
    """A target's ring of segments under ``directory``."""

    directory: Path
    cap_bytes: int
    segments: int = DEFAULT_SEGMENTS
    counts: RingCounts = field(default_factory=RingCounts)
    default_info: StreamInfo | None = None  # the link type tcpdump announced, for a target with no packets
    first_ns: int | None = None
    last_ns: int | None = None
    _stream: PcapStream = field(default_factory=PcapStream)
    _files: list[tuple[Path, int, int]] = field(default_factory=list)  # path, bytes, packets (closed)
    _out: BinaryIO | None = None
    _out_path: Path | None = None
    _out_bytes: int = 0
    _out_packets: int = 0
    _index: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def info(self) -> StreamInfo | None:
        return self._stream.info or self.default_info

    @property
    def segment_bytes(self) -> int:
        return max(4096, self.cap_bytes // max(1, self.segments))

    def feed(self, chunk: bytes) -> int:
        """Add bytes of the stream; returns how many records they completed."""
        records = self._stream.feed(chunk)
        for rec in records:
            self._write(rec)
        return len(records)

    def _write(self, rec: Record) -> None:
        info = self._stream.info
        assert info is not None
        data = pcap_record(info, rec)
        if self._out is None or self._out_bytes + len(data) > self.segment_bytes:
            self._rotate(info)
        assert self._out is not None
        self._out.write(data)
        self._out_bytes += len(data)
        self._out_packets += 1
        self.counts.packets += 1
        self.counts.bytes += len(rec.data)
        if self.first_ns is None:
            self.first_ns = rec.ts_ns
        self.last_ns = rec.ts_ns

    def _rotate(self, info: StreamInfo) -> None:
        self._close_segment()
        kept = sum(b for _p, b, _n in self._files)
        while self._files and kept + self.segment_bytes > self.cap_bytes:
            path, size, packets = self._files.pop(0)
            path.unlink(missing_ok=True)
            kept -= size
            self.counts.dropped_bytes += size
            self.counts.dropped_packets += packets
        self._out_path = self.directory / f"segment-{self._index:06d}.pcap"
        self._index += 1
        self._out = self._out_path.open("wb")
        header = pcap_header(info)
        self._out.write(header)
        self._out_bytes = len(header)
        self._out_packets = 0

    def _close_segment(self) -> None:
        if self._out is not None and self._out_path is not None:
            self._out.close()
            self._files.append((self._out_path, self._out_bytes, self._out_packets))
        self._out = None
        self._out_path = None

    def close(self) -> None:
        self._close_segment()

    @property
    def kept_bytes(self) -> int:
        return sum(b for _p, b, _n in self._files) + self._out_bytes

    @property
    def truncated(self) -> int:
        """Bytes of a last record that never completed."""
        return self._stream.pending

    def paths(self) -> list[Path]:
        return [p for p, _b, _n in self._files]

    def records(self) -> Iterator[Record]:
        """Every kept record, oldest first (after :meth:`close`)."""
        for path in self.paths():
            for _info, rec in read_pcap(path):
                yield rec
