"""The Kubernetes reads of `health` (the guide's Part 2 kubectl steps, as API calls).

Kubernetes calls (verb, resource, namespace) — keep docs/health.md and the chart's RBAC in step:
  list  pods                 kube-system, k8s-app=kube-dns (and get pods the user named)
  get   pods/log             kube-system: the last N minutes, and the previous container's tail
  list  pods                 all namespaces, non-terminated (Allocated resources per node)
  list  nodes
  list  events               all namespaces, involvedObject.kind=Node / Pod (Warnings, NPD's DNS events)
  list  pods, nodes          metrics.k8s.io/v1beta1 (what `kubectl top` reads)
  get   configmaps           kube-system/coredns, coredns-custom, coredns-autoscaler
  get   deployments          kube-system/coredns (replicas against the autoscaler's ladder)
Pods and nodes are read as the API's JSON (``_preload_content=False``) so that the pure code computes
"Allocated resources" from the same fields, in the same order, as kubectl.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kubernetes import client

from aksdns.errors import ClusterError
from workers.evidence.health import Condition, EventInfo, PodHealth, Resources
from workers.probes.kube import COREDNS_SELECTOR, KUBE_SYSTEM, Clients, call, is_not_found, read_configmap

JSON = dict[str, Any]
NPD_REASONS = ("CoreDNSUnreachable", "VnetDNSUnreachable")
LOG_LIMIT_BYTES = 2 * 2**20  # per pod and window: a log-plugin flood must not fill the worker
TAIL_LINES = 15
METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"


def _json(resp: Any) -> JSON:
    data: JSON = json.loads(resp.data)
    return data


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _age(text: str | None, now: float) -> float | None:
    t = _ts(text)
    return None if t is None else round(max(0.0, now - t), 1)


# ---------------------------------------------------------------------------- pure translation


def pod_health_from(pod: Mapping[str, Any], now: float | None = None) -> PodHealth:
    """A CoreDNS pod's JSON → what `kubectl get/describe pod` shows (first container's state)."""
    now = time.time() if now is None else now
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    cs = statuses[0] if statuses else {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    waiting = (cs.get("state") or {}).get("waiting") or {}
    containers = spec.get("containers") or [{}]
    res = containers[0].get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return PodHealth(
        name=meta["name"],
        node=spec.get("nodeName") or "",
        ip=status.get("podIP") or "",
        phase=status.get("phase") or "Unknown",
        ready=ready,
        age_s=_age(meta.get("creationTimestamp"), now),
        restarts=sum(int(c.get("restartCount") or 0) for c in statuses),
        waiting_reason=waiting.get("reason") or "",
        last_reason=last.get("reason") or "",
        last_exit_code=last.get("exitCode"),
        last_finished_age_s=_age(last.get("finishedAt"), now),
        resources=Resources(req.get("cpu", ""), lim.get("cpu", ""), req.get("memory", ""), lim.get("memory", "")),
    )


def conditions_of(node: Mapping[str, Any]) -> tuple[Condition, ...]:
    return tuple(
        Condition(c.get("type", ""), c.get("status", ""), c.get("reason") or "", (c.get("message") or "")[:200])
        for c in (node.get("status") or {}).get("conditions") or []
    )


def event_from(ev: Mapping[str, Any], now: float) -> EventInfo:
    last = ev.get("lastTimestamp") or ev.get("eventTime") or (ev.get("metadata") or {}).get("creationTimestamp")
    obj = ev.get("involvedObject") or {}
    src = ev.get("source") or {}
    return EventInfo(
        reason=ev.get("reason") or "",
        message=(ev.get("message") or "").strip()[:240],
        count=int(ev.get("count") or 1),
        age_s=_age(last, now),
        source=src.get("component") or ev.get("reportingComponent") or "",
        type=ev.get("type") or "",
        object=f"{obj.get('kind', '')}/{obj.get('name', '')}",
    )


# ---------------------------------------------------------------------------- reads


def coredns_pods(c: Clients) -> list[JSON]:
    resp = call("list CoreDNS pods in kube-system", c.core.list_namespaced_pod, KUBE_SYSTEM,
                label_selector=COREDNS_SELECTOR, _preload_content=False)
    return sorted(_json(resp).get("items") or [], key=lambda p: p["metadata"]["name"])


def pod(c: Clients, namespace: str, name: str) -> JSON | None:
    try:
        return _json(call(f"get pod {namespace}/{name}", c.core.read_namespaced_pod, name, namespace,
                          _preload_content=False))
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise


def all_active_pods(c: Clients) -> list[JSON]:
    resp = call("list pods in all namespaces", c.core.list_pod_for_all_namespaces,
                field_selector="status.phase!=Succeeded,status.phase!=Failed", _preload_content=False)
    return list(_json(resp).get("items") or [])


def nodes(c: Clients) -> list[JSON]:
    return sorted(_json(call("list nodes", c.core.list_node, _preload_content=False)).get("items") or [],
                  key=lambda n: n["metadata"]["name"])


def events(c: Clients, kind: str) -> list[JSON]:
    resp = call(f"list events about {kind}s", c.core.list_event_for_all_namespaces,
                field_selector=f"involvedObject.kind={kind}", _preload_content=False)
    return list(_json(resp).get("items") or [])


def pod_log(c: Clients, name: str, *, since_s: int | None = None, previous: bool = False,
            tail: int | None = None) -> list[str]:
    kwargs: dict[str, Any] = {"limit_bytes": LOG_LIMIT_BYTES, "_preload_content": False}
    if since_s is not None:
        kwargs["since_seconds"] = since_s
    if previous:
        kwargs["previous"] = True
    if tail is not None:
        kwargs["tail_lines"] = tail
    what = f"read the {'previous ' if previous else ''}log of {KUBE_SYSTEM}/{name}"
    resp: Any = call(what, c.core.read_namespaced_pod_log, name, KUBE_SYSTEM, **kwargs)
    text: str = resp.data.decode("utf-8", errors="replace")
    return text.splitlines()


def pod_metrics(c: Clients, namespace: str, selector: str) -> dict[str, JSON]:
    """PodMetrics items by pod name (what `kubectl top pods` reads)."""
    api = client.CustomObjectsApi(c.api)
    data: Any = call("list pod metrics (metrics.k8s.io)", api.list_namespaced_custom_object, METRICS_GROUP,
                METRICS_VERSION, namespace, "pods", label_selector=selector)
    return {item["metadata"]["name"]: item for item in data.get("items") or []}


def node_metrics(c: Clients) -> dict[str, JSON]:
    """NodeMetrics items by node name (what `kubectl top nodes` reads)."""
    api = client.CustomObjectsApi(c.api)
    data: Any = call("list node metrics (metrics.k8s.io)", api.list_cluster_custom_object, METRICS_GROUP,
                METRICS_VERSION, "nodes")
    return {item["metadata"]["name"]: item for item in data.get("items") or []}


def configmaps(c: Clients, names: Iterable[str]) -> dict[str, dict[str, str] | None]:
    return {n: read_configmap(c, n) for n in names}


def coredns_replicas(c: Clients) -> tuple[int | None, int | None]:
    apps = client.AppsV1Api(c.api)
    try:
        dep = call("get Deployment kube-system/coredns", apps.read_namespaced_deployment, "coredns", KUBE_SYSTEM)
    except ClusterError as err:
        if is_not_found(err):
            return None, None
        raise
    return dep.spec.replicas, (dep.status.ready_replicas if dep.status else None) or 0


def nodes_of(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({(p.get("spec") or {}).get("nodeName") or "" for p in pods} - {""})
