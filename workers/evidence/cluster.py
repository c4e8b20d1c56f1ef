"""What the cluster says about DNS: CoreDNS pods, the kube-dns Service, nodes, the custom configuration.

Plain data, translated from Kubernetes objects by ``workers.probes.kube`` (the driver) and read by
every command that looks at the cluster (`check`, `health`, ...). No I/O, no kubernetes types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aksdns.commands import DnsServer

INTERNAL_NAME = "kubernetes.default.svc.cluster.local"
CLUSTER_DOMAIN = "cluster.local"
RECENT_S = 3600.0  # a CoreDNS restart older than this is history, not a symptom


def is_cluster_name(name: str) -> bool:
    """True for names CoreDNS answers itself (upstreams rightly say NXDOMAIN for them)."""
    bare = name.rstrip(".").lower()
    return bare == CLUSTER_DOMAIN or bare.endswith("." + CLUSTER_DOMAIN)


@dataclass(frozen=True)
class CorednsPod:
    name: str
    ip: str
    node: str
    phase: str
    ready: bool
    restarts: int = 0
    oom_killed: bool = False  # the last termination was OOMKilled
    last_reason: str = ""  # reason of the last termination (OOMKilled, Error, ...)
    last_restart_age_s: float | None = None  # seconds since the last termination ended (None: unknown)

    @property
    def recently_restarted(self) -> bool:
        """Restarts that matter now: within the last hour, or of unknown age."""
        return self.restarts > 0 and (self.last_restart_age_s is None or self.last_restart_age_s < RECENT_S)

    @property
    def troubled(self) -> bool:
        return not self.ready or self.oom_killed or self.recently_restarted


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    ip: str
    port: int = 53
    ready_endpoints: int = 0
    endpoint_ips: tuple[str, ...] = ()
    selector: dict[str, str] = field(default_factory=dict)


def kubectl_pct(part: int, whole: int) -> int:
    """The share `kubectl describe node` prints: int64(float64(part) / float64(whole) * 100), truncated
    (157.9 % prints 157 %)."""
    return int(float(part) / float(whole) * 100) if whole else 0


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    pressure: tuple[str, ...] = ()  # MemoryPressure, DiskPressure, PIDPressure when True
    cpu_allocatable_m: int = 0
    memory_allocatable_b: int = 0
    cpu_limits_m: int = 0
    memory_limits_b: int = 0
    unschedulable: bool = False

    @property
    def cpu_limits_pct(self) -> int:
        return kubectl_pct(self.cpu_limits_m, self.cpu_allocatable_m)

    @property
    def memory_limits_pct(self) -> int:
        return kubectl_pct(self.memory_limits_b, self.memory_allocatable_b)

    @property
    def overcommitted(self) -> bool:
        """The guide's test: limits above 100 percent of allocatable."""
        return self.cpu_limits_pct > 100 or self.memory_limits_pct > 100


@dataclass(frozen=True)
class Forwarder:
    """A `forward ZONE SERVER...` line of the coredns-custom ConfigMap."""

    key: str  # the ConfigMap key (foo.server / bar.override)
    zone: str  # "." for everything
    servers: tuple[str, ...]


@dataclass(frozen=True)
class CustomDns:
    """CoreDNS custom configuration (coredns-custom) as AKS imports it."""

    present: bool = False
    keys: tuple[str, ...] = ()
    forwarders: tuple[Forwarder, ...] = ()
    overrides: tuple[str, ...] = ()  # plugin names used in *.override keys (log, hosts, rewrite...)
    default_corefile: bool = True  # the coredns ConfigMap still forwards to /etc/resolv.conf


def server_of(text: str) -> DnsServer:
    """A forwarder address as written in a Corefile: ``10.0.0.4``, ``10.0.0.4:5353``, ``[fd00::4]:53``, ``fd00::4``."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return DnsServer(host, int(port) if port.isdigit() else 53)
