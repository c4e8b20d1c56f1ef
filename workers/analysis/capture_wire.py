"""DNS messages out of captured frames: addresses, ports, id, flags and the question — nothing more.

A capture is decoded while it streams (``capture --live``) and again per hop after it, so this reads
only the link, IP and UDP/TCP headers and the DNS header and first question, with ``struct`` over the
frame's bytes. dnspython parses whole messages into objects (about ten times slower) and is not needed
for these fields; the full statistics come from the compiled core (``analyze``).
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

ETHERNET = 1
RAW = 101
LINUX_SLL = 113
LINUX_SLL2 = 276
IPV4_TYPES = frozenset({RAW, 228})
_H = struct.Struct("!H")
_DNS = struct.Struct("!HHHHHH")
_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          41: "OPT", 64: "SVCB", 65: "HTTPS", 255: "ANY", 257: "CAA"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def type_name(qtype: int) -> str:
    return _TYPES.get(qtype, f"TYPE{qtype}")


def rcode_name(rcode: int) -> str:
    return _RCODES.get(rcode, f"RCODE{rcode}")


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """One DNS message as a capture saw it."""

    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    tcp: bool
    id: int
    response: bool
    rcode: int
    qname: str  # lower case, with the final dot; "" when there is no question
    qtype: int
    truncated: bool

    @property
    def client(self) -> tuple[str, int]:
        """The asking side's address and port."""
        return (self.dst, self.dport) if self.response else (self.src, self.sport)

    @property
    def server(self) -> tuple[str, int]:
        return (self.src, self.sport) if self.response else (self.dst, self.dport)


def _ip_of_frame(linktype: int, frame: bytes) -> tuple[int, int] | None:
    """(ethertype, offset of the IP header) for the link types tcpdump gives on Linux."""
    if linktype == ETHERNET:
        if len(frame) < 14:
            return None
        ethertype, off = _H.unpack_from(frame, 12)[0], 14
        while ethertype in (0x8100, 0x88A8) and len(frame) >= off + 4:  # VLAN tags
            ethertype, off = _H.unpack_from(frame, off + 2)[0], off + 4
        return ethertype, off
    if linktype == LINUX_SLL:
        return (_H.unpack_from(frame, 14)[0], 16) if len(frame) >= 16 else None
    if linktype == LINUX_SLL2:
        return (_H.unpack_from(frame, 0)[0], 20) if len(frame) >= 20 else None
    if linktype in IPV4_TYPES or linktype == 229:
        if not frame:
            return None
        return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), 0
    return None


def _name(buf: bytes, off: int) -> tuple[str, int]:
    """The question name at ``off`` (compression pointers followed a bounded number of times)."""
    labels: list[str] = []
    end = -1
    jumps = 0
    n = len(buf)
    while off < n:
        length = buf[off]
        if length == 0:
            off += 1
            break
        if length & 0xC0 == 0xC0:
            if off + 1 >= n or jumps > 16:
                raise ValueError("bad pointer")
            if end < 0:
                end = off + 2
            off = ((length & 0x3F) << 8) | buf[off + 1]
            jumps += 1
            continue
        if length > 63 or off + 1 + length > n:
            raise ValueError("bad label")
        labels.append(buf[off + 1:off + 1 + length].decode("ascii", "backslashreplace"))
        off += 1 + length
    else:
        raise ValueError("name runs off the message")
    return (".".join(labels).lower() + "."), (end if end >= 0 else off)


def decode(ts_ns: int, linktype: int, frame: bytes) -> DnsMessage | None:
    """The DNS message in a frame on port 53 (UDP, or a TCP segment starting one), else None."""
    link = _ip_of_frame(linktype, frame)
    if link is None:
        return None
    ethertype, off = link
    if ethertype == 0x0800:
        if len(frame) < off + 20:
            return None
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        if _H.unpack_from(frame, off + 6)[0] & 0x1FFF:
            return None  # a later fragment: no transport header
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16:off + 20])
        off += ihl
    elif ethertype == 0x86DD:
        if len(frame) < off + 40:
            return None
        proto = frame[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24:off + 40])
        off += 40
    else:
        return None
    if proto == 17:
        if len(frame) < off + 8:
            return None
        sport, dport = struct.unpack_from("!HH", frame, off)
        off += 8
        tcp = False
    elif proto == 6:
        if len(frame) < off + 20:
            return None
        sport, dport = struct.unpack_from("!HH", frame, off)
        off += (frame[off + 12] >> 4) * 4
        if len(frame) < off + 2 + 12:
            return None  # no DNS message starts in this segment (a handshake, an ACK)
        off += 2  # the length prefix of DNS over TCP
        tcp = True
    else:
        return None
    if sport != 53 and dport != 53:
        return None
    if len(frame) < off + 12:
        return None
    dns = frame[off:]
    ident, flags, qdcount, _an, _ns, _ar = _DNS.unpack_from(dns, 0)
    qname, qtype = "", 0
    if qdcount:
        try:
            qname, pos = _name(dns, 12)
            if pos + 2 <= len(dns):
                qtype = _H.unpack_from(dns, pos)[0]
        except ValueError:
            qname = ""
    # Interned: a capture repeats a few addresses and names, and the per-hop pass holds many messages.
    return DnsMessage(ts_ns, sys.intern(src), sport, sys.intern(dst), dport, tcp, ident, bool(flags & 0x8000),
                      flags & 0x000F, sys.intern(qname), qtype, bool(flags & 0x0200))
