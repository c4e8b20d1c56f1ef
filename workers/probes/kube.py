"""Cluster discovery for `check` through the kubernetes client (the guide's kubectl steps, as API calls).

Every call carries ``_request_timeout``; a refusal (401/403), a time-out or an unreachable API
server becomes :class:`aksdns.errors.ClusterError` with one short line for the thread.
Translation into evidence types (``CorednsPod``, ``NodeInfo``…) is pure and tested alone.

Kubernetes calls (verb, resource, namespace) — keep docs/check.md and the chart's RBAC in step:
  list  pods              kube-system, labelSelector k8s-app=kube-dns
  get   services          kube-system/kube-dns
  list  endpointslices    kube-system, labelSelector kubernetes.io/service-name=kube-dns
  list  nodes             (cluster)
  list  pods              (all namespaces, non-terminated: limits per node for over-commit)
  get   configmaps        kube-system/coredns, kube-system/coredns-custom
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from aksdns.commands import DnsServer
from aksdns.errors import ClusterError
from workers.evidence.cluster import CorednsPod, CustomDns, Forwarder, NodeInfo, ServiceInfo, server_of

KUBE_SYSTEM = "kube-system"
COREDNS_SELECTOR = "k8s-app=kube-dns"
KUBE_DNS_SERVICE = "kube-dns"
# (connect, read) seconds: discovery must never hold a job; an API server that slow is the finding.
REQUEST_TIMEOUT = (3.0, 10.0)

T = TypeVar("T")


@dataclass(frozen=True)
class Clients:
    """The typed API groups `check` uses, sharing one ApiClient."""

    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api
    api: client.ApiClient


def connect(kubeconfig: str | None) -> Clients:
    """A client from a kubeconfig file, or the pod's in-cluster service account when None."""
    try:
        if kubeconfig:
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, persist_config=False
            )
        else:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            api = client.ApiClient(cfg)
    except (config.ConfigException, OSError, ValueError) as exc:
        raise ClusterError(f"cannot load cluster credentials: {str(exc).splitlines()[0][:160]}") from None
    except (TypeError, AttributeError, KeyError, yaml.YAMLError):  # e.g. /etc/passwd: YAML, not a kubeconfig
        raise ClusterError(f"{kubeconfig} is not a kubeconfig file (clusters, users and contexts in YAML)") from None
    return Clients(core=client.CoreV1Api(api), discovery=client.DiscoveryV1Api(api), api=api)


def call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one API call with a timeout; every failure becomes a one-line ClusterError."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        raise ClusterError(_api_message(what, exc), status=exc.status) from None
    except (HTTPError, OSError, TimeoutError) as exc:
        raise ClusterError(
            f"Kubernetes API unreachable while trying to {what}: {type(exc).__name__}; `apiserver` finds the stage "
            "that fails"
        ) from None


def _api_message(what: str, exc: ApiException) -> str:
    if exc.status in (401, 403):
        return f"the worker's ServiceAccount may not {what} (HTTP {exc.status}); check the chart's RBAC"
    if exc.status == 404:
        return f"not found while trying to {what}"
    return f"Kubernetes API error {exc.status} ({exc.reason}) while trying to {what}"


def is_not_found(err: ClusterError) -> bool:
    return err.status == 404


# ---------------------------------------------------------------------------- pure translation


def coredns_pod_from(pod: Any, now: float | None = None) -> CorednsPod:
    """CoreDNS pod facts: IP, node, readiness, restarts, OOMKilled and age of the last termination."""
    now = time.time() if now is None else now
    status = pod.status
    age: float | None = None
    ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or []))
    restarts = 0
    oom = False
    reason = ""
    for cs in status.container_statuses or []:
        restarts += cs.restart_count or 0
        for state in (cs.last_state, cs.state):
            term = state.terminated if state is not None else None
            if term is not None and term.reason:
                reason = reason or term.reason
                oom = oom or term.reason == "OOMKilled"
            if term is not None and term.finished_at is not None and state is cs.last_state:
                finished = term.finished_at.timestamp()
                age = now - finished if age is None else min(age, now - finished)
    return CorednsPod(
        name=pod.metadata.name,
        ip=status.pod_ip or "",
        node=pod.spec.node_name or "",
        phase=status.phase or "Unknown",
        ready=ready,
        restarts=restarts,
        oom_killed=oom,
        last_reason=reason,
        last_restart_age_s=None if age is None else round(age, 1),
    )


_CPU = re.compile(r"^([0-9.]+)(m?)$")
_MEM_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}
_MEM = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")


def cpu_millis(quantity: str | None) -> int:
    """"1762m" → 1762, "4" → 4000; anything unreadable → 0."""
    m = _CPU.match((quantity or "").strip())
    if not m:
        return 0
    value = float(m.group(1))
    return int(value if m.group(2) else value * 1000)


def memory_bytes(quantity: str | None) -> int:
    """"1762Mi" → bytes; anything unreadable → 0."""
    m = _MEM.match((quantity or "").strip())
    if not m or m.group(2) not in _MEM_UNITS:
        return 0
    return int(float(m.group(1)) * _MEM_UNITS[m.group(2)])


def node_from(node: Any, limits: dict[str, tuple[int, int]]) -> NodeInfo:
    """Node readiness, pressure conditions and the guide's limits-vs-allocatable over-commit."""
    conds = node.status.conditions or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conds)
    pressure = tuple(sorted(c.type for c in conds if c.type.endswith("Pressure") and c.status == "True"))
    alloc = node.status.allocatable or {}
    cpu_l, mem_l = limits.get(node.metadata.name, (0, 0))
    return NodeInfo(
        name=node.metadata.name,
        ready=ready,
        pressure=pressure,
        cpu_allocatable_m=cpu_millis(alloc.get("cpu")),
        memory_allocatable_b=memory_bytes(alloc.get("memory")),
        cpu_limits_m=cpu_l,
        memory_limits_b=mem_l,
        unschedulable=bool(node.spec.unschedulable),
    )


def limits_by_node(pods: Iterable[Any]) -> dict[str, tuple[int, int]]:
    """Sum of container limits per node (CPU millicores, memory bytes), like `kubectl describe node`."""
    out: dict[str, tuple[int, int]] = {}
    for pod in pods:
        node = pod.spec.node_name
        if not node or (pod.status and pod.status.phase in ("Succeeded", "Failed")):
            continue
        cpu, mem = out.get(node, (0, 0))
        for c in pod.spec.containers or []:
            lim = (c.resources.limits if c.resources else None) or {}
            cpu += cpu_millis(lim.get("cpu"))
            mem += memory_bytes(lim.get("memory"))
        out[node] = (cpu, mem)
    return out


def service_from(svc: Any, slices: Iterable[Any]) -> ServiceInfo:
    ips: list[str] = []
    for sl in slices:
        for ep in sl.endpoints or []:
            cond = ep.conditions
            if cond is None or cond.ready is not False:
                ips.extend(ep.addresses or [])
    port = next((p.port for p in (svc.spec.ports or []) if p.protocol == "UDP"), 53)
    return ServiceInfo(
        name=svc.metadata.name,
        ip=svc.spec.cluster_ip or "",
        port=port,
        ready_endpoints=len(ips),
        endpoint_ips=tuple(sorted(set(ips))),
        selector=dict(svc.spec.selector or {}),
    )


_FORWARD = re.compile(r"^\s*forward\s+(\S+)\s+(.+?)\s*(\{.*)?$")
_HEADER = re.compile(r"^\s*([^\s{#][^{#]*?)\s*\{\s*$")
_PLUGIN = re.compile(r"^\s*([a-z_]+)\b")


def _server_ips(tokens: Iterable[str]) -> tuple[str, ...]:
    """IP[:port] targets of a forward line (files like /etc/resolv.conf and tls:// names are skipped)."""
    out = []
    for tok in tokens:
        host = tok.removeprefix("dns://")
        if host.startswith("["):
            bare = host[1:].partition("]")[0]
        else:
            bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            continue
        out.append(host)
    return tuple(out)


def parse_custom(custom: dict[str, str] | None, corefile: str | None) -> CustomDns:
    """coredns-custom as AKS imports it: *.server blocks with their forwarders, *.override plugins."""
    data = custom or {}
    forwarders: list[Forwarder] = []
    overrides: list[str] = []
    for key in sorted(data):
        text = data[key] or ""
        zone = "."
        depth = 0
        for raw in text.splitlines():
            line = raw.split("#", 1)[0]
            if not line.strip():
                continue
            header = _HEADER.match(line)
            if header and depth == 0 and key.endswith(".server"):
                zone = header.group(1).split()[0].split(":")[0] or "."
            fwd = _FORWARD.match(line)
            if fwd:
                servers = _server_ips(fwd.group(2).split())
                if servers:
                    fzone = fwd.group(1) if fwd.group(1) != "." else zone
                    forwarders.append(Forwarder(key=key, zone=fzone, servers=servers))
            elif key.endswith(".override") and depth == 0:
                plugin = _PLUGIN.match(line)
                if plugin and plugin.group(1) not in overrides:
                    overrides.append(plugin.group(1))
            depth += line.count("{") - line.count("}")
    default = corefile is None or bool(re.search(r"forward\s+\.\s+/etc/resolv\.conf", corefile))
    return CustomDns(
        present=bool(data),
        keys=tuple(sorted(data)),
        forwarders=tuple(forwarders),
        overrides=tuple(overrides),
        default_corefile=default,
    )


# ---------------------------------------------------------------------------- discovery


def list_coredns_pods(c: Clients) -> tuple[CorednsPod, ...]:
    pods = call(
        "list CoreDNS pods in kube-system", c.core.list_namespaced_pod, KUBE_SYSTEM, label_selector=COREDNS_SELECTOR
    )
    return tuple(sorted((coredns_pod_from(p) for p in pods.items), key=lambda p: p.name))


def get_service(c: Clients) -> ServiceInfo | None:
    try:
        svc = call("get Service kube-system/kube-dns", c.core.read_namespaced_service, KUBE_DNS_SERVICE, KUBE_SYSTEM)
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise
    slices = call(
        "list EndpointSlices of kube-dns",
        c.discovery.list_namespaced_endpoint_slice,
        KUBE_SYSTEM,
        label_selector=f"kubernetes.io/service-name={KUBE_DNS_SERVICE}",
    )
    return service_from(svc, slices.items)


def list_nodes(c: Clients) -> tuple[NodeInfo, ...]:
    nodes = call("list nodes", c.core.list_node)
    pods = call(
        "list pods in all namespaces",
        c.core.list_pod_for_all_namespaces,
        field_selector="status.phase!=Succeeded,status.phase!=Failed",
    )
    limits = limits_by_node(pods.items)
    return tuple(sorted((node_from(n, limits) for n in nodes.items), key=lambda n: n.name))


def read_configmap(c: Clients, name: str) -> dict[str, str] | None:
    try:
        cm = call(f"get ConfigMap kube-system/{name}", c.core.read_namespaced_config_map, name, KUBE_SYSTEM)
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise
    return dict(cm.data or {})


def read_custom_dns(c: Clients) -> CustomDns:
    corefile = (read_configmap(c, "coredns") or {}).get("Corefile")
    return parse_custom(read_configmap(c, "coredns-custom"), corefile)


def cluster_dns_servers(c: Clients) -> frozenset[DnsServer]:
    """The DNS servers the cluster itself names: CoreDNS pods, the kube-dns Service, custom forwarders."""
    servers = {DnsServer(p.ip) for p in list_coredns_pods(c) if p.ip}
    service = get_service(c)
    if service is not None and service.ip and service.ip != "None":
        servers.add(DnsServer(service.ip, service.port))
    for forwarder in read_custom_dns(c).forwarders:
        servers |= {server_of(s) for s in forwarder.servers}
    return frozenset(servers)
