"""Several targets' captures → one pcapng, one interface per target, packets in time-stamp order.

What ``mergecap -w out.pcapng a.pcap b.pcap`` gives (the guide merges the per-pod files with mergecap),
without mergecap: a section header, one Interface Description Block per target named after it (so
Wireshark's ``frame.interface_name`` says which pod saw a packet), then every packet as an Enhanced
Packet Block, merged by time stamp with a heap over the targets' rings (one record per target in memory;
equal time stamps keep the targets' order, as mergecap keeps its files' order).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.capture.pcapio import PcapngWriter, Record
from workers.capture.ring import Ring

APPLICATION = "aksdns capture"


@dataclass(frozen=True)
class Source:
    """One interface of the merged file."""

    name: str  # e.g. "kube-system/coredns-5d9f-abcde"
    description: str  # how it was captured
    ring: Ring


def merge(sources: Sequence[Source], out: Path) -> int:
    """Write the merged pcapng; returns the number of packets written. Targets with no stream are left out."""
    live = [s for s in sources if s.ring.info is not None]
    written = 0
    with out.open("wb") as fh:
        writer = PcapngWriter(fh, APPLICATION)
        ids = []
        for s in live:
            info = s.ring.info
            assert info is not None
            ids.append(writer.add_interface(info.linktype, info.snaplen, s.name, s.description, info.nanos))

        def tagged(index: int, records: Iterator[Record]) -> Iterator[tuple[int, int, Record]]:
            for rec in records:
                yield rec.ts_ns, index, rec

        streams = [tagged(i, s.ring.records()) for i, s in enumerate(live)]
        for _ts, index, rec in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
            writer.packet(ids[index], rec)
            written += 1
    return written
