"""Build DNS captures byte by byte: the test oracle's input and the benchmark's workload.

Tests feed these files to tshark and to the analyzer and compare.  Everything is written
with :mod:`struct` so every link type, byte order and time resolution the reader supports
can be produced without tcpdump or mergecap.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

# Link types (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_OPT = 41

RCODE_NOERROR = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5


@dataclass(frozen=True)
class Record:
    """A resource record in the answer, authority or additional section."""

    name: str
    rtype: int
    ttl: int
    rdata: bytes
    rclass: int = 1


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted name ("" or "." is the root)."""
    out = bytearray()
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out.append(len(raw))
            out += raw
    out.append(0)
    return bytes(out)


def dns_message(
    ident: int,
    qname: str,
    qtype: int = TYPE_A,
    *,
    response: bool = False,
    rcode: int = 0,
    opcode: int = 0,
    qclass: int = 1,
    answers: Sequence[Record] = (),
    authorities: Sequence[Record] = (),
    additionals: Sequence[Record] = (),
    compress: bool = True,
) -> bytes:
    """One DNS message with a single question; answers named like the question are compressed."""
    flags = (0x8000 if response else 0) | ((opcode & 0xF) << 11) | 0x0100 | (0x0080 if response else 0)
    flags |= rcode & 0xF
    head = struct.pack(
        "!HHHHHH", ident, flags, 1, len(answers), len(authorities), len(additionals)
    )
    body = bytearray(encode_name(qname) + struct.pack("!HH", qtype, qclass))
    for rec in (*answers, *authorities, *additionals):
        if compress and rec.name.strip(".") == qname.strip(".") and qname.strip("."):
            body += b"\xc0\x0c"
        else:
            body += encode_name(rec.name)
        body += struct.pack("!HHIH", rec.rtype, rec.rclass, rec.ttl & 0xFFFFFFFF, len(rec.rdata))
        body += rec.rdata
    return head + bytes(body)


def a_record(name: str, addr: str, ttl: int = 30) -> Record:
    return Record(name, TYPE_A, ttl, ipaddress.IPv4Address(addr).packed)


def aaaa_record(name: str, addr: str, ttl: int = 30) -> Record:
    return Record(name, TYPE_AAAA, ttl, ipaddress.IPv6Address(addr).packed)


def cname_record(name: str, target: str, ttl: int = 30) -> Record:
    return Record(name, TYPE_CNAME, ttl, encode_name(target))


def soa_record(zone: str, ttl: int = 30) -> Record:
    rdata = encode_name("ns." + zone) + encode_name("hostmaster." + zone)
    rdata += struct.pack("!IIIII", 1, 7200, 1800, 86400, ttl)
    return Record(zone, TYPE_SOA, ttl, rdata)


def opt_record(udp_size: int = 1232) -> Record:
    # OPT: root name, class = UDP payload size, TTL = extended rcode/flags.
    return Record("", TYPE_OPT, 0, b"", rclass=udp_size)


# ---------------------------------------------------------------------------------------
# Network and transport layers


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int


def udp_segment(src: Endpoint, dst: Endpoint, payload: bytes) -> bytes:
    # Checksum 0 is "not computed" (IPv4); tshark does not validate UDP checksums by default.
    return struct.pack("!HHHH", src.port, dst.port, 8 + len(payload), 0) + payload


def tcp_segment(src: Endpoint, dst: Endpoint, payload: bytes, *, seq: int, ack: int, flags: int = 0x18) -> bytes:
    head = struct.pack("!HHIIBBHHH", src.port, dst.port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                       65535, 0, 0)
    return head + payload


def ip_packet(src: str, dst: str, proto: int, l4: bytes, *, ident: int = 0) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident & 0xFFFF, 0x4000, 64, proto, 0,
                           s.packed, d.packed)
        head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
        return head + l4
    if proto == 17:
        # IPv6 forbids a zero UDP checksum; compute it over the pseudo-header.
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", len(l4), 17)
        csum = _checksum(pseudo + l4) or 0xFFFF
        l4 = l4[:6] + struct.pack("!H", csum) + l4[8:]
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, s.packed, d.packed) + l4


def link_frame(linktype: int, ip: bytes, *, vlan: int | None = None, outgoing: bool = False) -> bytes:
    """Wrap an IP packet for ``linktype``."""
    version = ip[0] >> 4
    ethertype = 0x0800 if version == 4 else 0x86DD
    if linktype == LINKTYPE_ETHERNET:
        macs = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
        tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
        return macs + tag + struct.pack("!H", ethertype) + ip
    if linktype == LINKTYPE_RAW:
        return ip
    if linktype == LINKTYPE_NULL:
        family = 2 if version == 4 else 24  # BSD AF_INET6: the value Wireshark accepts
        return struct.pack("<I", family) + ip  # host byte order; we write little-endian files
    if linktype == LINKTYPE_LOOP:
        family = 2 if version == 4 else 24  # BSD AF_INET6: the value Wireshark accepts
        return struct.pack("!I", family) + ip
    if linktype == LINKTYPE_LINUX_SLL:
        return struct.pack("!HHH8sH", 4 if outgoing else 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", ethertype) + ip
    if linktype == LINKTYPE_LINUX_SLL2:
        return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 4 if outgoing else 0, 6, b"\x02\0\0\0\0\x01\0\0") + ip
    raise ValueError(f"unsupported link type {linktype}")


# ---------------------------------------------------------------------------------------
# Conversations


@dataclass(frozen=True)
class Packet:
    """One captured frame: time in nanoseconds since the epoch and the link-layer bytes."""

    ts_ns: int
    data: bytes
    interface: int = 0
    orig_len: int | None = None


@dataclass
class TcpFlow:
    """A DNS-over-TCP connection: handshake, then length-prefixed messages in segments."""

    client: Endpoint
    server: Endpoint
    linktype: int = LINKTYPE_ETHERNET
    _seq: dict[bool, int] = field(default_factory=lambda: {True: 1000, False: 5000})

    def _segment(self, ts_ns: int, from_client: bool, payload: bytes, flags: int) -> Packet:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        seg = tcp_segment(src, dst, payload, seq=self._seq[from_client], ack=self._seq[not from_client],
                          flags=flags)
        self._seq[from_client] += len(payload) + (1 if flags & 0x03 else 0)
        return Packet(ts_ns, link_frame(self.linktype, ip_packet(src.ip, dst.ip, 6, seg)))

    def handshake(self, ts_ns: int) -> list[Packet]:
        return [
            self._segment(ts_ns, True, b"", 0x02),
            self._segment(ts_ns + 1000, False, b"", 0x12),
            self._segment(ts_ns + 2000, True, b"", 0x10),
        ]

    def send(self, ts_ns: int, from_client: bool, messages: Sequence[bytes]) -> Packet:
        """Several DNS messages, each with its 2-byte length, in one segment."""
        payload = b"".join(struct.pack("!H", len(m)) + m for m in messages)
        return self._segment(ts_ns, from_client, payload, 0x18)


def udp_packet(
    ts_ns: int, src: Endpoint, dst: Endpoint, message: bytes, *, linktype: int = LINKTYPE_ETHERNET,
    vlan: int | None = None, interface: int = 0,
) -> Packet:
    ip = ip_packet(src.ip, dst.ip, 17, udp_segment(src, dst, message))
    return Packet(ts_ns, link_frame(linktype, ip, vlan=vlan), interface)


# ---------------------------------------------------------------------------------------
# File writers


def write_pcap(
    out: BinaryIO, packets: Iterable[Packet], *, linktype: int = LINKTYPE_ETHERNET,
    nanosecond: bool = False, big_endian: bool = False, snaplen: int = 262144,
) -> None:
    bo = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out.write(struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    div = 1 if nanosecond else 1000
    for p in packets:
        sec, frac = divmod(p.ts_ns, 1_000_000_000)
        data = p.data[:snaplen]
        out.write(struct.pack(bo + "IIII", sec, frac // div, len(data), p.orig_len or len(p.data)))
        out.write(data)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(bo: str, btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack(bo + "II", btype, total) + body + struct.pack(bo + "I", total)


def pcapng_section(bo: str = "<") -> bytes:
    return _block(bo, 0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def pcapng_interface(linktype: int, *, bo: str = "<", tsresol: int | None = None, snaplen: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts = struct.pack(bo + "HH", 9, 1) + _pad4(bytes([tsresol])) + struct.pack(bo + "HH", 0, 0)
    return _block(bo, 1, struct.pack(bo + "HHI", linktype, 0, snaplen) + opts)


def pcapng_epb(p: Packet, *, bo: str = "<", units_per_s: int = 1_000_000) -> bytes:
    ts = p.ts_ns * units_per_s // 1_000_000_000
    body = struct.pack(bo + "IIIII", p.interface, ts >> 32, ts & 0xFFFFFFFF, len(p.data), p.orig_len or len(p.data))
    return _block(bo, 6, body + _pad4(p.data))


def pcapng_spb(p: Packet, *, bo: str = "<") -> bytes:
    return _block(bo, 3, struct.pack(bo + "I", p.orig_len or len(p.data)) + _pad4(p.data))


def pcapng_custom_block(bo: str = "<") -> bytes:
    """A block type readers must skip (here: a made-up local type)."""
    return _block(bo, 0x80000001, b"skip me!")


def write_pcapng(
    out: BinaryIO, packets: Iterable[Packet], *, linktypes: Sequence[int] = (LINKTYPE_ETHERNET,),
    big_endian: bool = False, nanosecond: bool = False,
) -> None:
    """One section; packets pick their interface with ``Packet.interface``."""
    bo = ">" if big_endian else "<"
    out.write(pcapng_section(bo))
    for lt in linktypes:
        out.write(pcapng_interface(lt, bo=bo, tsresol=9 if nanosecond else None))
    out.write(pcapng_custom_block(bo))
    units = 1_000_000_000 if nanosecond else 1_000_000
    for p in packets:
        out.write(pcapng_epb(p, bo=bo, units_per_s=units))


# ---------------------------------------------------------------------------------------
# Scenarios: small captures with every behaviour the analyzer must match tshark on.

_NAMES = (
    "db.contoso.com",
    "db.contoso.com.default.svc.cluster.local",
    "db.contoso.com.svc.cluster.local",
    "db.contoso.com.cluster.local",
    "db.contoso.com.iosffyoulcwehgo1g3egb3m4oc.jx.internal.cloudapp.net",
    "kubernetes.default.svc.cluster.local",
    "redis.cache.svc.cluster.local",
    "x",
    "localhost",
    "a.b",
)


def _send_udp(
    out: list[Packet], client: Endpoint, srv: Endpoint, linktype: int, vlan: int | None,
    ts: int, msg: bytes, from_client: bool = True,
) -> None:
    src, dst = (client, srv) if from_client else (srv, client)
    out.append(udp_packet(ts, src, dst, msg, linktype=linktype, vlan=vlan))


def mixed_lookups(
    seed: int, *, lookups: int = 60, linktype: int = LINKTYPE_ETHERNET, ipv6_share: float = 0.2,
    tcp_share: float = 0.1, vlan: int | None = None, start_ns: int = 1_711_990_240_000_520_000,
    client_prefix: str = "10.0.0.", server: str = "172.16.0.10",
) -> list[Packet]:
    """Lookups with the guide's outcomes, sorted by time.

    Each lookup is one of: answered quickly, NXDOMAIN with SOA, SERVFAIL after ~6 s,
    lost (never answered), lost then re-sent within 5 s and answered, re-sent after 5 s,
    answered twice (duplicate response), an unsolicited response, and an A/AAAA pair
    from one socket.  A share of them runs over TCP (several messages per segment).
    """
    rnd = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    out: list[Packet] = []
    t = start_ns
    next_id = rnd.randrange(65536)
    for n in range(lookups):
        t += rnd.randrange(1_000_000, 400_000_000)
        six = rnd.random() < ipv6_share
        cip = f"fd00::{rnd.randrange(1, 40):x}" if six else client_prefix + str(rnd.randrange(2, 40))
        sip = "fd00::a" if six else server
        client = Endpoint(cip, rnd.randrange(1024, 65535))
        srv = Endpoint(sip, 53)
        name = rnd.choice(_NAMES)
        qtype = rnd.choice((TYPE_A, TYPE_A, TYPE_AAAA, TYPE_SRV, TYPE_PTR, TYPE_TXT))
        next_id = (next_id + rnd.randrange(1, 500)) % 65536
        ident = next_id
        outcome = rnd.choices(
            ["ok", "nx", "servfail", "lost", "resent", "late_resend", "dup", "unsolicited", "pair", "refused"],
            weights=[30, 12, 5, 4, 4, 3, 3, 2, 6, 2],
        )[0]
        if rnd.random() < tcp_share and outcome in ("ok", "nx", "pair", "servfail"):
            flow = TcpFlow(client, srv, linktype)
            out += flow.handshake(t)
            q1 = dns_message(ident, name, qtype)
            if outcome == "pair":
                q2 = dns_message((ident + 1) % 65536, name, TYPE_AAAA if qtype == TYPE_A else TYPE_A)
                out.append(flow.send(t + 3000, True, [q1, q2]))
                r1 = dns_message(ident, name, qtype, response=True, answers=[a_record(name, "10.1.2.3")])
                r2 = dns_message((ident + 1) % 65536, name, TYPE_AAAA, response=True, rcode=RCODE_NXDOMAIN)
                out.append(flow.send(t + 900_000, False, [r1, r2]))
            else:
                out.append(flow.send(t + 3000, True, [q1]))
                rc = {"ok": 0, "nx": RCODE_NXDOMAIN, "servfail": RCODE_SERVFAIL}[outcome]
                delay = 6_100_000_000 if outcome == "servfail" else 2_000_000
                out.append(flow.send(t + delay, False, [dns_message(ident, name, qtype, response=True, rcode=rc)]))
            continue

        send = functools.partial(_send_udp, out, client, srv, linktype, vlan)

        q = dns_message(ident, name, qtype, additionals=[opt_record()])
        ans = [a_record(name, f"10.0.{n % 250}.7", ttl=rnd.choice((5, 30, 300)))] if qtype == TYPE_A else []
        ok = dns_message(ident, name, qtype, response=True, answers=ans, additionals=[opt_record()])
        if outcome == "ok":
            send(t, q)
            send(t + rnd.randrange(50_000, 30_000_000), ok, False)
        elif outcome == "nx":
            send(t, q)
            nx = dns_message(ident, name, qtype, response=True, rcode=RCODE_NXDOMAIN,
                             authorities=[soa_record("cluster.local")])
            send(t + rnd.randrange(50_000, 3_000_000), nx, False)
        elif outcome == "refused":
            send(t, q)
            send(t + 400_000, dns_message(ident, name, qtype, response=True, rcode=RCODE_REFUSED), False)
        elif outcome == "servfail":
            send(t, q)
            send(t + rnd.randrange(6_000_000_000, 6_500_000_000), dns_message(
                ident, name, qtype, response=True, rcode=RCODE_SERVFAIL), False)
        elif outcome == "lost":
            send(t, q)
        elif outcome == "resent":
            send(t, q)
            send(t + 1_000_000_000, q)
            send(t + 1_002_000_000, ok, False)
        elif outcome == "late_resend":
            send(t, q)
            send(t + 5_000_000_000 + rnd.randrange(0, 9_000_000), q)
            if rnd.random() < 0.7:
                send(t + 5_010_000_000, ok, False)
        elif outcome == "dup":
            send(t, q)
            send(t + 800_000, ok, False)
            send(t + 900_000, ok, False)
        elif outcome == "unsolicited":
            send(t, dns_message((ident + 7) % 65536, name, qtype, response=True), False)
        elif outcome == "pair":
            other = TYPE_AAAA if qtype == TYPE_A else TYPE_A
            send(t, dns_message(ident, name, TYPE_A))
            send(t + 40_000, dns_message((ident + 1) % 65536, name, TYPE_AAAA))
            send(t + 700_000, dns_message(ident, name, TYPE_A, response=True, answers=ans), False)
            if rnd.random() < 0.5:
                send(t + 720_000, dns_message((ident + 1) % 65536, name, TYPE_AAAA, response=True), False)
            del other
    out.sort(key=lambda p: p.ts_ns)
    return out


def fragment_ip(ip: bytes, mtu: int = 576, *, ident: int = 0x1234) -> list[bytes]:
    """Split an IP packet into fragments no larger than ``mtu`` (IPv4 flags or IPv6 header 44)."""
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0F) * 4
        head, payload = bytearray(ip[:ihl]), ip[ihl:]
        step = (mtu - ihl) // 8 * 8
        out = []
        for off in range(0, len(payload), step):
            chunk = payload[off: off + step]
            more = off + step < len(payload)
            h = bytearray(head)
            struct.pack_into("!HHH", h, 2, ihl + len(chunk), ident, (0x2000 if more else 0) | (off // 8))
            struct.pack_into("!H", h, 10, 0)
            struct.pack_into("!H", h, 10, _checksum(bytes(h)))
            out.append(bytes(h) + chunk)
        return out
    # IPv6: the fragment header goes right after the fixed header (no extension headers here).
    next_header, payload = ip[6], ip[40:]
    step = (mtu - 48) // 8 * 8
    out = []
    for off in range(0, len(payload), step):
        chunk = payload[off: off + step]
        more = off + step < len(payload)
        h = bytearray(ip[:40])
        struct.pack_into("!H", h, 4, 8 + len(chunk))
        h[6] = 44
        frag = struct.pack("!BBHI", next_header, 0, off | (1 if more else 0), ident)
        out.append(bytes(h) + frag + chunk)
    return out
