"""Cluster reads for `service` (the guide's "Service not accessible within Pods", as API calls).

Every call goes through ``workers.probes.kube.call`` (time-out; a 401/403 becomes one line naming
what the worker may not do). Translation into evidence types is pure and tested alone.

Kubernetes calls (verb, resource, namespace) — keep docs/service.md and the chart's RBAC in step:
  get   services                          NAMESPACE/NAME   (list services in NAMESPACE when it is missing)
  list  endpointslices (discovery.k8s.io) NAMESPACE, labelSelector kubernetes.io/service-name=NAME
  get   endpoints                         NAMESPACE/NAME
  list  pods                              NAMESPACE
  list  networkpolicies (networking.k8s.io) NAMESPACE
  list  namespaces                        (cluster: labels for namespaceSelector peers)
  list  pods                              kube-system, labelSelector component=kube-proxy (then k8s-app=kube-proxy)
  get   pods                              the worker's own pod (its labels, for the policy check)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubernetes import client

from aksdns.errors import ClusterError
from workers.evidence.service import (
    ContainerPort,
    EndpointAddress,
    EndpointPort,
    EndpointSet,
    IngressRule,
    KubeProxyPod,
    LabelSelector,
    NetworkPolicyInfo,
    PodBrief,
    PolicyPeer,
    PolicyPort,
    ServicePort,
    ServiceSpec,
)
from workers.probes.kube import KUBE_SYSTEM, Clients, call, is_not_found

KUBE_PROXY_SELECTORS = ("component=kube-proxy", "k8s-app=kube-proxy")  # AKS, then upstream


# ---------------------------------------------------------------------------- pure translation


def _port_text(value: Any) -> str:
    return "" if value is None else str(value)


def service_from(svc: Any) -> ServiceSpec:
    spec = svc.spec
    ports = tuple(
        ServicePort(
            port=int(p.port),
            target_port=_port_text(p.target_port) or str(p.port),
            protocol=p.protocol or "TCP",
            name=p.name or "",
            node_port=p.node_port,
        )
        for p in spec.ports or []
    )
    return ServiceSpec(
        namespace=svc.metadata.namespace,
        name=svc.metadata.name,
        type=spec.type or "ClusterIP",
        cluster_ip=spec.cluster_ip or "",
        selector=dict(spec.selector or {}),
        ports=ports,
        external_name=spec.external_name or "",
        internal_traffic_policy=spec.internal_traffic_policy or "Cluster",
    )


def selector_from(sel: Any) -> LabelSelector:
    if sel is None:
        return LabelSelector()
    expressions = tuple(
        (e.key, e.operator, tuple(e.values or ())) for e in (sel.match_expressions or [])
    )
    return LabelSelector(dict(sel.match_labels or {}), expressions)


def policy_from(pol: Any) -> NetworkPolicyInfo:
    spec = pol.spec
    rules = []
    for rule in spec.ingress or []:
        peers = []
        for peer in rule._from or []:
            block = peer.ip_block
            peers.append(
                PolicyPeer(
                    pod_selector=selector_from(peer.pod_selector) if peer.pod_selector is not None else None,
                    namespace_selector=(
                        selector_from(peer.namespace_selector) if peer.namespace_selector is not None else None
                    ),
                    cidr=block.cidr if block is not None else "",
                    excepts=tuple(block._except or ()) if block is not None else (),
                )
            )
        ports = tuple(
            PolicyPort(protocol=p.protocol or "TCP", port=_port_text(p.port), end_port=p.end_port)
            for p in rule.ports or []
        )
        rules.append(IngressRule(tuple(peers), ports))
    # policyTypes defaults to Ingress, plus Egress when egress rules are present.
    types = tuple(spec.policy_types or (["Ingress"] + (["Egress"] if spec.egress else [])))
    return NetworkPolicyInfo(
        namespace=pol.metadata.namespace,
        name=pol.metadata.name,
        pod_selector=selector_from(spec.pod_selector),
        types=types,
        ingress=tuple(rules),
    )


def pod_from(pod: Any) -> PodBrief:
    status = pod.status
    conds = (status.conditions or []) if status else []
    waiting = []
    restarts = 0
    for cs in (status.container_statuses or []) if status else []:
        restarts += cs.restart_count or 0
        if cs.state is not None and cs.state.waiting is not None and cs.state.waiting.reason:
            waiting.append(cs.state.waiting.reason)
    ports = tuple(
        ContainerPort(container=c.name, port=int(p.container_port), name=p.name or "", protocol=p.protocol or "TCP")
        for c in pod.spec.containers or []
        for p in c.ports or []
    )
    return PodBrief(
        namespace=pod.metadata.namespace,
        name=pod.metadata.name,
        node=pod.spec.node_name or "",
        ip=(status.pod_ip if status else None) or "",
        phase=(status.phase if status else None) or "Pending",
        ready=any(c.type == "Ready" and c.status == "True" for c in conds),
        labels=dict(pod.metadata.labels or {}),
        ports=ports,
        waiting=", ".join(dict.fromkeys(waiting)),
        restarts=restarts,
        host_network=bool(pod.spec.host_network),
        deleting=pod.metadata.deletion_timestamp is not None,
    )


def slices_from(slices: Iterable[Any]) -> EndpointSet:
    addresses: list[EndpointAddress] = []
    ports: dict[tuple[str, int, str], EndpointPort] = {}
    count = 0
    for sl in slices:
        count += 1
        for p in sl.ports or []:
            if p.port is not None:
                ports[(p.name or "", int(p.port), p.protocol or "TCP")] = EndpointPort(
                    int(p.port), p.name or "", p.protocol or "TCP"
                )
        for ep in sl.endpoints or []:
            cond = ep.conditions
            ref = ep.target_ref
            for ip in ep.addresses or []:
                addresses.append(
                    EndpointAddress(
                        ip=ip,
                        pod=ref.name if ref is not None and ref.kind == "Pod" else "",
                        node=ep.node_name or "",
                        ready=cond is None or cond.ready is not False,
                        terminating=bool(cond is not None and cond.terminating),
                    )
                )
    return EndpointSet("endpointslices", tuple(addresses), tuple(ports.values()), count)


def endpoints_from(ep: Any) -> EndpointSet:
    addresses: list[EndpointAddress] = []
    ports: dict[tuple[str, int, str], EndpointPort] = {}
    for subset in ep.subsets or []:
        for p in subset.ports or []:
            ports[(p.name or "", int(p.port), p.protocol or "TCP")] = EndpointPort(int(p.port), p.name or "",
                                                                                   p.protocol or "TCP")
        for ready, group in ((True, subset.addresses or []), (False, subset.not_ready_addresses or [])):
            for a in group:
                ref = a.target_ref
                addresses.append(
                    EndpointAddress(a.ip, ref.name if ref is not None else "", a.node_name or "", ready)
                )
    return EndpointSet("endpoints", tuple(addresses), tuple(ports.values()), 1)


# ---------------------------------------------------------------------------- reads


def get_service(c: Clients, namespace: str, name: str) -> ServiceSpec | None:
    try:
        svc = call(f"get Service {namespace}/{name}", c.core.read_namespaced_service, name, namespace)
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise
    return service_from(svc)


def service_names(c: Clients, namespace: str) -> tuple[str, ...]:
    found: Any = call(f"list services in {namespace}", c.core.list_namespaced_service, namespace)
    return tuple(sorted(s.metadata.name for s in found.items))


def list_slices(c: Clients, namespace: str, name: str) -> EndpointSet:
    found = call(
        f"list endpointslices in {namespace}",
        c.discovery.list_namespaced_endpoint_slice,
        namespace,
        label_selector=f"kubernetes.io/service-name={name}",
    )
    return slices_from(found.items)


def get_endpoints(c: Clients, namespace: str, name: str) -> EndpointSet | None:
    try:
        ep = call(f"get endpoints {namespace}/{name}", c.core.read_namespaced_endpoints, name, namespace)
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise
    return endpoints_from(ep)


def list_pods(c: Clients, namespace: str) -> tuple[PodBrief, ...]:
    found = call(f"list pods in {namespace}", c.core.list_namespaced_pod, namespace)
    return tuple(sorted((pod_from(p) for p in found.items), key=lambda p: p.name))


def list_policies(c: Clients, namespace: str) -> tuple[NetworkPolicyInfo, ...]:
    api = client.NetworkingV1Api(c.api)
    found = call(
        f"list networkpolicies.networking.k8s.io in {namespace}", api.list_namespaced_network_policy, namespace
    )
    return tuple(sorted((policy_from(p) for p in found.items), key=lambda p: p.name))


def namespace_labels(c: Clients) -> dict[str, dict[str, str]]:
    found: Any = call("list namespaces", c.core.list_namespace)
    return {ns.metadata.name: dict(ns.metadata.labels or {}) for ns in found.items}


def list_kube_proxy(c: Clients) -> tuple[KubeProxyPod, ...]:
    for selector in KUBE_PROXY_SELECTORS:
        found = call(
            f"list kube-proxy pods in {KUBE_SYSTEM}", c.core.list_namespaced_pod, KUBE_SYSTEM, label_selector=selector
        )
        if found.items:
            briefs = [pod_from(p) for p in found.items]
            return tuple(sorted((KubeProxyPod(b.name, b.node, b.ready, b.restarts) for b in briefs),
                                key=lambda p: p.node))
    return ()


def own_pod_labels(c: Clients, namespace: str, name: str) -> dict[str, str] | None:
    """The worker's own pod's labels (None outside a pod, or when it may not be read)."""
    try:
        pod: Any = call(f"get pod {namespace}/{name}", c.core.read_namespaced_pod, name, namespace)
    except ClusterError:
        return None
    return dict(pod.metadata.labels or {})
