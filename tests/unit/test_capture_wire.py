"""DNS messages out of frames: link types, IPv4/IPv6, UDP/TCP, fragments, hostile names."""

from __future__ import annotations

import struct

import dns.message
import pytest

from workers.analysis.capture_wire import ETHERNET, LINUX_SLL2, decode, rcode_name, type_name


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, frag: int = 0) -> bytes:
    import socket

    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, frag, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def eth(ip: bytes, ethertype: int = 0x0800) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", ethertype) + ip


def query(name: str = "www.example.com", ident: int = 4242, rdtype: str = "AAAA") -> bytes:
    m = dns.message.make_query(name, rdtype)
    m.id = ident
    return m.to_wire()


def test_a_query_over_udp_on_ethernet() -> None:
    m = decode(7, ETHERNET, eth(ipv4_udp("10.244.0.2", "10.0.0.10", 40000, 53, query())))
    assert m is not None and (m.src, m.sport, m.dst, m.dport) == ("10.244.0.2", 40000, "10.0.0.10", 53)
    assert (m.id, m.response, m.qname, type_name(m.qtype), m.tcp) == (4242, False, "www.example.com.", "AAAA", False)
    assert m.client == ("10.244.0.2", 40000) and m.server == ("10.0.0.10", 53)


def test_an_answer_on_linux_cooked_v2() -> None:
    answer = dns.message.make_response(dns.message.from_wire(query()))
    answer.set_rcode(3)
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02" * 8)
    m = decode(1, LINUX_SLL2, sll2 + ipv4_udp("10.0.0.10", "10.244.0.2", 53, 40000, answer.to_wire()))
    assert m is not None and m.response and rcode_name(m.rcode) == "NXDOMAIN" and m.client == ("10.244.0.2", 40000)


def test_tcp_ipv6_and_later_fragments() -> None:
    import socket

    msg = query("a.b", 9)
    tcp = struct.pack("!HHIIBBHHH", 50000, 53, 1, 0, 5 << 4, 0x18, 1000, 0, 0) + struct.pack("!H", len(msg)) + msg
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, socket.inet_pton(socket.AF_INET6, "fd00::1"),
                      socket.inet_pton(socket.AF_INET6, "fd00::53"))
    m = decode(1, ETHERNET, eth(ip6 + tcp, 0x86DD))
    assert m is not None and m.tcp and m.src == "fd00::1" and m.qname == "a.b."
    later = eth(ipv4_udp("10.0.0.1", "10.0.0.2", 53, 53, query(), frag=100))
    assert decode(1, ETHERNET, later) is None


@pytest.mark.parametrize("payload", [
    b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # a pointer to itself
    b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3f" + b"a" * 10,  # a label past the end
    b"\x00\x01",  # shorter than a header
])
def test_hostile_messages_never_raise(payload: bytes) -> None:
    m = decode(1, ETHERNET, eth(ipv4_udp("10.0.0.1", "10.0.0.2", 1234, 53, payload)))
    assert m is None or m.qname == ""


def test_other_ports_and_link_types_are_not_dns() -> None:
    assert decode(1, ETHERNET, eth(ipv4_udp("10.0.0.1", "10.0.0.2", 1234, 5353, query()))) is None
    assert decode(1, 147, b"\x00" * 64) is None
