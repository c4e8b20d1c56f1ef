"""NetworkPolicy semantics for one question: would traffic from this source reach this pod's port?

Kubernetes' rules (https://kubernetes.io/docs/concepts/services-networking/network-policies/):
a pod is isolated for ingress once any policy with type Ingress selects it; it then accepts only
what some rule of those policies allows (policies add up). A rule with no ``from`` allows every
source, one with no ``ports`` every port. Pod and namespace selectors match pods only, never
host-network sources; ipBlock matches addresses. Traffic from the pod's own node is always allowed.
Pure: no I/O; the job evaluates it for the worker and for each node that connected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workers.evidence.service import IngressRule, LabelSelector, NetworkPolicyInfo, PodBrief, PolicyPeer


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector matching (matchLabels AND every expression)."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for key, op, values in selector.expressions:
        has = key in labels
        if op == "In" and not (has and labels[key] in values):
            return False
        if op == "NotIn" and has and labels[key] in values:
            return False
        if op == "Exists" and not has:
            return False
        if op == "DoesNotExist" and has:
            return False
    return True


@dataclass(frozen=True)
class Source:
    """Where a connection comes from, as a policy sees it."""

    label: str  # "the worker", "node aks-…"
    ip: str = ""
    node: str = ""  # set for node sources: the pod's own node is always allowed
    namespace: str | None = None  # set for pod sources
    labels: Mapping[str, str] | None = None  # set for pod sources


def _in_block(ip: str, peer: PolicyPeer) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
        if addr not in ipaddress.ip_network(peer.cidr, strict=False):
            return False
        return not any(addr in ipaddress.ip_network(e, strict=False) for e in peer.excepts)
    except ValueError:
        return False


def peer_admits(peer: PolicyPeer, policy_ns: str, source: Source, namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    if peer.cidr:
        return bool(source.ip) and _in_block(source.ip, peer)
    if source.namespace is None or source.labels is None:
        return False  # selectors never match host-network sources
    if peer.namespace_selector is not None:
        if not selects(peer.namespace_selector, namespaces.get(source.namespace, {})):
            return False
    elif source.namespace != policy_ns:
        return False  # a podSelector alone means pods of the policy's own namespace
    return peer.pod_selector is None or selects(peer.pod_selector, source.labels)


def port_admits(rule: IngressRule, pod: PodBrief, port: int, protocol: str) -> bool:
    if not rule.ports:
        return True
    for p in rule.ports:
        if p.protocol.upper() != protocol.upper():
            continue
        if not p.port:
            return True
        if p.port.isdigit():
            low = int(p.port)
            if low <= port <= (p.end_port or low):
                return True
        elif any(cp.name == p.port and cp.port == port and cp.protocol.upper() == protocol.upper()
                 for cp in pod.ports):
            return True
    return False


def rule_admits(rule: IngressRule, policy: NetworkPolicyInfo, pod: PodBrief, port: int, protocol: str,
                source: Source, namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    if not port_admits(rule, pod, port, protocol):
        return False
    return not rule.peers or any(peer_admits(p, policy.namespace, source, namespaces) for p in rule.peers)


def isolating(policies: Sequence[NetworkPolicyInfo], pod: PodBrief) -> list[NetworkPolicyInfo]:
    """The policies that make ``pod`` isolated for ingress."""
    return [
        p for p in policies
        if p.namespace == pod.namespace and p.isolates_ingress and selects(p.pod_selector, pod.labels)
    ]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str  # "not isolated", "own node", "allowed by policy X", "no rule of X, Y admits it"
    policies: tuple[str, ...] = ()  # the isolating policies (by name)


def decide(policies: Sequence[NetworkPolicyInfo], pod: PodBrief, port: int, protocol: str, source: Source,
           namespaces: Mapping[str, Mapping[str, str]]) -> Decision:
    """Would ``source`` reach ``pod`` on ``port``/``protocol`` under these policies?"""
    chosen = isolating(policies, pod)
    names = tuple(p.name for p in chosen)
    if not chosen:
        return Decision(True, "no NetworkPolicy isolates the pod")
    if source.node and source.node == pod.node:
        return Decision(True, "traffic from the pod's own node is always allowed", names)
    for p in chosen:
        if any(rule_admits(r, p, pod, port, protocol, source, namespaces) for r in p.ingress):
            return Decision(True, f"allowed by {p.name}", names)
    return Decision(False, f"no ingress rule of {', '.join(names)} admits it", names)


def selector_words(sel: LabelSelector | None, what: str) -> str:
    return "" if sel is None else f"{what} {sel.text()}"


def peer_text(peer: PolicyPeer) -> str:
    if peer.cidr:
        return f"ipBlock {peer.cidr}" + (f" except {', '.join(peer.excepts)}" if peer.excepts else "")
    parts = [selector_words(peer.namespace_selector, "namespaces"), selector_words(peer.pod_selector, "pods")]
    words = " in ".join(reversed([p for p in parts if p])) or "pods"
    return words if peer.namespace_selector is not None else f"{words} of this namespace"


def rule_text(rule: IngressRule) -> str:
    sources = "anywhere" if not rule.peers else "; ".join(peer_text(p) for p in rule.peers)
    ports = "every port" if not rule.ports else ", ".join(
        f"{p.protocol} {p.port or 'any'}" + (f"-{p.end_port}" if p.end_port else "") for p in rule.ports
    )
    return f"from {sources} to {ports}"


def policy_text(policy: NetworkPolicyInfo) -> str:
    """One line: what the policy selects and what its ingress rules allow."""
    head = f"NetworkPolicy {policy.namespace}/{policy.name} (podSelector {policy.pod_selector.text()})"
    if not policy.ingress:
        return f"{head}: no ingress rule, so it drops every incoming connection"
    return f"{head} allows only: " + " | ".join(rule_text(r) for r in policy.ingress)
