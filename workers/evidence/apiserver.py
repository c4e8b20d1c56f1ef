"""What `apiserver` gathered: each stage of reaching the API server, from the worker and from nodes.

Plain data shared by the drivers that gather it (``workers.probes.apiserver``, the node probe
program, ``workers.probes.azure``) and the analysis that reads it (``workers.analysis.apiserver_*``).
Every class round-trips through JSON (:func:`to_plain` / :func:`from_plain`), so a run can be
recorded as a fixture, attached to the thread and compared with the next run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_origin

from workers.evidence.plain import to_plain  # one JSON-ready form for every evidence type

WORKER = "worker"  # the vantage point of the worker pod itself; nodes are named by their node name

# Stage outcomes (``Stage.error``): what kind of failure a stage met, in the words of the thread.
NXDOMAIN = "nxdomain"  # the name does not exist (for this resolver)
NO_ANSWER = "no_answer"  # the resolver failed: SERVFAIL, time-out, no address
TIMEOUT = "timeout"  # no answer to SYN (dropped): a firewall, NSG, authorized IP ranges
REFUSED = "refused"  # RST: reachable, nothing listening (or a reject rule)
UNREACHABLE = "unreachable"  # no route / host unreachable (ICMP)
NAME_MISMATCH = "name_mismatch"  # the certificate does not name the host the client used
UNTRUSTED = "untrusted"  # the chain does not lead to the cluster's CA
EXPIRED = "expired"  # the certificate is past notAfter (or not yet valid)
HANDSHAKE = "handshake"  # TLS failed otherwise (reset mid-handshake, protocol)
SKIPPED = "skipped"  # an earlier stage failed, so this one did not run


@dataclass(frozen=True)
class Stage:
    """One step of reaching the API server (resolve, connect, TLS), timed."""

    ok: bool
    ms: float | None = None
    error: str = ""  # one of the constants above ("" when ok)
    detail: str = ""  # one line: the addresses, the exception text, the certificate problem

    @property
    def ran(self) -> bool:
        return self.error != SKIPPED


@dataclass(frozen=True)
class Certificate:
    """The serving certificate as presented (read even when verification failed)."""

    subject: str = ""
    issuer: str = ""
    names: tuple[str, ...] = ()  # subjectAltName DNS names and IP addresses
    not_after: str = ""  # ISO 8601, UTC
    days_left: int | None = None
    fingerprint: str = ""  # SHA-256 of the DER, first 16 hex digits
    issued_by_cluster_ca: bool | None = None  # issuer matches a certificate of the CA bundle in use


@dataclass(frozen=True)
class HealthCheck:
    """``/readyz?verbose`` or ``/livez?verbose``: HTTP status and the checks that failed."""

    path: str  # "/readyz" | "/livez"
    status: int | None = None  # None: no HTTP answer
    ms: float | None = None
    failing: tuple[str, ...] = ()  # e.g. ("etcd", "poststarthook/rbac/bootstrap-roles")
    error: str = ""  # "anonymous refused (401)", a transport error

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.failing


@dataclass(frozen=True)
class EndpointProbe:
    """One vantage point reaching one API server address: name → TCP → TLS → health."""

    vantage: str  # WORKER or a node name
    target: str  # what the address is: "client configuration", "pod environment", "public FQDN", ...
    host: str
    port: int
    server_name: str  # the name TLS verified (the host unless told otherwise)
    addresses: tuple[str, ...] = ()  # what the name resolved to (the host itself when an address)
    resolve: Stage | None = None  # None: the host is an IP address, nothing to resolve
    connect: Stage = field(default_factory=lambda: Stage(ok=False, error=SKIPPED))
    tls: Stage = field(default_factory=lambda: Stage(ok=False, error=SKIPPED))
    certificate: Certificate | None = None
    readyz: HealthCheck | None = None
    livez: HealthCheck | None = None

    @property
    def reached(self) -> bool:
        """TCP and TLS succeeded: whatever answers there is the API server."""
        return self.connect.ok and self.tls.ok

    @property
    def failed_stage(self) -> str:
        """The first stage that failed ("" when every stage that ran passed)."""
        if self.resolve is not None and not self.resolve.ok:
            return "resolve"
        if not self.connect.ok:
            return "connect"
        if not self.tls.ok:
            return "tls"
        for check in (self.readyz, self.livez):
            if check is not None and check.status is not None and not check.ok and check.status != 401:
                return check.path.strip("/")
        return ""


@dataclass(frozen=True)
class NodeRun:
    """Whether the probe pod on one node ran and could be read."""

    node: str
    ok: bool
    error: str = ""
    log_read: bool | None = None  # the API server fetched this pod's log from the node (tunnel)
    log_error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Authentication:
    """Who the API server says the worker (or --as subject) is: SelfSubjectReview."""

    status: int | None = None  # 201/200 ok, 401 rejected, None unreachable
    user: str = ""
    groups: tuple[str, ...] = ()
    ms: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)


@dataclass(frozen=True)
class Permission:
    """One thing a subject needs (or is asked about), and whether the API server allows it."""

    verb: str
    resource: str  # "pods", "pods/log", "selfsubjectrulesreviews"; "" for a non-resource URL
    group: str = ""  # API group ("" core)
    namespace: str = ""  # "" cluster-wide
    name: str = ""  # a resourceName, or the URL path of a non-resource permission
    why: str = ""  # what aksdns uses it for (empty for --as questions)
    allowed: bool | None = None  # None: could not be asked
    reason: str = ""  # the authorizer's reason, or why it could not be asked

    @property
    def text(self) -> str:
        """`list pods in kube-system`, `get /readyz`, `create subjectaccessreviews.authorization.k8s.io`."""
        if not self.resource:
            return f"{self.verb} {self.name}"
        what = self.resource + (f".{self.group}" if self.group else "")
        if self.name:
            what += f" `{self.name}`"
        return f"{self.verb} {what}" + (f" in {self.namespace}" if self.namespace else " (cluster)")


@dataclass(frozen=True)
class ApiCall:
    """A real API call the worker made (the guide's `curl .../pods` step), with its answer."""

    what: str  # "get Service default/kubernetes"
    status: int | None  # HTTP status; None when the API server was not reached
    ms: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Authorization:
    """What the subject may do: the calls it made, the permissions asked, the rules it holds."""

    subject: str  # "system:serviceaccount:aksdns:aksdns-worker"
    calls: tuple[ApiCall, ...] = ()
    permissions: tuple[Permission, ...] = ()
    rules: tuple[str, ...] = ()  # SelfSubjectRulesReview, one line per rule ("get, list pods")
    rules_namespace: str = ""
    rules_incomplete: bool = False
    error: str = ""  # why the reviews could not be asked (one line)

    @property
    def denied(self) -> tuple[Permission, ...]:
        return tuple(p for p in self.permissions if p.allowed is False)

    @property
    def forbidden_calls(self) -> tuple[ApiCall, ...]:
        return tuple(c for c in self.calls if c.status == 403)


@dataclass(frozen=True)
class KubernetesService:
    """The `kubernetes` Service in default and what backs it (the guide's `kubernetes-internal`)."""

    found: bool | None = None  # None: could not be read
    cluster_ip: str = ""
    port: int = 443
    endpoints: tuple[str, ...] = ()  # "10.224.0.1:6443" from the Endpoints object
    slice_endpoints: tuple[str, ...] = ()  # ready addresses:port from its EndpointSlices
    endpoints_found: bool | None = None  # the Endpoints object exists
    error: str = ""


@dataclass(frozen=True)
class AgentPod:
    name: str
    node: str
    phase: str
    ready: bool
    restarts: int = 0


@dataclass(frozen=True)
class Konnectivity:
    """konnectivity-agent in kube-system: the tunnel the API server uses for logs, exec, port-forward."""

    read: bool = False  # the pods could be listed
    pods: tuple[AgentPod, ...] = ()
    log_read: bool | None = None  # the API server fetched an agent's log (through the tunnel)
    log_error: str = ""
    error: str = ""

    @property
    def ready(self) -> int:
        return sum(1 for p in self.pods if p.ready)


@dataclass(frozen=True)
class AzureCluster:
    """The managed cluster's API server settings from Azure Resource Manager (or why they are unknown)."""

    configured: bool = False  # Azure credentials and the cluster id are set
    read: bool = False
    error: str = ""
    resource_id: str = ""
    fqdn: str = ""
    private_fqdn: str = ""
    private_cluster: bool | None = None
    public_fqdn_enabled: bool | None = None  # enablePrivateClusterPublicFQDN
    private_dns_zone: str = ""  # "system", "none" or a zone resource id
    authorized_ranges: tuple[str, ...] = ()
    outbound_type: str = ""  # loadBalancer, userDefinedRouting, managedNATGateway, ...
    outbound_ips: tuple[str, ...] = ()  # effective outbound IP resource ids (names), when reported
    vnet_integration: bool | None = None  # enableVnetIntegration (API server in the cluster's VNet)


@dataclass
class ApiserverEvidence:
    """Everything one `apiserver` run saw."""

    cluster: str
    subject: str = ""  # "NAMESPACE/SERVICEACCOUNT" of --as ("" for the worker itself)
    client_ip: str = ""  # --client IP: is it inside the authorized ranges?
    probes: tuple[EndpointProbe, ...] = ()
    node_runs: tuple[NodeRun, ...] = ()
    authentication: Authentication = field(default_factory=Authentication)
    authorization: Authorization = field(default_factory=lambda: Authorization(subject=""))
    subject_access: Authorization | None = None  # --as: what that ServiceAccount may do
    service: KubernetesService = field(default_factory=KubernetesService)
    konnectivity: Konnectivity = field(default_factory=Konnectivity)
    azure: AzureCluster = field(default_factory=AzureCluster)
    skipped_nodes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    elapsed_s: float = 0.0

    # ------------------------------------------------------------------ selections

    def at(self, vantage: str) -> list[EndpointProbe]:
        return [p for p in self.probes if p.vantage == vantage]

    @property
    def vantages(self) -> list[str]:
        return list(dict.fromkeys(p.vantage for p in self.probes))

    @property
    def node_vantages(self) -> list[str]:
        return [v for v in self.vantages if v != WORKER]

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiserverEvidence:
        return from_plain(cls, data)


# ---------------------------------------------------------------------------- JSON


T = TypeVar("T")


def from_plain(cls: type[T], data: Any) -> T:
    """Inverse of :func:`to_plain` for the classes above, guided by their type hints."""
    return typing.cast(T, _build(cls, data))


def _build(tp: Any, data: Any) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _build(inner[0], data)
    if origin is tuple:
        item = get_args(tp)[0]
        return tuple(_build(item, v) for v in data or ())
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: _build(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data}
        return tp(**kwargs)
    return data
