"""What `health` gathers, as plain data: the input of its tables and rules (the guide's Part 2).

JSON round-trippable (``to_dict`` / ``from_dict``) so a run can be recorded for the rules' tests,
attached to the thread and compared with the next run in the same thread. No I/O: the drivers in
``workers.probes`` translate Kubernetes objects, metrics and logs into these classes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from workers.evidence.layers import Layer, ProbeRecord


@dataclass(frozen=True)
class Resources:
    """A container's or pod's CPU and memory: requests and limits as the API wrote them."""

    cpu_request: str = ""  # "100m"; "" when unset
    cpu_limit: str = ""
    memory_request: str = ""  # "70Mi"
    memory_limit: str = ""


@dataclass(frozen=True)
class Usage:
    """What metrics.k8s.io says a pod or node uses (the numbers `kubectl top` prints)."""

    cpu_m: int
    memory_mi: int
    window_s: float = 0.0
    timestamp: str = ""


@dataclass(frozen=True)
class PodHealth:
    """One CoreDNS pod as `kubectl get/describe pod` shows it."""

    name: str
    node: str
    ip: str
    phase: str
    ready: bool
    age_s: float | None = None
    restarts: int = 0
    waiting_reason: str = ""  # CrashLoopBackOff, ContainerCreating, ...
    last_reason: str = ""  # OOMKilled, Error, Completed, ...
    last_exit_code: int | None = None
    last_finished_age_s: float | None = None
    resources: Resources = field(default_factory=Resources)
    usage: Usage | None = None
    previous_log_tail: tuple[str, ...] = ()  # the previous container's last lines (a crash's why)


@dataclass(frozen=True)
class Scrape:
    """One pod's :9153 metrics at one moment: the counters health reads, summed over labels."""

    at: float  # monotonic seconds of the scrape
    requests: float = 0.0  # coredns_dns_requests_total
    responses: dict[str, float] = field(default_factory=dict)  # rcode -> coredns_dns_responses_total
    forward_requests: float = 0.0  # coredns_forward_requests_total
    forward_duration_sum: float = 0.0  # coredns_forward_request_duration_seconds_sum
    forward_duration_count: float = 0.0
    forward_rcodes: dict[str, float] = field(default_factory=dict)  # coredns_forward_responses_total
    healthcheck_failures: dict[str, float] = field(default_factory=dict)  # to -> failures
    healthcheck_broken: float = 0.0  # coredns_forward_healthcheck_broken_total
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    panics: float = 0.0
    reload_failures: float = 0.0  # coredns_reload_failed_total


@dataclass(frozen=True)
class PodMetrics:
    """Two scrapes of one pod, a few seconds apart (rates are their difference)."""

    pod: str
    url: str
    first: Scrape | None = None
    second: Scrape | None = None
    error: str = ""


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class EventInfo:
    """A Kubernetes event about a node or pod (type Warning, or NPD's DNS events)."""

    reason: str
    message: str
    count: int = 1
    age_s: float | None = None
    source: str = ""
    type: str = "Warning"
    object: str = ""


@dataclass(frozen=True)
class NodeHealth:
    """One node as `kubectl describe node` shows it: conditions and "Allocated resources"."""

    name: str
    roles: tuple[str, ...] = ()  # "CoreDNS" and/or "client"
    conditions: tuple[Condition, ...] = ()
    allocatable_cpu: str = ""
    allocatable_memory: str = ""
    # Sums over non-terminated pods, already in kubectl's text ("1762m", "1762Mi") and its
    # truncated percentages, so the thread shows what `kubectl describe node` prints.
    cpu_requests: str = "0"
    cpu_requests_pct: int = 0
    cpu_limits: str = "0"
    cpu_limits_pct: int = 0
    memory_requests: str = "0"
    memory_requests_pct: int = 0
    memory_limits: str = "0"
    memory_limits_pct: int = 0
    other_rows: tuple[tuple[str, str, int, str, int], ...] = ()  # ephemeral-storage, hugepages-*
    usage: Usage | None = None
    events: tuple[EventInfo, ...] = ()  # recent Warning events
    npd_events: tuple[EventInfo, ...] = ()  # CoreDNSUnreachable / VnetDNSUnreachable

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    @property
    def bad_conditions(self) -> tuple[Condition, ...]:
        """Ready not True, or a pressure / NetworkUnavailable condition True."""
        return tuple(c for c in self.conditions
                     if (c.type == "Ready" and c.status != "True") or (c.type != "Ready" and c.status == "True"))

    @property
    def overcommitted(self) -> bool:
        return self.cpu_limits_pct > 100 or self.memory_limits_pct > 100


class LogClass(StrEnum):
    """Kinds of CoreDNS log lines that say something is wrong."""

    UPSTREAM_TIMEOUT = "upstream_timeout"
    SERVFAIL = "servfail"
    LOOP = "loop"
    API_ACCESS = "api_access"
    RELOAD_ERROR = "reload_error"
    PANIC = "panic"
    OTHER_ERROR = "other_error"

    @property
    def label(self) -> str:
        return {
            "upstream_timeout": "upstream i/o time-outs",
            "servfail": "SERVFAIL answers",
            "loop": "forwarding loop (plugin/loop)",
            "api_access": "API access failures (Failed to list/watch)",
            "reload_error": "configuration reload errors",
            "panic": "panics",
            "other_error": "other errors",
        }[self.value]


@dataclass(frozen=True)
class LogSummary:
    """One class of log lines over the window: how many, on which pods, a few samples."""

    kind: LogClass
    count: int
    pods: tuple[str, ...] = ()
    samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigIssue:
    """A known coredns / coredns-custom mistake, where it is and how to fix it."""

    rule: str
    where: str  # "coredns-custom key foo.override, line 3"
    problem: str
    fix: str
    severity: str = "warning"  # "critical" breaks the reload; "warning"; "info"


@dataclass(frozen=True)
class Autoscaler:
    """coredns-autoscaler (cluster-proportional-autoscaler) against the cluster's size."""

    present: bool = False
    mode: str = ""  # "ladder" | "linear" | "" (unreadable)
    params: str = ""
    expected_replicas: int | None = None
    nodes: int = 0
    cores: int = 0
    replicas: int | None = None  # the coredns Deployment's spec.replicas
    ready_replicas: int | None = None
    error: str = ""


@dataclass(frozen=True)
class LocalDnsNode:
    """AKS LocalDNS on one node: its two addresses asked from the node itself."""

    node: str
    enabled: bool  # the node resolves through 169.254.10.10
    records: tuple[ProbeRecord, ...] = ()
    error: str = ""

    @property
    def answering(self) -> bool:
        return any(r.ok for r in self.records)

    @property
    def dead(self) -> bool:
        return self.enabled and not self.error and bool(self.records) and not self.answering


@dataclass
class HealthEvidence:
    """Everything one `health` run saw."""

    cluster: str
    minutes: int = 15  # the log window
    pods: tuple[PodHealth, ...] = ()
    metrics_available: bool = True
    metrics_note: str = ""  # why usage is missing, and how to get it
    scrapes: tuple[PodMetrics, ...] = ()
    nodes: tuple[NodeHealth, ...] = ()
    logs: tuple[LogSummary, ...] = ()
    log_lines: int = 0  # lines read in the window
    log_errors: tuple[str, ...] = ()  # pods whose logs could not be read
    health_check_errors: int = 0  # `. NS` lines: the forward plugin's own health checks failing
    corefile: str = ""
    custom: dict[str, str] = field(default_factory=dict)
    config_issues: tuple[ConfigIssue, ...] = ()
    config_digest: str = ""
    autoscaler: Autoscaler = field(default_factory=Autoscaler)
    localdns: tuple[LocalDnsNode, ...] = ()
    client_pods: tuple[str, ...] = ()  # NAMESPACE/NAME the user named
    notes: tuple[str, ...] = ()
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = plain(dataclasses.asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthEvidence:
        """Inverse of :meth:`to_dict` (recorded fixtures, a previous run)."""
        value: HealthEvidence = from_plain(cls, data)
        return value


def plain(value: Any) -> Any:
    """Dataclass dicts → JSON-ready values (tuples as lists, enums as their values)."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, StrEnum):
        return value.value
    return value


def from_plain(tp: Any, data: Any) -> Any:
    """Typed data from JSON, following the dataclasses' annotations (dataclasses, tuples, enums, optionals)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if data is None else from_plain(args[0], data)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        return tuple(from_plain(inner, v) for v in data or ())
    if origin is dict:
        _k, v_tp = typing.get_args(tp)
        return {str(k): from_plain(v_tp, v) for k, v in (data or {}).items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: from_plain(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data}
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return tp(data)
    if tp is float and isinstance(data, int):
        return float(data)
    return data


__all__ = [
    "Autoscaler", "Condition", "ConfigIssue", "EventInfo", "HealthEvidence", "Layer", "LocalDnsNode",
    "LogClass", "LogSummary", "NodeHealth", "PodHealth", "PodMetrics", "ProbeRecord", "Resources",
    "Scrape", "Usage",
]
