"""Evidence → the guide's causes of "Pod fails to allocate the IP address", ranked.

Cause 1 (the guide): the network plugin fails to release addresses of terminated pods: addresses
stay allocated that no pod holds (``plugin_leak``). Cause 2: pods are created much faster than
terminated pods are garbage-collected (``gc_churn``). Beyond the guide, from the AKS docs on
dynamic IP allocation: the subnet (or the node's range) has no address left (``exhausted``).
Each rule is pure ``(IpamEvidence) -> Finding | None``; a rule ranks higher when pods on the node
already fail to start (FailedCreatePodSandBox, ContainerCreating).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from workers import findings
from workers.analysis.figures import age_text, plural
from workers.analysis.ipam_evidence import IpamEvidence
from workers.analysis.ipam_facts import (
    AZURE_CNI,
    KUBENET,
    STALE_AGE_S,
    NodeAccount,
    accounts,
    counts_text,
)
from workers.evidence.ipam import NO_AVAILABLE_ADDRESSES, NOT_ENOUGH_IPS
from workers.findings import HIGH, LOW, MEDIUM, Finding, Subject
from workers.report import Hypothesis

GUIDE = (
    "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/dns/"
    "basic-troubleshooting-dns-resolution-problems#pod-fails-to-allocate-the-ip-address"
)
GC_DOC = "https://kubernetes.io/docs/concepts/architecture/garbage-collection/#containers-images"
DYNAMIC_IP_DOC = "https://learn.microsoft.com/azure/aks/configure-azure-cni-dynamic-ip-allocation"
KUBENET_DOC = "https://learn.microsoft.com/azure/aks/configure-kubenet"
JOB_TTL_DOC = "https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/"
DEBUG_IMAGE = "mcr.microsoft.com/cbl-mariner/busybox:2.0"
MIN_STALE = 3  # fewer stale entries than this is a deletion or two in flight, not a pattern

Rule = Callable[[IpamEvidence], Finding | None]


def _shorten(message: str, limit: int = 200) -> str:
    """A sandbox error's head and tail: the plugin's cause ("No available addresses", "not enough IPs
    available ...") is at the end of a long chain of wrappers."""
    if len(message) <= limit:
        return message
    return f"{message[:limit // 3].rstrip()} … {message[-(limit - limit // 3 - 3):].lstrip()}"


def guide_counts(a: NodeAccount) -> tuple[str, ...]:
    """The guide's commands that count the same two numbers on the node."""
    running = (
        f"kubectl get pods --field-selector spec.nodeName={a.node},status.phase=Running -A -o json | "
        "jq -r '.items[] | select(.spec.hostNetwork != true).status.podIP' | wc -l"
    )
    if a.plugin == AZURE_CNI:
        return ("kubectl get nnc -n kube-system -o wide", f"kubectl get nnc {a.node} -n kube-system -o yaml", running)
    store = a.store or "/var/lib/cni/networks/kubenet"
    return (
        f"kubectl debug node/{a.node} -it --image={DEBUG_IMAGE} -- chroot /host sh -c "
        f"'ls -la {store} | grep -v -e \"lock\\|last\\|total\" -e \"\\.$\" | wc -l'",
        running,
    )


def _failure_lines(a: NodeAccount) -> list[str]:
    lines = []
    for e in a.address_failures[:3]:
        when = f" (last {age_text(e.last_age_s)} ago)" if e.last_age_s is not None else ""
        lines.append(f"FailedCreatePodSandBox ×{e.count} on {e.namespace}/{e.pod}{when}: {_shorten(e.message)}")
    if a.creating:
        stuck = ", ".join(f"{p.namespace}/{p.name} ({age_text(p.waiting_s)})" for p in a.creating[:4])
        lines.append(f"stuck in ContainerCreating: {stuck}")
    return lines


def _node_evidence(accts: Sequence[NodeAccount], detail: Callable[[NodeAccount], str]) -> list[str]:
    """For each node: the guide's two counts, what this rule sees there, and the pods that fail."""
    out: list[str] = []
    for a in accts:
        out.append(f"{a.node} ({a.plugin}): {counts_text(a)}")
        line = detail(a)
        if line:
            out.append(line)
        out += _failure_lines(a)
    return out


def _subjects(accts: Sequence[NodeAccount]) -> list[Subject]:
    return [Subject("node", a.node) for a in accts]


def _scored(accts: Sequence[NodeAccount], failing: int, quiet: int) -> tuple[int, str]:
    """Higher when pods already fail to get an address on one of the nodes."""
    return (failing, HIGH) if any(a.pods_failing for a in accts) else (quiet, MEDIUM)


# ---------------------------------------------------------------------------- Cause 1: leaked


def leaked(a: NodeAccount) -> int:
    """Addresses allocated that no pod (running or terminated) explains."""
    if a.allocated is None:
        return 0
    if a.plugin == KUBENET:
        return a.stale_old if a.stale_old >= MIN_STALE else 0
    unexplained = a.surplus - a.terminated - a.spare_allowed
    return unexplained if unexplained >= MIN_STALE else 0


def _leak_detail(a: NodeAccount) -> str:
    if a.plugin == KUBENET:
        entries = f"{a.stale_old} address" + ("" if a.stale_old == 1 else "es")
        return (f"{entries} in {a.store} match no pod and are older than "
                f"{age_text(STALE_AGE_S)} (oldest {age_text(a.oldest_stale_s)}): {', '.join(a.stale_sample)}")
    if a.nnc is None:
        return ""
    return (f"NodeNetworkConfig {a.node}: requested {a.nnc.requested}, assigned {a.nnc.assigned}, "
            f"batch {a.nnc.batch or '?'}: {leaked(a)} addresses beyond the running pods and the "
            f"{a.spare_allowed} spare ones CNS keeps")


def rule_plugin_leak(ev: IpamEvidence) -> Finding | None:
    """The guide's Cause 1: the plugin did not release the addresses of terminated pods."""
    hit = [a for a in accounts(ev) if leaked(a)]
    if not hit:
        return None
    worst = max(hit, key=leaked)
    evidence = _node_evidence(hit, _leak_detail)
    score, confidence = _scored(hit, 85, 60)
    actions = [
        *guide_counts(worst),
        "Contact Microsoft for a workaround or fix (the guide's Solution 1: a network plugin bug): open a support "
        "request and attach the aksdns-ipam JSON of this thread",
        f"meanwhile keep new pods off the node: kubectl cordon {worst.node}",
    ]
    return Finding.of(
        "plugin_leak",
        score,
        Hypothesis(
            title=f"Addresses leaked by the network plugin on {worst.node}: {worst.allocated} allocated for "
            f"{plural(worst.running, 'running pod')}"
            + (f" (and {len(hit) - 1} more nodes)" if len(hit) > 1 else ""),
            confidence=confidence,
            evidence=tuple(evidence),
            actions=tuple(actions),
            links=(GUIDE,),
        ),
        subjects=_subjects(hit),
    )


# ---------------------------------------------------------------------------- Cause 2: churn


def churned(a: NodeAccount) -> int:
    """Addresses held by pods that finished but are not collected yet (or freed moments ago)."""
    if a.allocated is None:
        return 0
    if a.plugin == KUBENET:
        held = a.stale_held + a.stale_recent
        return held if held >= MIN_STALE and (a.stale_held or a.terminated) else 0
    beyond = a.surplus - a.spare_allowed
    return min(beyond, a.terminated) if beyond >= MIN_STALE and a.terminated >= MIN_STALE else 0


def _churn_detail(a: NodeAccount) -> str:
    if a.plugin != KUBENET:
        return ""
    return (f"{churned(a)} addresses in {a.store} belong to pods that finished ({a.stale_held}) or were freed "
            f"less than {age_text(STALE_AGE_S)} ago ({a.stale_recent})")


def rule_gc_churn(ev: IpamEvidence) -> Finding | None:
    """The guide's Cause 2: pod creation is much faster than garbage collection of terminated pods."""
    hit = [a for a in accounts(ev) if churned(a)]
    if not hit:
        return None
    worst = max(hit, key=churned)
    evidence = _node_evidence(hit, _churn_detail)
    score, confidence = _scored(hit, 80, 55)
    return Finding.of(
        "gc_churn",
        score,
        Hypothesis(
            title=f"Pod churn faster than garbage collection on {worst.node}: {churned(worst)} addresses held by "
            f"{plural(worst.terminated, 'terminated pod')} not yet collected",
            confidence=confidence,
            evidence=tuple(evidence),
            actions=(
                f"kubectl get pods -A --field-selector spec.nodeName={worst.node},status.phase==Succeeded",
                f"kubectl get pods -A --field-selector spec.nodeName={worst.node},status.phase==Failed",
                "Configure fast garbage collection for the kubelet (the guide's Solution 2): see the Kubernetes "
                "garbage collection documentation (containers and images)",
                f"free them now: kubectl delete pods -A --field-selector spec.nodeName={worst.node},"
                "status.phase==Succeeded",
                "for Jobs and CronJobs: set spec.ttlSecondsAfterFinished so finished pods go away",
            ),
            links=(GUIDE, GC_DOC, JOB_TTL_DOC),
        ),
        subjects=_subjects(hit),
    )


# ---------------------------------------------------------------------------- exhaustion


def exhausted(a: NodeAccount) -> bool:
    """No address left to give, with the allocations really in use (not leaked, not churn)."""
    if a.allocated is None or leaked(a) or churned(a):
        return False
    if a.nnc is not None:
        short = a.nnc.requested > a.nnc.assigned
        wants = any(e.kind == NOT_ENOUGH_IPS for e in a.events) or bool(a.creating)
        return a.nnc.subnet_full or (short and wants)
    return a.plugin == KUBENET and a.full


def _exhausted_detail(a: NodeAccount) -> str:
    n = a.nnc
    if n is None:
        return f"range {a.pod_cidr}: {a.allocated} of {a.capacity} addresses in use"
    return (f"NodeNetworkConfig {a.node}: requested {n.requested}, assigned {n.assigned} (batch {n.batch or '?'}); "
            f"subnet {n.subnet or '?'} {n.subnet_cidr}".rstrip()
            + (f"; network container status {', '.join(n.nc_statuses)}" if n.nc_statuses else ""))


def rule_exhausted(ev: IpamEvidence) -> Finding | None:
    """The subnet (Azure CNI) or the node's pod range (kubenet) has no address left."""
    hit = [a for a in accounts(ev) if exhausted(a)]
    if not hit:
        return None
    worst = hit[0]
    evidence = _node_evidence(hit, _exhausted_detail)
    score, confidence = _scored(hit, 90, 70)
    if worst.nnc is not None:
        subnet = worst.nnc.subnet or "<pod-subnet>"
        title = (
            f"Subnet exhausted: {subnet} {worst.nnc.subnet_cidr} cannot give {worst.node} more addresses "
            f"(requested {worst.nnc.requested}, assigned {worst.nnc.assigned})"
        )
        actions: tuple[str, ...] = (
            "kubectl get nnc -n kube-system -o wide",
            f"az network vnet subnet show -g <vnet-resource-group> --vnet-name <vnet> -n {subnet} "
            "--query \"{prefix:addressPrefix, used:length(ipConfigurations)}\"",
            "add pod addresses: a node pool with a pod subnet of its own (az aks nodepool add ... "
            "--pod-subnet-id <new-subnet-id>)",
            "or reserve fewer per node: a lower --max-pods for new node pools",
        )
        links: tuple[str, ...] = (DYNAMIC_IP_DOC, GUIDE)
    else:
        title = f"{worst.node}'s pod range {worst.pod_cidr} is full: {worst.allocated} of {worst.capacity} addresses"
        actions = (
            *guide_counts(worst),
            f"kubectl describe node {worst.node} | grep -A3 -i 'pods'",
            "spread the load: az aks nodepool scale ... --node-count <more>, or lower max pods per node",
        )
        links = (KUBENET_DOC, GUIDE)
    return Finding.of(
        "exhausted",
        score,
        Hypothesis(title=title, confidence=confidence, evidence=tuple(evidence), actions=actions, links=links),
        subjects=_subjects(hit),
    )


# ---------------------------------------------------------------------------- failures no count explains


def rule_sandbox_failures(ev: IpamEvidence) -> Finding | None:
    """Pods fail with the guide's messages on nodes where the counts show no leak, churn or exhaustion."""
    hit = [
        a for a in accounts(ev)
        if a.address_failures and not (leaked(a) or churned(a) or exhausted(a))
    ]
    if not hit:
        return None
    evidence = _node_evidence(hit, lambda _a: "")
    kinds = {e.kind for a in hit for e in a.address_failures}
    if NO_AVAILABLE_ADDRESSES in kinds and any(a.plugin != KUBENET for a in hit):
        evidence.append("the host-local message (No available addresses) on a node whose store was not read")
    return Finding.of(
        "sandbox_failures",
        50,
        Hypothesis(
            title=f"Pods cannot get an IP address on {hit[0].node} (FailedCreatePodSandBox), but the allocations "
            "do not show why",
            confidence=LOW,
            evidence=tuple(evidence),
            actions=(
                f"kubectl get events -A --field-selector reason=FailedCreatePodSandBox,source={hit[0].node}",
                *guide_counts(hit[0]),
                "run again in a few minutes: a burst of pod starts can exhaust a node briefly",
            ),
            links=(GUIDE,),
        ),
        subjects=_subjects(hit),
    )


def rule_stuck_pods(ev: IpamEvidence) -> Finding | None:
    """Pods in ContainerCreating for minutes without an address failure: something else holds them."""
    stuck = [
        a for a in accounts(ev)
        if not a.address_failures and any(p.waiting_s is not None and p.waiting_s >= 120 for p in a.creating)
    ]
    if not stuck:
        return None
    pods = [p for a in stuck for p in a.creating]
    return Finding.of(
        "stuck_creating",
        25,
        Hypothesis(
            title=f"{plural(len(pods), 'pod')} stuck in ContainerCreating without an IP address error",
            confidence=LOW,
            evidence=tuple(f"{p.namespace}/{p.name} on {p.node}: {age_text(p.waiting_s)}" for p in pods[:8]),
            actions=(f"kubectl describe pod -n {pods[0].namespace} {pods[0].name}",
                     "look at its events: volumes (FailedMount), image pulls, CNI errors other than addresses"),
            links=(GUIDE,),
        ),
        subjects=[Subject("pod", p.name, p.namespace) for p in pods[:8]],
    )


def rule_partial_view(ev: IpamEvidence) -> Finding | None:
    """Reads or probe pods that failed: say what could not be seen, one line each."""
    unmeasured = [a for a in accounts(ev) if a.allocated is None]
    if not ev.notes and not unmeasured:
        return None
    evidence = tuple(dict.fromkeys([*ev.notes, *(f"{a.node}: {a.unmeasured}" for a in unmeasured)]))
    return Finding.of(
        "partial_view",
        15,
        Hypothesis(
            title="Part of the picture is missing",
            confidence=LOW,
            evidence=evidence,
            actions=(
                "kubectl auth can-i --list --as=system:serviceaccount:<aksdns-namespace>:<release>-aksdns-worker",
                "kubectl get pods -n <aksdns-namespace> -l app.kubernetes.io/managed-by=aksdns -o wide",
            ),
            links=(GUIDE,),
        ),
    )


RULES: tuple[Rule, ...] = (
    rule_exhausted,
    rule_plugin_leak,
    rule_gc_churn,
    rule_sandbox_failures,
    rule_stuck_pods,
    rule_partial_view,
)


def all_healthy(ev: IpamEvidence) -> Finding:
    accts = accounts(ev)
    measured = [a for a in accts if a.allocated is not None]
    evidence = [f"{a.node} ({a.plugin}): {counts_text(a)}" for a in accts]
    if not ev.events:
        evidence.append("no FailedCreatePodSandBox events")
    title = (
        "All healthy: every node's allocated addresses match its running pods"
        if len(measured) == len(accts)
        else f"No address problem on the {plural(len(measured), 'node')} that could be read"
    )
    return Finding.of(
        "all_healthy",
        0,
        Hypothesis(
            title=title,
            confidence=HIGH if len(measured) == len(accts) else LOW,
            evidence=tuple(evidence),
            actions=(
                "if pods still fail to start: kubectl describe pod <pod> and look at its events",
                "run again while it happens: /aksdns ipam --node <node>",
            ),
            links=(GUIDE,),
        ),
    )


def diagnose(ev: IpamEvidence) -> list[Finding]:
    """ipam's rule set: every finding, highest score first; "all healthy" when nothing fired."""
    return findings.diagnose(ev, RULES, when_none=all_healthy, background=frozenset({"partial_view"}))
