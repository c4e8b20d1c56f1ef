"""NetworkPolicy ingress enforcement for the testbed's nodes, written as nftables rules (pure).

What is enforced (the subset Azure NPM, Calico and Cilium agree on for ingress): a pod selected by
a policy whose policyTypes include Ingress accepts only connections some ingress rule of those
policies admits — peers by podSelector (same namespace), namespaceSelector (with an optional
podSelector), ipBlock (with except); ports by number, name (the pod's containerPort) or range;
no ``from`` admits everyone, no ``ports`` every port. Replies of established connections pass.
Rules sit in the forward hook of the pod's node, so traffic from the node itself (its host
processes, host-network pods) is never filtered: Kubernetes always allows a pod's own node.
Egress policies are not enforced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

JSON = dict[str, Any]
PROTOCOLS = {"TCP": "tcp", "UDP": "udp"}


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions) against labels; an empty one matches all."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not (present and labels.get(key) in values),
            "Exists": present,
            "DoesNotExist": not present,
        }.get(op, False)
        if not ok:
            return False
    return True


def running_pod(pod: JSON) -> bool:
    status = pod.get("status") or {}
    return (status.get("phase") == "Running" and bool(status.get("podIP"))
            and not (pod.get("spec") or {}).get("hostNetwork") and not (pod.get("metadata") or {}).get(
                "deletionTimestamp"))


def _labels(obj: JSON) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _peer_sources(peer: JSON, policy_ns: str, pods: list[JSON],
                  namespaces: Mapping[str, Mapping[str, str]]) -> list[str]:
    """nft source expressions a `from` peer stands for."""
    block = peer.get("ipBlock")
    if block:
        excepts = block.get("except") or []
        cidr = block["cidr"]
        return [f"ip saddr {cidr} ip saddr != {{ {', '.join(excepts)} }}" if excepts else f"ip saddr {cidr}"]
    ns_sel = peer.get("namespaceSelector")
    pod_sel = peer.get("podSelector")
    ips = []
    for p in pods:
        ns = (p.get("metadata") or {}).get("namespace", "")
        in_ns = matches(ns_sel, namespaces.get(ns, {})) if ns_sel is not None else ns == policy_ns
        if in_ns and matches(pod_sel, _labels(p)):
            ips.append(p["status"]["podIP"])
    return [f"ip saddr {{ {', '.join(sorted(set(ips)))} }}"] if ips else []


def _port_matches(port: JSON, pod: JSON) -> list[str]:
    """nft port expressions (``tcp dport 8080``) a policy port stands for on this pod."""
    proto = PROTOCOLS.get(port.get("protocol") or "TCP")
    if proto is None:
        return []
    value = port.get("port")
    if value is None:
        return [f"meta l4proto {proto}"]
    if isinstance(value, str) and not value.isdigit():
        numbers = sorted({
            cp["containerPort"]
            for c in (pod.get("spec") or {}).get("containers") or []
            for cp in c.get("ports") or []
            if cp.get("name") == value and PROTOCOLS.get(cp.get("protocol") or "TCP") == proto
        })
        return [f"{proto} dport {{ {', '.join(map(str, numbers))} }}"] if numbers else []
    end = port.get("endPort")
    return [f"{proto} dport {int(value)}-{int(end)}" if end else f"{proto} dport {int(value)}"]


def pod_allows(pod: JSON, policies: Iterable[JSON], pods: list[JSON],
               namespaces: Mapping[str, Mapping[str, str]]) -> list[str] | None:
    """The accept statements for ``pod`` (None: no policy isolates it)."""
    ns = (pod.get("metadata") or {}).get("namespace", "")
    isolating = [
        pol for pol in policies
        if (pol.get("metadata") or {}).get("namespace") == ns
        and "Ingress" in ((pol.get("spec") or {}).get("policyTypes") or ["Ingress"])
        and matches((pol.get("spec") or {}).get("podSelector") or {}, _labels(pod))
    ]
    if not isolating:
        return None
    accepts: list[str] = []
    for pol in isolating:
        for rule in (pol.get("spec") or {}).get("ingress") or []:
            peers = rule.get("from")
            sources = [""] if not peers else [s for peer in peers for s in _peer_sources(peer, ns, pods, namespaces)]
            ports = rule.get("ports")
            dports = [""] if not ports else [m for p in ports for m in _port_matches(p, pod)]
            accepts += [" ".join(x for x in (s, d, "accept") if x) for s in sources for d in dports]
    return accepts


def node_chains(node: str, policies: list[JSON], pods: list[JSON],
                namespaces: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Chain name → body for the policy filter of ``node`` (empty when nothing there is isolated)."""
    running = [p for p in pods if running_pod(p)]
    dispatch = []
    chains: dict[str, str] = {}
    for i, pod in enumerate(sorted((p for p in running if (p.get("spec") or {}).get("nodeName") == node),
                                   key=lambda p: p["status"]["podIP"])):
        accepts = pod_allows(pod, policies, running, namespaces)
        if accepts is None:
            continue
        name = f"pod_{i}"
        dispatch.append(f"    ip daddr {pod['status']['podIP']} jump {name}\n")
        chains[name] = "".join(f"    {a}\n" for a in accepts) + "    drop\n"
    if not dispatch:
        return {}
    head = ("    type filter hook forward priority 10;\n"
            "    ct state established,related accept\n")
    return {"policy_forward": head + "".join(dispatch), **chains}


def enforced(policies: list[JSON], pods: list[JSON]) -> list[str]:
    """namespace/name of the policies that isolate at least one running pod (for the status file)."""
    running = [p for p in pods if running_pod(p)]
    out = []
    for pol in policies:
        meta, spec = pol.get("metadata") or {}, pol.get("spec") or {}
        if any((p.get("metadata") or {}).get("namespace") == meta.get("namespace")
               and matches(spec.get("podSelector") or {}, _labels(p)) for p in running):
            out.append(f"{meta.get('namespace')}/{meta.get('name')}")
    return sorted(out)
