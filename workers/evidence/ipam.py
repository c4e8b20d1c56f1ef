"""What the cluster says about pod IP addresses: pods as IPAM sees them, the kubenet host-local
store of a node, Azure CNI's NodeNetworkConfig, sandbox-creation failures.

Plain data, translated from Kubernetes objects and probe output by the drivers
(``workers.probes.kube_ipam``, ``workers.probes.ipam_store``); read by `ipam`. No I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# The guide's two messages of "Pod fails to allocate the IP address".
# kubenet / host-local: "Failed to allocate address ... No available addresses"
NO_AVAILABLE_ADDRESSES = "no_available_addresses"
NOT_ENOUGH_IPS = "not_enough_ips"  # Azure CNI through CNS: "not enough IPs available"
OTHER_SANDBOX_FAILURE = "other"

TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})


def sandbox_failure_kind(message: str) -> str:
    """Which of the guide's two messages a FailedCreatePodSandBox event carries."""
    text = message.lower()
    if "no available addresses" in text or "failed to allocate address" in text:
        return NO_AVAILABLE_ADDRESSES
    if "not enough ips available" in text:
        return NOT_ENOUGH_IPS
    return OTHER_SANDBOX_FAILURE


@dataclass(frozen=True)
class PodIp:
    """One pod as IP address management sees it."""

    namespace: str
    name: str
    node: str
    phase: str
    ip: str = ""
    host_network: bool = False
    deleting: bool = False  # deletionTimestamp set: terminating
    waiting_reason: str = ""  # first container waiting reason (ContainerCreating, ...)
    waiting_s: float | None = None  # seconds since the kubelet started the pod (status.startTime)
    owner_kind: str = ""  # Job, ReplicaSet, DaemonSet, ...

    @property
    def running(self) -> bool:
        """What the guide counts: Running, not hostNetwork, with a pod IP."""
        return self.phase == "Running" and not self.host_network and bool(self.ip) and not self.deleting

    @property
    def terminated(self) -> bool:
        """Finished (or being deleted) but still known to the API: its sandbox may still hold an address."""
        return not self.host_network and (self.phase in TERMINATED_PHASES or self.deleting)

    @property
    def creating(self) -> bool:
        return self.phase == "Pending" and self.waiting_reason == "ContainerCreating"


@dataclass(frozen=True)
class NodeRange:
    """A node's pod address range and limits (kubenet's host-local range is the node's podCIDR)."""

    name: str
    pod_cidr: str = ""
    max_pods: int = 0
    ready: bool = True

    @property
    def capacity(self) -> int:
        """Addresses host-local can hand out: the range minus network, gateway (.1) and broadcast."""
        if not self.pod_cidr:
            return 0
        try:
            net = ipaddress.ip_network(self.pod_cidr, strict=False)
        except ValueError:
            return 0
        return max(0, net.num_addresses - 3)


@dataclass(frozen=True)
class StoreEntry:
    """One allocation in the host-local IPAM store: a file named by the address."""

    ip: str
    container_id: str = ""  # the sandbox that holds it (first 12 characters)
    age_s: float = 0.0  # since the file was last written


@dataclass(frozen=True)
class StoreReading:
    """What the read-only probe pod found in /var/lib/cni/networks on one node."""

    node: str
    ok: bool
    error: str = ""
    network: str = ""  # kubenet, or k8s-pod-network (kubenet with Calico)
    entries: tuple[StoreEntry, ...] = ()
    networks: tuple[str, ...] = ()  # every directory seen under /var/lib/cni/networks

    @property
    def found(self) -> bool:
        return self.ok and bool(self.network)


@dataclass(frozen=True)
class NodeNetworkConfig:
    """Azure CNI dynamic IP allocation: a node's NodeNetworkConfig (kube-system, named after the node)."""

    node: str
    requested: int = 0  # spec.requestedIPCount: what CNS asked for
    assigned: int = 0  # status.assignedIPCount: what the subnet gave
    batch: int = 0  # status.scaler.batchSize
    max_ips: int = 0  # status.scaler.maxIPCount
    request_threshold_pct: int = 0
    release_threshold_pct: int = 0
    status: str = ""  # Updating | Updated | Error
    subnet: str = ""
    subnet_cidr: str = ""
    nc_statuses: tuple[str, ...] = ()  # networkContainers[].status (NCUpdateSubnetFullError, ...)
    ips_not_in_use: int = 0  # spec.ipsNotInUse: addresses CNS is handing back

    @property
    def subnet_full(self) -> bool:
        return any("SubnetFull" in s for s in self.nc_statuses)


@dataclass(frozen=True)
class SandboxEvent:
    """A FailedCreatePodSandBox event of a pod."""

    namespace: str
    pod: str
    node: str
    message: str
    count: int = 1
    last_age_s: float | None = None  # seconds since it was last seen
    first_age_s: float | None = None

    @property
    def kind(self) -> str:
        return sandbox_failure_kind(self.message)
