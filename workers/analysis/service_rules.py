"""Evidence → ranked findings for `service`: one rule per rung of the ladder.

A rung that fails scores by its place on the ladder (the first failing rung ranks first: the
verdict); a rung that only warns scores below any failure; a rung an earlier one explains
(``consequence``) makes no finding of its own. Actions are the guide's commands with this
Service's names filled in.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from workers import findings
from workers.analysis.service_evidence import ServiceEvidence
from workers.analysis.service_ladder import (
    BACKEND,
    CLUSTER_IP,
    DNS,
    ENDPOINTS,
    EXISTS,
    KUBE_PROXY,
    NETWORK_POLICY,
    ORDER,
    PORTS,
    READINESS,
    SELECTOR,
    TARGET_PORT,
    Rung,
    backends,
    ladder,
    nearest_labels,
    tcp_ports,
)
from workers.findings import HIGH, LOW, MEDIUM, Finding, Subject
from workers.report import Hypothesis, Status

GUIDE = (
    "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/dns/"
    "basic-troubleshooting-dns-resolution-problems#service-not-accessible-within-pods"
)
DEBUG_SERVICE_DOC = "https://kubernetes.io/docs/tasks/debug/debug-application/debug-service/"
NETWORK_POLICY_DOC = "https://learn.microsoft.com/azure/aks/use-network-policies"
K8S_POLICY_DOC = "https://kubernetes.io/docs/concepts/services-networking/network-policies/"
DEBUG_IMAGE = "mcr.microsoft.com/cbl-mariner/busybox:2.0"
KS = "kubectl -n kube-system"

Rule = Callable[[ServiceEvidence], Finding | None]

TITLES = {
    EXISTS: "The Service does not exist",
    DNS: "The Service's name does not resolve through CoreDNS",
    PORTS: "The Service has no such port",
    SELECTOR: "The Service's selector matches no pod",
    READINESS: "No pod behind the Service is Running and Ready",
    TARGET_PORT: "targetPort does not match the containers' ports",
    ENDPOINTS: "The Service has no endpoints although its pods are Ready",
    NETWORK_POLICY: "A NetworkPolicy drops the traffic to the Service's pods",
    BACKEND: "The pods do not accept connections on the target port",
    CLUSTER_IP: "The ClusterIP does not forward to the pods (kube-proxy / iptables rules)",
    KUBE_PROXY: "kube-proxy is not healthy on every node",
}


def _actions(ev: ServiceEvidence, rung: Rung) -> tuple[str, ...]:
    ns, name = ev.namespace, ev.name
    svc = ev.service
    k = f"kubectl -n {ns}"
    sel = ",".join(f"{a}={b}" for a, b in sorted((svc.selector if svc else {}).items()))
    pods = backends(svc, ev.pods)
    pod = pods[0].name if pods else "<pod>"
    port = tcp_ports(svc, ev.port)[0] if svc and tcp_ports(svc, ev.port) else None
    if rung.key == EXISTS:
        return (f"{k} get services", f"kubectl get services -A --field-selector metadata.name={name}")
    if rung.key == DNS:
        fqdn = svc.fqdn if svc else f"{name}.{ns}.svc.cluster.local"
        return (
            f"/aksdns dig {fqdn}",
            "/aksdns check   # the layered DNS diagnosis",
            f"{KS} logs -l k8s-app=kube-dns --tail 100 | grep -i -e 'failed to list' -e error",
            "/aksdns apiserver   # CoreDNS learns Services from the API server",
        )
    if rung.key == PORTS:
        return (f"{k} get service {name} -o jsonpath='{{.spec.ports}}'",)
    if rung.key == SELECTOR:
        out = [
            f"{k} get service {name} -o jsonpath='{{.spec.selector}}'",
            f"{k} get pods -l {sel}",
            f"{k} get pods --show-labels",
            f"kubectl get pods -A -l {sel}   # the pods may live in another namespace",
        ]
        fix = _selector_fix(ev)
        if fix:
            out.append(fix)
        return tuple(out)
    if rung.key == READINESS:
        return (f"{k} get pods -l {sel} -o wide", f"{k} describe pod {pod}", f"{k} logs {pod} --tail 100")
    if rung.key == TARGET_PORT:
        out = [f"{k} get pod {pod} -o jsonpath='{{.spec.containers[*].ports}}'",
               f"{k} get service {name} -o jsonpath='{{.spec.ports}}'"]
        if port is not None and pods and pods[0].ports:
            index = svc.ports.index(port) if svc else 0
            want = pods[0].ports[0].port
            out.append(f"{k} patch service {name} --type json -p "
                       f"'[{{\"op\":\"replace\",\"path\":\"/spec/ports/{index}/targetPort\",\"value\":{want}}}]'"
                       "   # if the container's port is the right one")
        return tuple(out)
    if rung.key == ENDPOINTS:
        return (
            f"{k} get endpointslices -l kubernetes.io/service-name={name} -o wide",
            f"{k} get endpoints {name}",
            f"{k} get pods -l {sel} -o wide" if sel else f"{k} get endpointslices -o yaml",
        )
    if rung.key == NETWORK_POLICY:
        return (
            f"{k} get networkpolicy",
            f"{k} describe networkpolicy",
            "add an ingress rule that admits the clients, e.g. from: [{namespaceSelector: {matchLabels: "
            "{kubernetes.io/metadata.name: <client-namespace>}}}]"
            + (f", ports: [{{port: {port.target_port}}}]" if port else ""),
        )
    if rung.key == BACKEND:
        target = port.target_port if port else "<containerPort>"
        ip = pods[0].ip if pods else "<Pod-IP>"
        return (
            f"kubectl exec -it <client-pod> -- curl -v telnet://{ip}:{target}",
            f"{k} describe pod {pod}",
            f"{k} logs {pod} --tail 100",
            f"kubectl debug -n {ns} -it {pod} --image={DEBUG_IMAGE} -- netstat -tln   # what the pod listens on",
        )
    if rung.key == CLUSTER_IP:
        cip = svc.cluster_ip if svc else "<ClusterIP>"
        return (
            f"{KS} get pods -l component=kube-proxy -o wide",
            f"{KS} logs -l component=kube-proxy --tail 100",
            f"kubectl debug node/<node> -it --image={DEBUG_IMAGE} -- chroot /host sh -c "
            f"'iptables-save -t nat | grep {cip}'",
        )
    return (f"{KS} get daemonset kube-proxy", f"{KS} get pods -l component=kube-proxy -o wide",
            f"{KS} describe pods -l component=kube-proxy")


def _selector_fix(ev: ServiceEvidence) -> str:
    """When one label value is all that differs, the patch that would make the selector match."""
    svc = ev.service
    if svc is None or not svc.selector:
        return ""
    for p in ev.pods:
        differing = {k: p.labels.get(k) for k, v in svc.selector.items() if p.labels.get(k) != v}
        if len(differing) == 1 and all(v is not None for v in differing.values()):
            fixed = {**svc.selector, **{k: str(v) for k, v in differing.items()}}
            return (f"kubectl -n {ev.namespace} patch service {ev.name} --type merge -p "
                    f"'{json.dumps({'spec': {'selector': fixed}}, separators=(',', ':'))}'   "
                    f"# if {p.name}'s labels are the right ones")
    return ""


def _links(key: str) -> tuple[str, ...]:
    if key == NETWORK_POLICY:
        return (NETWORK_POLICY_DOC, K8S_POLICY_DOC, GUIDE)
    return (GUIDE, DEBUG_SERVICE_DOC)


def _subjects(ev: ServiceEvidence, key: str) -> list[Subject]:
    out = [Subject("service", ev.name, ev.namespace)]
    if key in (READINESS, TARGET_PORT, BACKEND, NETWORK_POLICY):
        out += [Subject("pod", p.name, p.namespace) for p in backends(ev.service, ev.pods)[:5]]
    return out


def finding_for(ev: ServiceEvidence, rung: Rung) -> Finding | None:
    if rung.status not in (Status.FAIL, Status.WARN) or rung.consequence:
        return None
    index = ORDER.index(rung.key)
    fail = rung.status is Status.FAIL
    evidence = (f"{rung.label}: {rung.detail}", *rung.evidence)
    if rung.key == SELECTOR and not rung.evidence:
        evidence += tuple(nearest_labels(ev.service.selector if ev.service else {}, ev.pods))
    title = TITLES[rung.key] if fail else f"{rung.label}: {rung.detail}"
    return Finding.of(
        rung.key,
        99 - index if fail else 40 - index,  # every failure above every warning; earlier rungs first
        Hypothesis(
            title=f"{title} ({ev.namespace}/{ev.name})" if fail else title,
            confidence=(HIGH if rung.key in (EXISTS, SELECTOR, TARGET_PORT, NETWORK_POLICY, BACKEND) else MEDIUM)
            if fail else LOW,
            evidence=evidence,
            actions=_actions(ev, rung),
            links=_links(rung.key),
        ),
        subjects=_subjects(ev, rung.key),
    )


def _rule(key: str) -> Rule:
    def rule(ev: ServiceEvidence) -> Finding | None:
        rung = next(r for r in ladder(ev) if r.key == key)
        return finding_for(ev, rung)

    rule.__name__ = f"rule_{key}"
    rule.__doc__ = f"The {key} rung fails or warns on its own evidence."
    return rule


def rule_partial_view(ev: ServiceEvidence) -> Finding | None:
    """Reads or probe pods that failed: one line each."""
    lines = [*ev.notes, *(f"{n}: {e}" for n, e in ev.node_errors.items())]
    if not lines:
        return None
    return Finding.of(
        "partial_view",
        15,
        Hypothesis(
            title="Part of the picture is missing",
            confidence=LOW,
            evidence=tuple(dict.fromkeys(lines)),
            actions=(
                "kubectl auth can-i --list --as=system:serviceaccount:<aksdns-namespace>:<release>-aksdns-worker",
            ),
            links=(GUIDE,),
        ),
    )


RULES: tuple[Rule, ...] = (*(_rule(k) for k in ORDER), rule_partial_view)


def all_healthy(ev: ServiceEvidence) -> Finding:
    rungs = ladder(ev)
    return Finding.of(
        "all_healthy",
        0,
        Hypothesis(
            title=f"All healthy: {ev.namespace}/{ev.name} answers from its name to its pods",
            confidence=HIGH,
            evidence=tuple(f"{r.label}: {r.detail}" for r in rungs if r.status is Status.OK),
            actions=(
                "if one client still fails: run the connect from that client's node and namespace "
                "(its own NetworkPolicies, egress rules)",
                "kubectl exec -it <client-pod> -- curl -v telnet://<service>.<namespace>:<port>",
            ),
            links=(GUIDE, DEBUG_SERVICE_DOC),
        ),
    )


def diagnose(ev: ServiceEvidence) -> list[Finding]:
    """service's rule set: every finding, highest score first; "all healthy" when nothing fired."""
    return findings.diagnose(ev, RULES, when_none=all_healthy, background=frozenset({"partial_view"}))
