"""The capture's merge against mergecap, and its DNS decoding against tshark, on generated captures.

Rings fed with pcap streams (as tcpdump sends them) and merged must hold the same packets in the same
order as ``mergecap -w`` gives for the same files, each interface named after its target; every DNS
message the per-hop view decodes must match tshark's fields for that frame.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from workers.analysis.capture_wire import decode
from workers.analysis.traffic.analysis import tshark_text
from workers.capture.merge import Source, merge
from workers.capture.pcapio import read_pcap
from workers.capture.ring import Ring
from workers.pcap import synth as S

TSHARK, MERGECAP = shutil.which("tshark"), shutil.which("mergecap")
pytestmark = pytest.mark.skipif(TSHARK is None or MERGECAP is None, reason="tshark and mergecap are the oracle")
FIELDS = ("frame.time_epoch", "ip.src", "ip.dst", "udp.srcport", "dns.id", "dns.qry.name", "frame.len")


def fields(path: Path, *names: str, display_filter: str = "") -> list[str]:
    args = [TSHARK or "tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    if display_filter:
        args += ["-Y", display_filter]
    for n in names:
        args += ["-e", n]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()


def pcap(path: Path, seed: int, prefix: str, linktype: int = S.LINKTYPE_ETHERNET) -> Path:
    with path.open("wb") as f:
        S.write_pcap(f, S.mixed_lookups(seed, client_prefix=prefix, linktype=linktype), linktype=linktype)
    return path


def ring_of(path: Path, directory: Path) -> Ring:
    ring = Ring(directory, 1 << 30)
    data = path.read_bytes()
    for i in range(0, len(data), 7777):  # as the exec stream hands it over, in pieces
        ring.feed(data[i:i + 7777])
    ring.close()
    return ring


def test_the_merge_holds_what_mergecap_gives_with_named_interfaces(tmp_path: Path) -> None:
    files = [pcap(tmp_path / "client.pcap", 40, "10.244.0."),
             pcap(tmp_path / "core-a.pcap", 41, "10.244.1.", S.LINKTYPE_LINUX_SLL2),
             pcap(tmp_path / "core-b.pcap", 42, "10.244.2.")]
    names = ["default/client", "kube-system/coredns-a", "kube-system/coredns-b"]
    sources = [Source(n, f"target {n}", ring_of(f, tmp_path / n.replace("/", "_")))
               for n, f in zip(names, files, strict=True)]
    ours = tmp_path / "ours.pcapng"
    written = merge(sources, ours)
    theirs = tmp_path / "mergecap.pcapng"
    subprocess.run([MERGECAP or "mergecap", "-w", str(theirs), *map(str, files)], check=True, timeout=60)
    assert fields(ours, *FIELDS) == fields(theirs, *FIELDS)
    assert written == len(fields(theirs, "frame.number"))
    per_interface = fields(ours, "frame.interface_name", "ip.src")
    for name, f in zip(names, files, strict=True):
        assert sum(line.startswith(name + "|") for line in per_interface) == len(fields(f, "frame.number"))
    # `analyze` on the merged file says what tshark's dns,tree says of it (and of mergecap's file).
    tree = subprocess.run([TSHARK or "tshark", "-q", "-n", "-r", str(ours), "-z", "dns,tree"],
                          capture_output=True, text=True, timeout=60).stdout
    assert tshark_text([ours]) == tree == tshark_text([theirs])


def test_decoding_matches_tshark_frame_by_frame(tmp_path: Path) -> None:
    path = pcap(tmp_path / "mixed.pcap", 43, "10.244.3.")
    ours = {}
    for number, (info, rec) in enumerate(read_pcap(path), 1):
        m = decode(rec.ts_ns, info.linktype, rec.data)
        if m is not None:
            ours[number] = (m.src, m.dst, m.id, m.qname.rstrip("."), m.response)
    theirs, udp = {}, set()
    for line in fields(path, "frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "dns.id", "dns.qry.name",
                       "dns.flags.response", "udp.srcport", display_filter="dns && !(ip.frag_offset > 0)"):
        n, s4, s6, d4, d6, ident, name, response, uport = line.split("|")
        if uport:
            udp.add(int(n))
        if int(n) in ours:  # over TCP tshark reassembles streams; we read the messages that start a segment
            theirs[int(n)] = (s4 or s6, d4 or d6, int(ident.split(",")[0], 16), name.split(",")[0],
                              response.split(",")[0] in ("True", "1"))
    assert len(ours) > 100 and ours == theirs
    assert udp <= set(ours)  # every DNS message over UDP tshark sees, we see
