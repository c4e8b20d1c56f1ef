"""What `service` gathered, as plain data: the input of the ladder and the rules.

JSON round-trippable (``to_dict`` / ``from_dict``) so a run can be recorded
(tests/unit/data/service/*.json), attached to the thread and read back. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.evidence.plain import from_plain, to_plain
from workers.evidence.service import (
    ConnectResult,
    EndpointSet,
    KubeProxyPod,
    NetworkPolicyInfo,
    PodBrief,
    ServiceSpec,
)


@dataclass(frozen=True)
class DnsProbe:
    """The Service's name asked at the kube-dns Service IP or at one CoreDNS pod."""

    server: str
    via: str  # "kube-dns Service" or the CoreDNS pod's name
    status: str  # NOERROR, NXDOMAIN, SERVFAIL, TIMEOUT, ...
    answers: tuple[str, ...] = ()
    latency_ms: float | None = None


@dataclass(frozen=True)
class WorkerIdentity:
    """Who the worker is to a NetworkPolicy: a pod (namespace and labels) or, outside a pod, a host."""

    namespace: str
    labels: dict[str, str] | None = None  # None: not a pod we could read (the testbed's host worker)


@dataclass(frozen=True)
class ServiceEvidence:
    """Everything one `service` run saw."""

    cluster: str
    namespace: str
    name: str
    port: int | None = None  # --port
    service: ServiceSpec | None = None
    other_services: tuple[str, ...] = ()  # the namespace's Services, when this one is missing
    dns: tuple[DnsProbe, ...] = ()
    slices: EndpointSet | None = None
    endpoints: EndpointSet | None = None  # the legacy Endpoints object
    pods: tuple[PodBrief, ...] = ()  # the Service's namespace
    policies: tuple[NetworkPolicyInfo, ...] = ()
    policies_read: bool = True
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    kube_proxy: tuple[KubeProxyPod, ...] = ()
    kube_proxy_read: bool = True
    connects: tuple[ConnectResult, ...] = ()
    worker: WorkerIdentity = field(default_factory=lambda: WorkerIdentity("aksdns"))
    nodes: tuple[str, ...] = ()  # nodes that were asked to connect
    node_errors: dict[str, str] = field(default_factory=dict)  # probe pods that gave no result
    skipped_nodes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    connect_timeout_s: float = 3.0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceEvidence:
        return from_plain(cls, data)
