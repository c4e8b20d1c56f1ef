"""Cluster reads for `ipam` (the guide's "Pod fails to allocate the IP address", as API calls).

Every call goes through ``workers.probes.kube.call`` (time-out; a 401/403 becomes one line naming
what the worker may not do). Translation into evidence types is pure and tested alone.

Kubernetes calls (verb, resource, namespace) — keep docs/ipam.md and the chart's RBAC in step:
  list  nodes                                      (cluster)
  list  pods                                       (all namespaces; fieldSelector spec.nodeName with --node)
  list  events                                     (all namespaces, fieldSelector reason=FailedCreatePodSandBox)
  list  nodenetworkconfigs.acn.azure.com           kube-system (absent on kubenet clusters: 404)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kubernetes import client

from aksdns.errors import ClusterError
from workers.evidence.ipam import NodeNetworkConfig, NodeRange, PodIp, SandboxEvent
from workers.probes.kube import KUBE_SYSTEM, Clients, call, is_not_found

NNC_GROUP = "acn.azure.com"
NNC_VERSION = "v1alpha"
NNC_PLURAL = "nodenetworkconfigs"
SANDBOX_REASON = "FailedCreatePodSandBox"
MAX_EVENTS = 500
MESSAGE_CHARS = 400


def _age(stamp: datetime | None, now: float) -> float | None:
    return None if stamp is None else round(max(0.0, now - stamp.timestamp()), 1)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------------------- pure translation


def pod_ip_from(pod: Any, now: float | None = None) -> PodIp:
    now = time.time() if now is None else now
    status = pod.status
    waiting = ""
    for cs in (status.container_statuses or []) if status else []:
        if cs.state is not None and cs.state.waiting is not None and cs.state.waiting.reason:
            waiting = cs.state.waiting.reason
            break
    owners = pod.metadata.owner_references or []
    return PodIp(
        namespace=pod.metadata.namespace,
        name=pod.metadata.name,
        node=pod.spec.node_name or "",
        phase=(status.phase if status else None) or "Unknown",
        ip=(status.pod_ip if status else None) or "",
        host_network=bool(pod.spec.host_network),
        deleting=pod.metadata.deletion_timestamp is not None,
        waiting_reason=waiting,
        waiting_s=_age(status.start_time if status else None, now),
        owner_kind=owners[0].kind if owners else "",
    )


def node_range_from(node: Any) -> NodeRange:
    conds = node.status.conditions or [] if node.status else []
    alloc = (node.status.allocatable or {}) if node.status else {}
    return NodeRange(
        name=node.metadata.name,
        pod_cidr=node.spec.pod_cidr or "",
        max_pods=_int(alloc.get("pods")),
        ready=any(c.type == "Ready" and c.status == "True" for c in conds),
    )


def sandbox_event_from(event: Any, now: float | None = None) -> SandboxEvent:
    now = time.time() if now is None else now
    obj = event.involved_object
    last = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
    source = event.source.host if event.source is not None and event.source.host else ""
    return SandboxEvent(
        namespace=obj.namespace or event.metadata.namespace or "",
        pod=obj.name or "",
        node=source or event.reporting_instance or "",
        message=" ".join((event.message or "").split())[:MESSAGE_CHARS],
        count=max(1, _int(event.count)),
        last_age_s=_age(last, now),
        first_age_s=_age(event.first_timestamp, now),
    )


def nnc_from(obj: dict[str, Any]) -> NodeNetworkConfig:
    """A NodeNetworkConfig object (a plain dict from the custom objects API)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scaler = status.get("scaler") or {}
    containers = status.get("networkContainers") or []
    first = containers[0] if containers else {}
    return NodeNetworkConfig(
        node=str((obj.get("metadata") or {}).get("name", "")),
        requested=_int(spec.get("requestedIPCount")),
        assigned=_int(status.get("assignedIPCount")),
        batch=_int(scaler.get("batchSize")),
        max_ips=_int(scaler.get("maxIPCount")),
        request_threshold_pct=_int(scaler.get("requestThresholdPercent")),
        release_threshold_pct=_int(scaler.get("releaseThresholdPercent")),
        status=str(status.get("status") or ""),
        subnet=str(first.get("subnetName") or ""),
        subnet_cidr=str(first.get("subnetAddressSpace") or ""),
        nc_statuses=tuple(str(nc.get("status")) for nc in containers if nc.get("status")),
        ips_not_in_use=len(spec.get("ipsNotInUse") or []),
    )


# ---------------------------------------------------------------------------- reads


def list_nodes(c: Clients) -> tuple[NodeRange, ...]:
    nodes = call("list nodes", c.core.list_node)
    return tuple(sorted((node_range_from(n) for n in nodes.items), key=lambda n: n.name))


def list_pods(c: Clients, node: str | None = None) -> tuple[PodIp, ...]:
    kwargs: dict[str, str] = {"field_selector": f"spec.nodeName={node}"} if node else {}
    where = f" on node {node}" if node else " in all namespaces"
    pods: Any = call(f"list pods{where}", c.core.list_pod_for_all_namespaces, **kwargs)
    return tuple(pod_ip_from(p) for p in pods.items if p.spec.node_name)


def list_sandbox_events(c: Clients) -> tuple[SandboxEvent, ...]:
    events = call(
        "list events in all namespaces",
        c.core.list_event_for_all_namespaces,
        field_selector=f"reason={SANDBOX_REASON}",
        limit=MAX_EVENTS,
    )
    return tuple(sandbox_event_from(e) for e in events.items if (e.involved_object.kind or "Pod") == "Pod")


def list_nncs(c: Clients) -> tuple[NodeNetworkConfig, ...] | None:
    """Every NodeNetworkConfig in kube-system; None when the CRD is not installed (kubenet, Azure CNI static)."""
    api = client.CustomObjectsApi(c.api)
    try:
        found = call(
            f"list {NNC_PLURAL}.{NNC_GROUP} in {KUBE_SYSTEM}",
            api.list_namespaced_custom_object,
            NNC_GROUP,
            NNC_VERSION,
            KUBE_SYSTEM,
            NNC_PLURAL,
        )
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise
    items: Iterable[dict[str, Any]] = found.get("items", []) if isinstance(found, dict) else []
    return tuple(sorted((nnc_from(o) for o in items), key=lambda n: n.node))
