"""What the cluster says about one Service and the way to its pods: the Service, its Endpoints and
EndpointSlices, pods and their declared ports, NetworkPolicies, kube-proxy, and TCP connects.

Plain data, translated from Kubernetes objects by ``workers.probes.kube_service`` and from probe
output by ``workers.probes.tcp_connect``; read by `service`. No I/O, no kubernetes types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What one TCP connect ended with.
OPEN = "open"  # the handshake completed: something listens
REFUSED = "refused"  # RST: nothing listens on that port (or kube-proxy rejects: no endpoints)
TIMEOUT = "timeout"  # no answer: dropped on the way (a network policy, a firewall, a dead route)
UNREACHABLE = "unreachable"  # ICMP unreachable / no route
ERROR = "error"


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: str  # a number ("8080") or a container port name ("http")
    protocol: str = "TCP"
    name: str = ""
    node_port: int | None = None

    @property
    def named_target(self) -> bool:
        return not self.target_port.isdigit()

    def label(self) -> str:
        name = f"{self.name} " if self.name else ""
        return f"{name}{self.port}/{self.protocol} → {self.target_port}"


@dataclass(frozen=True)
class ServiceSpec:
    namespace: str
    name: str
    type: str = "ClusterIP"
    cluster_ip: str = ""
    selector: dict[str, str] = field(default_factory=dict)
    ports: tuple[ServicePort, ...] = ()
    external_name: str = ""
    internal_traffic_policy: str = "Cluster"

    @property
    def headless(self) -> bool:
        return self.cluster_ip in ("", "None")

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class ContainerPort:
    container: str
    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class PodBrief:
    """A pod of the Service's namespace: what the selector, readiness and targetPort rungs need."""

    namespace: str
    name: str
    node: str = ""
    ip: str = ""
    phase: str = "Pending"
    ready: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[ContainerPort, ...] = ()
    waiting: str = ""  # container waiting reasons (CrashLoopBackOff, ContainerCreating, ...)
    restarts: int = 0
    host_network: bool = False
    deleting: bool = False


@dataclass(frozen=True)
class EndpointAddress:
    ip: str
    pod: str = ""  # targetRef name
    node: str = ""
    ready: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class EndpointPort:
    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class EndpointSet:
    """The Service's endpoints as the API lists them (EndpointSlices, or the legacy Endpoints object)."""

    source: str  # "endpointslices" | "endpoints"
    addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    objects: int = 0  # slices (or 1 Endpoints object) found

    @property
    def ready(self) -> tuple[EndpointAddress, ...]:
        return tuple(a for a in self.addresses if a.ready)


@dataclass(frozen=True)
class LabelSelector:
    """A label selector (matchLabels and matchExpressions); empty selects everything."""

    match_labels: dict[str, str] = field(default_factory=dict)
    expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (key, operator, values)

    def text(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for key, op, values in self.expressions:
            if op in ("In", "NotIn"):
                parts.append(f"{key} {op.lower()} ({','.join(values)})")
            else:
                parts.append(key if op == "Exists" else f"!{key}")
        return ",".join(parts) or "{} (everything)"


@dataclass(frozen=True)
class PolicyPeer:
    """One `from` entry of an ingress rule."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    cidr: str = ""
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: str = ""  # "" = every port; a number or a named container port
    end_port: int | None = None


@dataclass(frozen=True)
class IngressRule:
    """Allows traffic from any of ``peers`` (none listed: from everywhere) to any of ``ports`` (none: all)."""

    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicyInfo:
    namespace: str
    name: str
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    types: tuple[str, ...] = ("Ingress",)
    ingress: tuple[IngressRule, ...] = ()

    @property
    def isolates_ingress(self) -> bool:
        return "Ingress" in self.types


@dataclass(frozen=True)
class KubeProxyPod:
    name: str
    node: str
    ready: bool
    restarts: int = 0


@dataclass(frozen=True)
class ConnectResult:
    """One TCP connect, from the worker or from a node, to an endpoint or the ClusterIP."""

    source: str  # "worker" or a node name
    target: str  # ip:port
    target_kind: str  # "endpoint" | "cluster_ip"
    status: str  # OPEN | REFUSED | TIMEOUT | UNREACHABLE | ERROR
    latency_ms: float | None = None
    source_ip: str = ""  # the address the connection left from
    pod: str = ""  # the endpoint's pod
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OPEN

    @property
    def from_node(self) -> bool:
        return self.source != "worker"
