"""The guide's layers and one DNS query asked at one of them, from the worker or from a node.

Shared by the commands that probe layers (`check`, the node probe pods, LocalDNS in `health`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workers.evidence.dns import SLOW_MS

OK_STATUSES = frozenset({"NOERROR"})


class Layer(StrEnum):
    """The guide's four layers, the pod-style search-list walk and AKS's LocalDNS."""

    COREDNS_POD = "coredns_pod"
    SERVICE = "service"
    NODE = "node"
    VNET_DNS = "vnet_dns"
    SEARCH = "search"
    LOCALDNS = "localdns"  # AKS's node-local cache: 169.254.10.10 (nodes) and 169.254.10.11 (pods)

    @property
    def label(self) -> str:
        return {
            "coredns_pod": "CoreDNS pods",
            "service": "CoreDNS Service",
            "node": "Nodes",
            "vnet_dns": "Virtual network DNS",
            "search": "Search-list walk",
            "localdns": "LocalDNS",
        }[self.value]


class UpstreamRole(StrEnum):
    """What a virtual-network-level server is, in the guide's words."""

    AZURE_DNS = "azure_dns"  # 168.63.129.16, the VNet default
    CUSTOM_VNET_DNS = "custom_vnet_dns"  # a custom DNS server set on the virtual network
    COREDNS_FORWARDER = "coredns_forwarder"  # a forwarder from the coredns-custom ConfigMap

    @property
    def label(self) -> str:
        return {
            "azure_dns": "Azure DNS",
            "custom_vnet_dns": "custom VNet DNS server",
            "coredns_forwarder": "CoreDNS custom forwarder",
        }[self.value]


@dataclass(frozen=True)
class ProbeRecord:
    """One query at one layer: the row of the CSV attachment."""

    layer: Layer
    target: str  # CoreDNS pod name, "kube-dns", node name, or the upstream's label
    server: str  # "10.244.0.5" or "10.244.0.5:1053"
    name: str
    rdtype: str
    attempt: int
    status: str  # NOERROR, NXDOMAIN, SERVFAIL, ... TIMEOUT, ERROR
    latency_ms: float | None
    answers: tuple[str, ...] = ()
    role: str = ""  # UpstreamRole value for vnet_dns and node records
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def slow(self) -> bool:
        return self.latency_ms is not None and self.latency_ms >= SLOW_MS and self.status != "TIMEOUT"


@dataclass(frozen=True)
class NodeProbe:
    """The outcome of one node-level probe pod (its records are ProbeRecords of layer node)."""

    node: str
    ok: bool
    error: str = ""
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    ndots: int = 1
    seconds: float = 0.0
