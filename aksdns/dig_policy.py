"""Which servers `dig` may ask on a channel member's behalf: DNS servers, not anything reachable.

Without a policy the worker is a port scanner for anyone in an allowed channel (`@169.254.169.254`,
`@127.0.0.1:6379 --tcp`). By default aksdns asks:

- any address on port 53, except loopback, unspecified, multicast, broadcast and reserved addresses
  and the cloud metadata endpoints (169.254.169.254, fd00:ec2::254);
- another port only on a DNS server the cluster itself names: a CoreDNS pod, the kube-dns Service,
  a forwarder of the coredns-custom ConfigMap (the worker looks them up; the bot cannot, so it leaves
  that part to the worker).

``AKSDNS_DIG_ALLOW`` widens it: comma-separated ``NETWORK`` (every port) or ``NETWORK:PORT[-PORT]``
(``[NETWORK]:PORT`` for IPv6), e.g. ``10.50.0.0/16:5353,127.0.0.0/8``. Pure: the bot and the worker
both decide with it; refusals are audited by their callers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from aksdns.commands import DnsServer
from aksdns.errors import AksDnsError
from aksdns.validate import clip

DNS_PORT = 53
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
MAX_SCOPE_ID = 15  # an interface name (IFNAMSIZ - 1)
_SCOPE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowance:
    """A network and the ports aksdns may ask there."""

    network: IPNetwork
    low: int = 1
    high: int = 65535

    def covers(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        return address.version == self.network.version and address in self.network and self.low <= port <= self.high


def _allowance(item: str) -> Allowance:
    """``10.0.0.0/8``, ``10.0.0.0/8:5353``, ``10.0.0.0/8:1000-2000``, ``fd00::/8``, ``[fd00::/8]:5353``."""
    ports = ""
    if item.startswith("["):
        net_text, _, rest = item[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise AksDnsError(f"AKSDNS_DIG_ALLOW: `{item}` must look like [NETWORK]:PORT")
        ports = rest[1:]
    elif item.count(":") == 1:  # IPv4 network with ports; a bare IPv6 network has more colons
        net_text, _, ports = item.partition(":")
    else:
        net_text = item
    try:
        network = ipaddress.ip_network(net_text, strict=False)
    except ValueError:
        raise AksDnsError(f"AKSDNS_DIG_ALLOW: `{item}` is not a network") from None
    low_text, _, high_text = ports.partition("-")
    if not ports:
        return Allowance(network)
    if not all(t.isdecimal() and len(t) <= 5 for t in (low_text, high_text or low_text)):
        raise AksDnsError(f"AKSDNS_DIG_ALLOW: ports of `{item}` must be PORT or PORT-PORT")
    low, high = int(low_text), int(high_text or low_text)
    if not 1 <= low <= high <= 65535:
        raise AksDnsError(f"AKSDNS_DIG_ALLOW: ports of `{item}` must be within 1-65535")
    return Allowance(network, low, high)


@dataclass(frozen=True)
class DigPolicy:
    """The default rules, widened by the allowlist setting."""

    allow: tuple[Allowance, ...] = ()

    @classmethod
    def from_setting(cls, text: str | None) -> DigPolicy:
        return cls(tuple(_allowance(i.strip()) for i in (text or "").split(",") if i.strip()))

    def refusal(self, server: DnsServer, known: Iterable[DnsServer] | None = None) -> str | None:
        """Why ``server`` may not be asked (None: it may).

        ``known`` are the cluster's own DNS servers; None means "not known here" (the bot), which
        leaves the port rule to the worker.
        """
        shown = clip(str(server), 60)  # user input, echoed short
        host, _, scope = server.host.partition("%")
        if scope and not _SCOPE_RE.match(scope):
            return f"{shown}: an interface scope must be an interface name (at most {MAX_SCOPE_ID} characters)"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return f"{shown} is not an IP address"
        if any(a.covers(address, server.port) for a in self.allow):
            return None
        kind = _forbidden_kind(address)
        if kind:
            return f"{shown} is {kind}: aksdns does not query it (AKSDNS_DIG_ALLOW can allow it)"
        if server.port == DNS_PORT or known is None:
            return None
        if server in set(known):
            return None
        return (
            f"{shown}: port {server.port} is not a DNS server of this cluster (CoreDNS, kube-dns, "
            "coredns-custom forwarders); other servers are asked on port 53 only (AKSDNS_DIG_ALLOW can widen it)"
        )


def _forbidden_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if address in METADATA:
        return "the cloud metadata endpoint"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address == ipaddress.ip_address("255.255.255.255"):
        return "the broadcast address"
    if address.version == 4 and address.is_reserved:
        return "a reserved address"
    return ""
