"""What a capture was asked to watch and what each target gave: plain data for `capture`'s analysis.

The driver (``workers.probes.capture_pods``) finds targets and runs the mechanisms; the analysis
(``workers.analysis.capture_*``) reads these records and the decoded messages. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Where a target sits on a DNS query's path."""

    CLIENT = "client"  # a pod that asks (--pod)
    COREDNS = "coredns"  # a CoreDNS pod (--coredns)
    NODE = "node"  # a node's host network (--node)


class Mechanism(StrEnum):
    """How a target's packets were captured, most native first."""

    EPHEMERAL = "ephemeral"  # a debug container in the pod (shares its network namespace)
    NODE_VETH = "node-veth"  # a capture pod on the pod's node, at the pod's veth
    HOST = "host"  # a capture pod in the node's host network


MECHANISM_TEXT = {
    Mechanism.EPHEMERAL: "ephemeral container in the pod",
    Mechanism.NODE_VETH: "capture pod on its node, at the pod's veth",
    Mechanism.HOST: "capture pod in the node's host network",
}


@dataclass(frozen=True)
class Target:
    """One thing to capture on."""

    role: Role
    namespace: str  # "" for a node
    name: str  # pod or node name
    node: str = ""
    ip: str = ""  # the pod IP ("" for a node)
    uid: str = ""

    @property
    def label(self) -> str:
        """The interface name in the merged file (Wireshark's frame.interface_name)."""
        return f"{self.namespace}/{self.name}" if self.namespace else f"node/{self.name}"


@dataclass(frozen=True)
class TargetProblem:
    """A target that cannot be captured, and why (one line)."""

    label: str
    reason: str


@dataclass
class TargetResult:
    """What one target's capture became."""

    target: Target
    mechanism: Mechanism | None = None
    interface: str = ""  # the interface tcpdump listened on
    fallback_reason: str = ""  # why a less native mechanism ran
    packets: int = 0
    bytes: int = 0
    ring_dropped_packets: int = 0
    kernel_dropped: int | None = None  # tcpdump's "dropped by kernel"
    error: str = ""
    started_ns: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterView:
    """What the cluster said about kube-dns while the capture ran."""

    service_ips: tuple[str, ...] = ()  # the kube-dns Service IP(s) clients ask
    ready_endpoints: tuple[str, ...] = ()  # CoreDNS pod IPs behind the Service, Ready
    coredns_pods: dict[str, str] = field(default_factory=dict)  # pod IP -> pod name (any state)
