"""The ladder from a Service's name to its pods, rung by rung (the guide's "Service not accessible
within Pods", in the order a cause precedes what it causes).

Each rung is judged on its own evidence: ``ok``, ``fail`` (this rung is broken), ``warn``,
``info`` (not applicable, or not reached because an earlier rung explains it: ``consequence``).
The verdict is the first rung that fails. Pure: evidence in, rungs out; also plans the connect
targets the job tests (endpoints, matching pods, the ClusterIP).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from workers.analysis.figures import format_ms, percentile, plural
from workers.analysis.service_evidence import ServiceEvidence
from workers.analysis.service_policy import Decision, Source, decide, isolating, policy_text, selects
from workers.evidence.service import (
    OPEN,
    REFUSED,
    TIMEOUT,
    ConnectResult,
    EndpointSet,
    LabelSelector,
    PodBrief,
    ServicePort,
    ServiceSpec,
)
from workers.report import Status

EXISTS, DNS, PORTS, SELECTOR, READINESS, TARGET_PORT, ENDPOINTS = (
    "exists", "dns", "ports", "selector", "readiness", "target_port", "endpoints",
)
NETWORK_POLICY, BACKEND, CLUSTER_IP, KUBE_PROXY = "network_policy", "backend", "cluster_ip", "kube_proxy"
ORDER = (EXISTS, DNS, PORTS, SELECTOR, READINESS, TARGET_PORT, ENDPOINTS, NETWORK_POLICY, BACKEND, CLUSTER_IP,
         KUBE_PROXY)
LABELS = {
    EXISTS: "Service",
    DNS: "DNS name (through CoreDNS)",
    PORTS: "ClusterIP and ports",
    SELECTOR: "Selector → pods",
    READINESS: "Readiness",
    TARGET_PORT: "targetPort → containerPort",
    ENDPOINTS: "Endpoints / EndpointSlices",
    NETWORK_POLICY: "NetworkPolicies",
    BACKEND: "TCP to each endpoint",
    CLUSTER_IP: "TCP to the ClusterIP",
    KUBE_PROXY: "kube-proxy",
}
MAX_PORTS = 5
MAX_ENDPOINT_TARGETS = 24  # per run; a Service with more endpoints is sampled (and the thread says so)


@dataclass(frozen=True)
class Rung:
    key: str
    status: Status
    detail: str
    evidence: tuple[str, ...] = ()
    consequence: bool = False  # an earlier rung explains it: no finding of its own

    @property
    def label(self) -> str:
        return LABELS[self.key]

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL and not self.consequence


@dataclass(frozen=True)
class Target:
    """A connect the job makes: to an endpoint (or a matching pod) or to the ClusterIP."""

    address: str  # ip:port
    kind: str  # "endpoint" | "cluster_ip"
    port: ServicePort
    pod: str = ""
    node: str = ""


# ---------------------------------------------------------------------------- shared views


def tcp_ports(service: ServiceSpec, wanted: int | None) -> tuple[ServicePort, ...]:
    """The Service ports the connect tests cover: --port, or every TCP port (at most MAX_PORTS)."""
    ports = [p for p in service.ports if wanted is None or p.port == wanted]
    return tuple(p for p in ports if p.protocol.upper() == "TCP")[:MAX_PORTS]


def backends(service: ServiceSpec | None, pods: Sequence[PodBrief]) -> list[PodBrief]:
    """Pods the selector picks (none without a selector: endpoints then come from elsewhere)."""
    if service is None or not service.selector:
        return []
    sel = LabelSelector(service.selector)
    return [p for p in pods if not p.deleting and selects(sel, p.labels)]


def resolve_port(port: ServicePort, pod: PodBrief) -> int | None:
    """The container port a Service port's targetPort means on ``pod`` (None: a name it lacks)."""
    if not port.named_target:
        return int(port.target_port)
    for cp in pod.ports:
        if cp.name == port.target_port and cp.protocol.upper() == port.protocol.upper():
            return cp.port
    return None


def declared(port: ServicePort, pod: PodBrief) -> bool:
    number = resolve_port(port, pod)
    return number is not None and any(
        cp.port == number and cp.protocol.upper() == port.protocol.upper() for cp in pod.ports
    )


def endpoint_set(ev: ServiceEvidence) -> EndpointSet | None:
    """EndpointSlices when there are any, else the legacy Endpoints object."""
    if ev.slices is not None and ev.slices.objects:
        return ev.slices
    return ev.endpoints or ev.slices


def endpoint_port(eps: EndpointSet | None, port: ServicePort) -> int | None:
    if eps is None:
        return None
    for p in eps.ports:
        if p.name == port.name and p.protocol.upper() == port.protocol.upper():
            return p.port
    return None


def plan_targets(service: ServiceSpec, wanted: int | None, pods: Sequence[PodBrief],
                 eps: EndpointSet | None) -> list[Target]:
    """Every endpoint address and matching pod at its port, and the ClusterIP, for each TCP port."""
    out: dict[str, Target] = {}
    by_ip = {p.ip: p for p in pods if p.ip}
    for sp in tcp_ports(service, wanted):
        ep_port = endpoint_port(eps, sp)
        if ep_port is not None and eps is not None:
            for a in eps.addresses:
                pod = by_ip.get(a.ip)
                addr = f"{a.ip}:{ep_port}"
                out.setdefault(addr, Target(addr, "endpoint", sp, a.pod or (pod.name if pod else ""), a.node))
        for pod in backends(service, pods):
            number = resolve_port(sp, pod)
            if pod.ip and number is not None:
                addr = f"{pod.ip}:{number}"
                out.setdefault(addr, Target(addr, "endpoint", sp, pod.name, pod.node))
        if not service.headless and service.type != "ExternalName":
            addr = f"{service.cluster_ip}:{sp.port}"
            out.setdefault(addr, Target(addr, "cluster_ip", sp))
    endpoints = [t for t in out.values() if t.kind == "endpoint"]
    return endpoints[:MAX_ENDPOINT_TARGETS] + [t for t in out.values() if t.kind == "cluster_ip"]


def endpoint_count(service: ServiceSpec, wanted: int | None, pods: Sequence[PodBrief], eps: EndpointSet | None) -> int:
    """How many endpoint targets there are before sampling."""
    seen = {a.ip for a in (eps.addresses if eps is not None else ())}
    seen |= {p.ip for p in backends(service, pods) if p.ip}
    return len(seen) * max(1, len(tcp_ports(service, wanted)))


def nearest_labels(selector: dict[str, str], pods: Sequence[PodBrief], limit: int = 3) -> list[str]:
    """Pods whose labels come closest to the selector, and how they differ."""
    scored = []
    for p in pods:
        same = sum(p.labels.get(k) == v for k, v in selector.items())
        near = sum(k in p.labels for k in selector)
        if near:
            scored.append((same, near, p))
    scored.sort(key=lambda t: (-t[0], -t[1], t[2].name))
    out = []
    for _same, _near, p in scored[:limit]:
        diffs = [
            f"{k}={p.labels[k]} (wants {k}={v})" if k in p.labels else f"no {k} label (wants {k}={v})"
            for k, v in selector.items()
            if p.labels.get(k) != v
        ]
        out.append(f"{p.name}: {'; '.join(diffs)}")
    if not out:
        value_matches = []
        for p in pods:
            for key, value in p.labels.items():
                for want in selector.values():
                    if difflib.SequenceMatcher(None, value, want).ratio() >= 0.6:
                        value_matches.append(f"{p.name}: {key}={value} (wants {'/'.join(selector)}={want})")
        out = value_matches[:limit]
    return out


def _p95(results: Sequence[ConnectResult]) -> str:
    values = [r.latency_ms for r in results if r.latency_ms is not None]
    return f", p95 {format_ms(percentile(values, 95), fine=False)}" if values else ""


def _sources(results: Sequence[ConnectResult]) -> str:
    names = sorted({"the worker" if r.source == "worker" else r.source for r in results})
    return ", ".join(names)


# ---------------------------------------------------------------------------- the rungs


@dataclass
class _State:
    """What earlier rungs found that later ones read."""

    service: ServiceSpec | None
    ports: tuple[ServicePort, ...] = ()
    backends: list[PodBrief] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # rungs that failed so far (causes)


def _exists(ev: ServiceEvidence) -> Rung:
    if ev.service is not None:
        s = ev.service
        kind = s.type + (" (headless)" if s.headless and s.type == "ClusterIP" else "")
        return Rung(EXISTS, Status.OK, f"{s.namespace}/{s.name}: {kind}")
    close = difflib.get_close_matches(ev.name, ev.other_services, n=3, cutoff=0.5)
    evidence = [f"no Service {ev.name} in namespace {ev.namespace}"]
    if close:
        evidence.append(f"similar names there: {', '.join(close)}")
    elif ev.other_services:
        evidence.append(f"Services there: {', '.join(ev.other_services[:8])}")
    else:
        evidence.append(f"namespace {ev.namespace} has no Service (or does not exist)")
    return Rung(EXISTS, Status.FAIL, evidence[0], tuple(evidence))


def _dns(ev: ServiceEvidence, st: _State) -> Rung:
    s = st.service
    assert s is not None
    via_service = [d for d in ev.dns if d.via == "kube-dns Service"]
    if not ev.dns:
        return Rung(DNS, Status.INFO, "not asked (no kube-dns Service found)")
    lines = tuple(
        f"{d.via} {d.server}: {d.status}" + (f" {', '.join(d.answers)}" if d.answers else "") for d in ev.dns
    )
    main = via_service or list(ev.dns)
    answered = [d for d in main if d.status == "NOERROR"]
    if s.type == "ExternalName":
        ok = bool(answered)
        return Rung(DNS, Status.OK if ok else Status.WARN, f"{s.fqdn} → CNAME {s.external_name}", lines)
    if s.headless:
        eps = endpoint_set(ev)
        ready = [a.ip for a in (eps.ready if eps is not None else ())]
        if not ready:
            return Rung(DNS, Status.INFO, f"{s.fqdn}: headless with no ready endpoint, so no address", lines)
        good = [d for d in answered if set(d.answers) & set(ready)]
        status = Status.OK if good else Status.FAIL
        return Rung(DNS, status, f"{s.fqdn} → {', '.join(sorted(ready)[:4])} (headless)", lines)
    if answered and all(s.cluster_ip in d.answers for d in answered):
        ms = [d.latency_ms for d in answered if d.latency_ms is not None]
        took = f" in {format_ms(max(ms), fine=False)}" if ms else ""
        return Rung(DNS, Status.OK, f"{s.fqdn} → {s.cluster_ip}{took}", lines)
    if answered:
        got = ", ".join(sorted({a for d in answered for a in d.answers})) or "no address"
        return Rung(DNS, Status.FAIL, f"{s.fqdn} → {got}, not the ClusterIP {s.cluster_ip}", lines)
    statuses = sorted({d.status for d in main})
    return Rung(DNS, Status.FAIL, f"{s.fqdn} does not resolve: {', '.join(statuses)}", lines)


def _ports(ev: ServiceEvidence, st: _State) -> Rung:
    s = st.service
    assert s is not None
    listed = ", ".join(p.label() for p in s.ports) or "none"
    address = "no ClusterIP (headless)" if s.headless else f"ClusterIP {s.cluster_ip}"
    if s.type == "ExternalName":
        return Rung(PORTS, Status.INFO, f"ExternalName {s.external_name}: no ClusterIP, no endpoints")
    if not s.ports:
        return Rung(PORTS, Status.FAIL, f"{address}; the Service has no ports")
    if ev.port is not None and not any(p.port == ev.port for p in s.ports):
        return Rung(PORTS, Status.FAIL, f"{address}; no port {ev.port} (ports: {listed})",
                    (f"--port {ev.port} is not a port of the Service; it has {listed}",))
    if not st.ports:
        return Rung(PORTS, Status.INFO, f"{address}; ports {listed}: no TCP port to connect to")
    detail = f"{address}; ports {listed}"
    if s.internal_traffic_policy == "Local":
        detail += "; internalTrafficPolicy Local (only endpoints on the client's node)"
    return Rung(PORTS, Status.OK, detail)


def _selector(ev: ServiceEvidence, st: _State) -> Rung:
    s = st.service
    assert s is not None
    if not s.selector:
        return Rung(SELECTOR, Status.INFO, "no selector: its endpoints are maintained by hand or by a controller")
    sel = ",".join(f"{k}={v}" for k, v in sorted(s.selector.items()))
    if st.backends:
        names = ", ".join(p.name for p in st.backends[:5]) + (" …" if len(st.backends) > 5 else "")
        return Rung(SELECTOR, Status.OK, f"{sel} matches {plural(len(st.backends), 'pod')}: {names}")
    near = nearest_labels(s.selector, [p for p in ev.pods if not p.deleting])
    evidence = [f"selector {sel} matches none of the {plural(len(ev.pods), 'pod')} in {ev.namespace}"]
    evidence += [f"nearest: {n}" for n in near] or [f"no pod in {ev.namespace} has labels like {sel}"]
    return Rung(SELECTOR, Status.FAIL, f"{sel} matches no pod in {ev.namespace}", tuple(evidence))


def _readiness(st: _State) -> Rung:
    if not st.backends:
        return Rung(READINESS, Status.INFO, "no pod to look at")
    ready = [p for p in st.backends if p.phase == "Running" and p.ready]
    bad = [p for p in st.backends if p not in ready]
    evidence = tuple(
        f"{p.name} on {p.node or '?'}: {p.phase}" + ("" if p.ready else ", not Ready")
        + (f", {p.waiting}" if p.waiting else "") + (f", {plural(p.restarts, 'restart')}" if p.restarts else "")
        for p in bad
    )
    if not ready:
        return Rung(READINESS, Status.FAIL, f"0/{len(st.backends)} matching pods Running and Ready", evidence)
    if bad:
        return Rung(READINESS, Status.WARN, f"{len(ready)}/{len(st.backends)} Running and Ready", evidence)
    return Rung(READINESS, Status.OK, f"{len(ready)}/{len(st.backends)} Running and Ready")


def _target_port(ev: ServiceEvidence, st: _State) -> Rung:
    if not st.backends or not st.ports:
        return Rung(TARGET_PORT, Status.INFO, "no pod to compare with")
    worst: Rung | None = None
    oks = []
    for sp in st.ports:
        declared_by = [p for p in st.backends if declared(sp, p)]
        if declared_by:
            number = resolve_port(sp, declared_by[0])
            named = f" (named `{sp.target_port}`)" if sp.named_target else ""
            oks.append(f"{sp.port} → {number}{named}")
            continue
        have = sorted({f"{cp.name + ' ' if cp.name else ''}{cp.port}/{cp.protocol}"
                       for p in st.backends for cp in p.ports})
        declared_text = ", ".join(have) or "no ports"
        if sp.named_target and all(resolve_port(sp, p) is None for p in st.backends):
            rung = Rung(TARGET_PORT, Status.FAIL,
                        f"port {sp.port}: targetPort `{sp.target_port}` names no container port "
                        f"(they declare {declared_text})",
                        (f"targetPort `{sp.target_port}` of port {sp.port} is not a port name of "
                         f"{', '.join(p.name for p in st.backends[:3])}: {declared_text}",
                         "the endpoint controller leaves such pods out of the port's endpoints"))
        else:
            tried = [r for r in ev.connects if r.target_kind == "endpoint" and r.target.endswith(f":{sp.target_port}")]
            listening = [r for r in tried if r.ok]
            evidence = (f"targetPort {sp.target_port} of port {sp.port}; the containers declare {declared_text}",)
            if tried and not listening and all(r.status == REFUSED for r in tried):
                rung = Rung(TARGET_PORT, Status.FAIL,
                            f"port {sp.port}: targetPort {sp.target_port} is not a containerPort ({declared_text}) "
                            "and refuses connections",
                            (*evidence, f"{len(tried)} connects to :{sp.target_port} refused ({_sources(tried)})"))
            else:
                note = "but something listens there" if listening else "not tested"
                rung = Rung(TARGET_PORT, Status.WARN,
                            f"port {sp.port}: targetPort {sp.target_port} is not declared ({declared_text}), {note}",
                            evidence)
        if worst is None or (rung.status is Status.FAIL and worst.status is not Status.FAIL):
            worst = rung
    return worst or Rung(TARGET_PORT, Status.OK, "; ".join(oks) + " (declared by the containers)")


def _endpoints(ev: ServiceEvidence, st: _State) -> Rung:
    eps = endpoint_set(ev)
    src = "EndpointSlices" if eps is not None and eps.source == "endpointslices" else "Endpoints"
    causes = [k for k in st.failed if k in (PORTS, SELECTOR, READINESS, TARGET_PORT)]
    if eps is None or not eps.addresses:
        consequence = bool(causes)
        why = f" (follows from {LABELS[causes[0]]})" if consequence else ""
        status = Status.FAIL
        if st.service is not None and not st.service.selector and not consequence:
            return Rung(ENDPOINTS, Status.FAIL, "no endpoints, and no selector that would make some",
                        ("a Service without a selector needs EndpointSlices made by hand or by a controller",))
        evidence: tuple[str, ...] = ()
        if not consequence and st.backends:
            evidence = (f"{plural(len(st.backends), 'pod')} match and are Ready, yet no endpoint lists them",)
        return Rung(ENDPOINTS, status, f"none in {src}{why}", evidence, consequence=consequence)
    ready = eps.ready
    detail = (f"{len(ready)}/{len(eps.addresses)} ready addresses in {plural(eps.objects, src[:-1])}: "
              + ", ".join(sorted(a.ip for a in ready)[:5]))
    ports = ", ".join(f"{p.name + ' ' if p.name else ''}{p.port}" for p in eps.ports)
    if ports:
        detail += f" · ports {ports}"
    if not ready:
        consequence = READINESS in st.failed
        return Rung(ENDPOINTS, Status.FAIL, detail, consequence=consequence)
    missing = [sp for sp in st.ports if endpoint_port(eps, sp) is None]
    if missing and TARGET_PORT not in st.failed:
        return Rung(ENDPOINTS, Status.FAIL, detail + f" · no endpoint port for {missing[0].label()}")
    return Rung(ENDPOINTS, Status.OK, detail)


def sources_of(ev: ServiceEvidence) -> list[Source]:
    """The worker and each node that connected, as a policy sees them."""
    ips: dict[str, str] = {}
    for r in ev.connects:
        if r.source_ip and r.target_kind == "endpoint":
            ips.setdefault(r.source, r.source_ip)
    worker = ev.worker
    pod_ns = worker.namespace if worker.labels is not None else None
    out = [Source("the worker", ips.get("worker", ""), namespace=pod_ns, labels=worker.labels)]
    out += [Source(f"node {n}", ips.get(n, ""), node=n) for n in ev.nodes if n not in ev.node_errors]
    return out


def _source_name(source: Source) -> str:
    return "worker" if source.label == "the worker" else source.node


def denials(ev: ServiceEvidence, st: _State) -> list[tuple[PodBrief, ServicePort, Source, Decision]]:
    out = []
    for pod in st.backends:
        for sp in st.ports:
            number = resolve_port(sp, pod)
            if number is None:
                continue
            for source in sources_of(ev):
                d = decide(ev.policies, pod, number, sp.protocol, source, ev.namespaces)
                if not d.allowed:
                    out.append((pod, sp, source, d))
    return out


def _network_policy(ev: ServiceEvidence, st: _State) -> Rung:
    if not ev.policies_read:
        return Rung(NETWORK_POLICY, Status.INFO, "not read (see the note below)")
    involved = {p.name: p for pod in st.backends for p in isolating(ev.policies, pod)}
    if not involved:
        return Rung(NETWORK_POLICY, Status.OK,
                    f"no NetworkPolicy isolates the pods ({len(ev.policies)} in {ev.namespace})")
    texts = tuple(policy_text(p) for p in involved.values())
    denied = denials(ev, st)
    if not denied:
        return Rung(NETWORK_POLICY, Status.OK,
                    f"{', '.join(involved)} isolate the pods and admit the worker and the nodes; other clients "
                    "only as the rules say", texts)
    dropped, passed = [], []
    for pod, _sp, source, _d in denied:
        tried = [r for r in ev.connects if r.source == _source_name(source) and r.pod == pod.name
                 and r.target_kind == "endpoint"]
        if tried and all(r.status == TIMEOUT for r in tried):
            dropped.append(f"{source.label} → {pod.name}")
        elif any(r.ok for r in tried):
            passed.append(f"{source.label} → {pod.name}")
    names = ", ".join(involved)
    evidence = (*texts, *(f"dropped as the policy says: {d}" for d in dropped[:6]),
                *(f"the policy would drop it, yet it connected: {p}" for p in passed[:6]))
    if dropped:
        verb = "drops" if len(involved) == 1 else "drop"
        return Rung(NETWORK_POLICY, Status.FAIL, f"{names} {verb} connections to the pods ({len(dropped)} seen)",
                    evidence)
    if passed:
        return Rung(NETWORK_POLICY, Status.WARN,
                    f"{names} would drop connections that succeed: no policy engine enforces them?", evidence)
    return Rung(NETWORK_POLICY, Status.WARN, f"{names} would drop the worker's or the nodes' connections", evidence)


def _backend(ev: ServiceEvidence, st: _State) -> Rung:
    tried = [r for r in ev.connects if r.target_kind == "endpoint"]
    if not tried:
        return Rung(BACKEND, Status.INFO, "nothing to connect to")
    ok = [r for r in tried if r.ok]
    detail = f"{len(ok)}/{len(tried)} open from {_sources(tried)}{_p95(ok)}"
    bad = [r for r in tried if not r.ok]
    if not bad:
        return Rung(BACKEND, Status.OK, detail)
    by_target: dict[str, list[ConnectResult]] = {}
    for r in bad:
        by_target.setdefault(f"{r.target} ({r.pod or '?'})", []).append(r)
    evidence = tuple(
        f"{t}: " + ", ".join(sorted({f'{x.status} from {x.source}' for x in rs})) for t, rs in by_target.items()
    )
    explained = (TARGET_PORT in st.failed and all(r.status == REFUSED for r in bad)) or (
        NETWORK_POLICY in st.failed and all(r.status == TIMEOUT for r in bad)
    )
    refused = all(r.status == REFUSED for r in bad)
    what = "nothing listens on" if refused else "no answer from"
    detail = f"{what} {len(by_target)} of {len({r.target for r in tried})} targets · " + detail
    return Rung(BACKEND, Status.FAIL, detail, evidence, consequence=explained)


def _cluster_ip(ev: ServiceEvidence, st: _State) -> Rung:
    s = st.service
    assert s is not None
    if s.headless or s.type == "ExternalName":
        return Rung(CLUSTER_IP, Status.INFO, "no ClusterIP")
    tried = [r for r in ev.connects if r.target_kind == "cluster_ip"]
    if not tried:
        return Rung(CLUSTER_IP, Status.INFO, "not tested")
    ok = [r for r in tried if r.ok]
    detail = f"{len(ok)}/{len(tried)} open from {_sources(tried)}{_p95(ok)}"
    if len(ok) == len(tried):
        return Rung(CLUSTER_IP, Status.OK, detail)
    bad = [r for r in tried if not r.ok]
    evidence = tuple(f"{r.target} from {r.source}: {r.status}" for r in bad[:8])
    endpoint_results = [r for r in ev.connects if r.target_kind == "endpoint"]
    backend_ok = {r.source for r in endpoint_results} - {r.source for r in endpoint_results if not r.ok}
    # A source that reached every endpoint but not the ClusterIP: the Service's rules (kube-proxy).
    unexplained = [r for r in bad if r.source in backend_ok]
    if s.internal_traffic_policy == "Local":
        eps = endpoint_set(ev)
        local_nodes = {a.node for a in (eps.ready if eps is not None else ())}
        unexplained = [r for r in unexplained if r.source == "worker" or r.source in local_nodes]
    return Rung(CLUSTER_IP, Status.FAIL, detail, evidence, consequence=not unexplained)


def _kube_proxy(ev: ServiceEvidence, st: _State, cluster_ip: Rung) -> Rung:
    if not ev.kube_proxy_read:
        return Rung(KUBE_PROXY, Status.INFO, "not read (see the note below)")
    if not ev.kube_proxy:
        return Rung(KUBE_PROXY, Status.INFO,
                    "no kube-proxy pods: a kube-proxy replacement (Azure CNI powered by Cilium) programs Services")
    ready = [p for p in ev.kube_proxy if p.ready]
    nodes = {p.node for p in ev.kube_proxy}
    missing = [n for n in ev.nodes if n not in nodes]
    detail = f"{len(ready)}/{len(ev.kube_proxy)} pods Ready"
    bad = [p for p in ev.kube_proxy if not p.ready]
    evidence = tuple(f"{p.name} on {p.node}: not Ready, {plural(p.restarts, 'restart')}" for p in bad) + tuple(
        f"no kube-proxy pod on {n}" for n in missing
    )
    if not bad and not missing:
        return Rung(KUBE_PROXY, Status.OK, detail)
    failing_from = {r.source for r in ev.connects if r.target_kind == "cluster_ip" and not r.ok}
    if cluster_ip.failed and ({p.node for p in bad} | set(missing)) & failing_from:
        return Rung(KUBE_PROXY, Status.FAIL, detail, evidence)
    return Rung(KUBE_PROXY, Status.WARN, detail, evidence)


def ladder(ev: ServiceEvidence) -> list[Rung]:
    """Every rung in order; rungs after a missing Service are not reached."""
    first = _exists(ev)
    if ev.service is None:
        return [first] + [Rung(k, Status.INFO, "not reached", consequence=True) for k in ORDER[1:]]
    st = _State(ev.service, tcp_ports(ev.service, ev.port), backends(ev.service, ev.pods))
    rungs = [first]

    def add(rung: Rung) -> Rung:
        if rung.status is Status.FAIL and rung.consequence and st.failed and "follows from" not in rung.detail:
            rung = replace(rung, detail=f"{rung.detail} (follows from {LABELS[st.failed[0]]})")
        rungs.append(rung)
        if rung.failed:
            st.failed.append(rung.key)
        return rung

    add(_dns(ev, st))
    add(_ports(ev, st))
    if ev.service.type == "ExternalName":
        return rungs + [Rung(k, Status.INFO, "not applicable to ExternalName") for k in ORDER[3:]]
    add(_selector(ev, st))
    add(_readiness(st))
    add(_target_port(ev, st))
    add(_endpoints(ev, st))
    add(_network_policy(ev, st))
    add(_backend(ev, st))
    cip = add(_cluster_ip(ev, st))
    add(_kube_proxy(ev, st, cip))
    return rungs


def first_failure(rungs: Sequence[Rung]) -> Rung | None:
    return next((r for r in rungs if r.failed), None)


def connect_summary(results: Sequence[ConnectResult]) -> str:
    ok = sum(r.status == OPEN for r in results)
    return f"{ok}/{len(results)} open"
