"""Evidence → ranked hypotheses with their evidence and action plan (the guide's steps 2 and 3).

Each rule is a pure function ``(CheckEvidence) -> Finding | None``.  Scores rank findings:
a layer that is down outranks a flaky one, which outranks a configuration smell.  The
remedies are the guide's, with exact kubectl/az commands to paste.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from workers import findings
from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.check_facts import FAIL_SHARE, by_server, error_kinds, role_label, tally, upstream_records
from workers.analysis.figures import format_ms, pct, plural
from workers.evidence.layers import Layer, ProbeRecord, UpstreamRole
from workers.findings import HIGH, LOW, MEDIUM, Finding, Subject
from workers.report import Hypothesis

GUIDE = (
    "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/dns/"
    "basic-troubleshooting-dns-resolution-problems"
)
COREDNS_CUSTOM_DOC = "https://learn.microsoft.com/azure/aks/coredns-custom"
VNET_DNS_DOC = "https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances"
PRIVATE_LINK_DOC = "https://learn.microsoft.com/azure/dns/private-dns-virtual-network-links"
PRIVATE_ENDPOINT_DNS_DOC = "https://learn.microsoft.com/azure/private-link/private-endpoint-dns"
DEBUG_SERVICE_DOC = "https://kubernetes.io/docs/tasks/debug/debug-application/debug-service/"
DNS_DEBUG_DOC = "https://kubernetes.io/docs/tasks/administer-cluster/dns-debugging-resolution/"
POD_DNS_CONFIG_DOC = "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/#pod-dns-config"
CONNTRACK_ISSUE = "https://github.com/kubernetes/kubernetes/issues/56903"
NETWORK_POLICY_DOC = "https://learn.microsoft.com/azure/aks/use-network-policies"
CONTAINER_INSIGHTS_DOC = "https://learn.microsoft.com/azure/azure-monitor/containers/monitor-kubernetes"

KUBE_SYSTEM = "kube-system"
KS = f"kubectl -n {KUBE_SYSTEM}"



Rule = Callable[[CheckEvidence], Finding | None]


def _share(records: list[ProbeRecord]) -> float:
    return tally(records).fail_share


def _failing(records: list[ProbeRecord]) -> list[ProbeRecord]:
    return [r for r in records if r.status not in ("NOERROR", "NXDOMAIN")]


def _count(records: list[ProbeRecord]) -> str:
    t = tally(records)
    return f"{t.server_failures}/{t.total} failed ({error_kinds(t) or 'none'})"


# ---------------------------------------------------------------------------- CoreDNS


def rule_coredns_down(ev: CheckEvidence) -> Finding | None:
    """No CoreDNS pod answers, or there is none: every pod in the cluster is without DNS."""
    pods = ev.coredns_pods
    recs = ev.records(Layer.COREDNS_POD, names=ev.internal_names)
    if pods and not recs:
        return None
    # Every pod must be failing: one dead pod out of two is rule_one_coredns_pod.
    per_pod = [ev.records(Layer.COREDNS_POD, names=ev.internal_names, target=p.name) for p in pods]
    if pods and any(not rows or _share(rows) < FAIL_SHARE for rows in per_pod):
        return None
    if not pods:
        evidence: tuple[str, ...] = (f"{KS} get pods -l k8s-app=kube-dns returned no pod",)
    else:
        evidence = tuple(
            f"{p.name} ({p.ip} on {p.node}, {'Ready' if p.ready else 'not Ready'}): "
            + _count(ev.records(Layer.COREDNS_POD, names=ev.internal_names, target=p.name))
            for p in pods
        )
    return Finding.of(
        "coredns_down",
        100,
        Hypothesis(
            title="CoreDNS is not answering: no CoreDNS pod resolves cluster names",
            confidence=HIGH,
            evidence=evidence,
            actions=(
                f"{KS} get pods -l k8s-app=kube-dns -o wide",
                f"{KS} describe pods -l k8s-app=kube-dns",
                f"{KS} logs -l k8s-app=kube-dns --tail 100",
                f"{KS} get deployment coredns",
                f"{KS} rollout restart deployment coredns",
            ),
            links=(GUIDE, DNS_DEBUG_DOC),
        ),
    )


def rule_one_coredns_pod(ev: CheckEvidence) -> Finding | None:
    """One CoreDNS pod misbehaves while the others answer (the Service then fails now and then)."""
    if len(ev.coredns_pods) < 2:
        return None
    shares = {p.name: _share(ev.records(Layer.COREDNS_POD, target=p.name)) for p in ev.coredns_pods}
    healthy = [n for n, s in shares.items() if s == 0.0]
    bad_pods = [
        p
        for p in ev.coredns_pods
        # Restarts alone, with every answer right, are rule_coredns_unhealthy's quieter story.
        if shares[p.name] > 0.0 or not p.ready or p.oom_killed
    ]
    if not bad_pods or not healthy or len(bad_pods) >= len(ev.coredns_pods):
        return None
    answering_bad = [p for p in bad_pods if shares[p.name] >= FAIL_SHARE]
    evidence = []
    for p in bad_pods:
        recs = ev.records(Layer.COREDNS_POD, target=p.name)
        flags = [] if p.ready else ["not Ready"]
        if p.restarts:
            flags.append(plural(p.restarts, "restart") + (f", last {p.last_reason}" if p.last_reason else ""))
        if p.oom_killed:
            flags.append("OOMKilled")
        evidence.append(
            f"{p.name} ({p.ip} on {p.node}): {_count(recs)}" + (f"; {', '.join(flags)}" if flags else "")
        )
    evidence.append(f"healthy: {', '.join(healthy)} answered every query")
    svc = tally(ev.records(Layer.SERVICE))
    if svc.server_failures:
        evidence.append(
            f"the Service IP failed {svc.server_failures}/{svc.total} ({pct(svc.server_failures, svc.total)}):"
            " the share of queries it sends to the bad pod"
        )
    name = bad_pods[0].name
    return Finding.of(
        "one_coredns_pod",
        90 if answering_bad else 60,
        Hypothesis(
            title=f"One CoreDNS pod misbehaves: {', '.join(p.name for p in bad_pods)}",
            confidence=HIGH if answering_bad else MEDIUM,
            evidence=tuple(evidence),
            actions=(
                f"{KS} describe pod {name}",
                f"{KS} logs {name} --tail 100",
                f"{KS} logs {name} --previous --tail 100",
                "kubectl top pods -n kube-system -l k8s-app=kube-dns",
                f"kubectl describe node {bad_pods[0].node}",
                f"{KS} delete pod {name}   # the coredns Deployment starts a fresh one",
            ),
            links=(GUIDE, DNS_DEBUG_DOC),
        ),
        subjects=[Subject("pod", p.name, KUBE_SYSTEM) for p in bad_pods],
    )


def rule_coredns_unhealthy(ev: CheckEvidence) -> Finding | None:
    """CoreDNS pods restart, are OOMKilled or not Ready even though they answer now."""
    troubled = [p for p in ev.coredns_pods if p.troubled]
    if not troubled:
        return None
    oom = any(p.oom_killed for p in troubled)
    evidence = tuple(
        f"{p.name}: {'Ready' if p.ready else 'not Ready'}, {plural(p.restarts, 'restart')}"
        + (f", last termination {p.last_reason}" if p.last_reason else "")
        for p in troubled
    )
    return Finding.of(
        "coredns_unhealthy",
        55 if oom else 40,
        Hypothesis(
            title="CoreDNS pods are under resource pressure"
            + (" (OOMKilled: memory limit)" if oom else " (restarts / readiness)"),
            confidence=MEDIUM if oom else LOW,
            evidence=evidence,
            actions=(
                "kubectl top pods -n kube-system -l k8s-app=kube-dns",
                f"{KS} describe pods -l k8s-app=kube-dns | grep -A5 'Last State'",
                f"{KS} logs -l k8s-app=kube-dns --previous --tail 50",
                f"{KS} get configmap coredns-autoscaler -o yaml   # AKS scales CoreDNS replicas from it",
            ),
            links=(GUIDE, CONTAINER_INSIGHTS_DOC),
        ),
        subjects=[Subject("pod", p.name, KUBE_SYSTEM) for p in troubled],
    )


# ---------------------------------------------------------------------------- Service


def rule_service_ip(ev: CheckEvidence) -> Finding | None:
    """The Service IP fails while every CoreDNS pod answers: kube-proxy, endpoints or a network policy."""
    svc = ev.service
    if svc is None:
        return None
    svc_recs = ev.records(Layer.SERVICE)
    pod_recs = ev.records(Layer.COREDNS_POD)
    no_endpoints = svc.ready_endpoints == 0
    if not no_endpoints and (not svc_recs or _share(svc_recs) < FAIL_SHARE):
        return None
    if pod_recs and _share(pod_recs) > 0.0:
        return None  # the pods fail too: that is a CoreDNS problem, ranked by its own rules
    evidence = [f"Service kube-dns {svc.ip}: {_count(svc_recs)}"]
    pods_t = tally(pod_recs)
    if pod_recs:
        evidence.append(f"every CoreDNS pod answered directly ({pods_t.ok}/{pods_t.total} NOERROR)")
    evidence.append(
        f"ready endpoints: {svc.ready_endpoints}"
        + (f" ({', '.join(svc.endpoint_ips)})" if svc.endpoint_ips else "")
        + (f"; selector {svc.selector}" if svc.selector else "")
    )
    if no_endpoints:
        title = "The kube-dns Service has no ready endpoints: its selector matches no Ready CoreDNS pod"
        actions: tuple[str, ...] = (
            f"{KS} get endpointslices -l kubernetes.io/service-name=kube-dns",
            f"{KS} get svc kube-dns -o jsonpath='{{.spec.selector}}'",
            f"{KS} get pods -l k8s-app=kube-dns --show-labels",
        )
    else:
        title = "The CoreDNS Service IP fails while every CoreDNS pod answers (kube-proxy or network policy)"
        actions = (
            f"{KS} get endpointslices -l kubernetes.io/service-name=kube-dns",
            f"{KS} get pods -l component=kube-proxy -o wide",
            f"{KS} logs -l component=kube-proxy --tail 100",
            "kubectl get networkpolicy -A",
        )
    return Finding.of(
        "service_ip",
        95,
        Hypothesis(title=title, confidence=HIGH, evidence=tuple(evidence), actions=actions,
                   links=(GUIDE, DEBUG_SERVICE_DOC, NETWORK_POLICY_DOC)),
    )


# ---------------------------------------------------------------------------- upstreams


def _forwarded(ev: CheckEvidence, name: str) -> bool:
    """True when a coredns-custom forwarder (not the default upstream) serves ``name``."""
    bare = name.rstrip(".").lower()
    for f in ev.custom.forwarders:
        zone = f.zone.rstrip(".").lower()
        if zone and (bare == zone or bare.endswith("." + zone)):
            return True
    return False


def _vnet_names(ev: CheckEvidence) -> set[str]:
    """External names the virtual network's DNS is responsible for (not custom-forwarded zones)."""
    return {n for n in ev.external_names if not _forwarded(ev, n)}


def _upstream_groups(ev: CheckEvidence) -> dict[tuple[str, str], list[ProbeRecord]]:
    """Virtual-network-level servers, without the coredns-custom forwarders (their own rule)."""
    names = _vnet_names(ev)
    return {
        k: [r for r in v if r.name in names]
        for k, v in by_server(upstream_records(ev)).items()
        if k[1] != UpstreamRole.COREDNS_FORWARDER
    }


def rule_vnet_dns(ev: CheckEvidence) -> Finding | None:
    """The virtual network's DNS fails (times out, SERVFAILs, drops some, is slow) while cluster names work."""
    internal = ev.records((Layer.COREDNS_POD, Layer.SERVICE), names=ev.internal_names)
    if internal and _share(internal) >= FAIL_SHARE:
        return None  # CoreDNS itself is down: not an upstream story
    groups = _upstream_groups(ev)
    external_coredns = ev.records((Layer.COREDNS_POD, Layer.SERVICE), names=_vnet_names(ev))
    up_all = [r for rows in groups.values() for r in rows]
    up_t = tally(up_all)
    core_t = tally(external_coredns)
    direct_t = tally(r for r in up_all if r.layer is Layer.VNET_DNS)
    slow_up = [r for r in up_all if r.ok and (r.latency_ms or 0) >= 1000]
    late_servfail = [r for r in external_coredns if r.status == "SERVFAIL" and (r.latency_ms or 0) >= 4500]
    if not (up_t.server_failures or slow_up or late_servfail):
        return None
    if not (core_t.server_failures or direct_t.server_failures or slow_up):
        return None  # only the nodes' own queries fail: rule_node_upstream
    evidence = []
    for (server, role), rows in sorted(groups.items()):
        if rows:
            t = tally(rows)
            line = f"{role_label(role)} {server}: {_count(rows)}"
            if t.total > t.timeouts:
                line += f", p95 {format_ms(t.p95_ms, fine=False)}"
            evidence.append(line)
    if internal:
        it = tally(internal)
        evidence.append(f"cluster names at CoreDNS: {it.ok}/{it.total} NOERROR")
    if external_coredns:
        evidence.append(f"external names through CoreDNS: {_count(external_coredns)}")
    if late_servfail:
        evidence.append(
            f"{len(late_servfail)} SERVFAIL answers from CoreDNS after ≥ 4.5 s: "
            "its forward plugin gave up on the upstream"
        )
    roles = {role for (_, role), rows in groups.items() if _failing(rows) or any(r in slow_up for r in rows)}
    if not roles:
        roles = {role for (_, role), rows in groups.items() if rows}
    who = " / ".join(sorted(role_label(r) for r in roles)) or "upstream"
    if up_t.total and up_t.timeouts == up_t.total:
        what, conf, score = "does not answer (every query timed out)", HIGH, 85
    elif up_t.servfail and up_t.servfail >= up_t.server_failures / 2 and up_t.fail_share >= FAIL_SHARE:
        what, conf, score = "answers SERVFAIL", HIGH, 85
    elif slow_up or (late_servfail and not up_t.server_failures):
        worst = max((r.latency_ms or 0 for r in slow_up), default=0.0)
        what, conf, score = (
            f"answers slowly (up to {format_ms(worst, fine=False)})" if slow_up else "is too slow for CoreDNS",
            HIGH if late_servfail or worst >= 5000 else MEDIUM,
            75,
        )
    elif up_t.fail_share >= FAIL_SHARE:
        what, conf, score = f"fails {pct(up_t.server_failures, up_t.total)} of queries", HIGH, 80
    else:
        what, conf, score = (
            f"fails intermittently ({up_t.server_failures}/{up_t.total}, {pct(up_t.server_failures, up_t.total)})",
            MEDIUM,
            70,
        )
    custom = UpstreamRole.CUSTOM_VNET_DNS in roles
    actions = [
        "az network vnet show -g <vnet-resource-group> -n <vnet-name> --query dhcpOptions.dnsServers",
        "kubectl debug node/<node> -it --image=mcr.microsoft.com/cbl-mariner/busybox:2.0 -- "
        "nslookup <external-domain> <upstream-ip>",
        f"{KS} logs -l k8s-app=kube-dns --tail 200 | grep -i -E 'timeout|SERVFAIL|i/o'",
    ]
    if custom:
        actions.append("on the custom DNS server: check its health and that it forwards to 168.63.129.16")
    else:
        actions.append(
            "check NSG / route table / firewall rules on the node subnet for UDP and TCP 53 to 168.63.129.16"
        )
    return Finding.of(
        "vnet_dns",
        score,
        Hypothesis(
            title=f"The virtual network's DNS ({who}) {what} while cluster names work",
            confidence=conf,
            evidence=tuple(evidence),
            actions=tuple(actions),
            links=(GUIDE, VNET_DNS_DOC),
        ),
    )


def rule_node_upstream(ev: CheckEvidence) -> Finding | None:
    """Nodes can't reach their own upstreams, while CoreDNS still resolves external names."""
    node_recs = [r for r in ev.records(Layer.NODE) if r.name in ev.external_names]
    if not node_recs or _share(node_recs) == 0.0:
        return None
    core = ev.records((Layer.COREDNS_POD, Layer.SERVICE), names=ev.external_names)
    direct = [r for r in ev.records(Layer.VNET_DNS) if r.role != UpstreamRole.COREDNS_FORWARDER]
    if core and _share(core) > 0.0:
        return None  # pods fail too: the vnet_dns rule tells that story
    if direct and _share(direct) > 0.0:
        return None  # the worker cannot reach the virtual network's DNS either: rule_vnet_dns
    per_node: dict[str, list[ProbeRecord]] = defaultdict(list)
    for r in node_recs:
        per_node[r.target].append(r)
    bad = {n: rows for n, rows in per_node.items() if _share(rows) > 0.0}
    evidence = [f"node {n} → {rows[0].server}: {_count(rows)}" for n, rows in sorted(bad.items())]
    if core:
        evidence.append(f"external names through CoreDNS: {tally(core).ok}/{len(core)} NOERROR")
    if direct:
        evidence.append(
            f"the worker reached the virtual network's DNS directly: {tally(direct).ok}/{len(direct)} NOERROR"
        )
    node = sorted(bad)[0]
    return Finding.of(
        "node_upstream",
        82,
        Hypothesis(
            title=f"Node-level DNS fails on {len(bad)}/{len(per_node)} probed nodes while pods resolve through CoreDNS",
            confidence=HIGH if _share(node_recs) >= FAIL_SHARE else MEDIUM,
            evidence=tuple(evidence),
            actions=(
                f"kubectl debug node/{node} -it --image=mcr.microsoft.com/cbl-mariner/busybox:2.0 -- "
                "cat /host/etc/resolv.conf",
                f"kubectl debug node/{node} -it --image=mcr.microsoft.com/cbl-mariner/busybox:2.0 -- "
                f"nslookup {ev.external_names[0] if ev.external_names else '<external-domain>'} {bad[node][0].server}",
                "check NSG / UDR rules of the node subnet for UDP and TCP 53 to the upstream",
                f"kubectl describe node {node}",
            ),
            links=(GUIDE, VNET_DNS_DOC),
        ),
    )


def rule_custom_forwarder(ev: CheckEvidence) -> Finding | None:
    """A forwarder from coredns-custom does not answer."""
    fwd = [r for r in upstream_records(ev) if r.role == UpstreamRole.COREDNS_FORWARDER]
    if not fwd:
        return None
    groups = by_server(fwd)
    bad = {srv: rows for (srv, _), rows in groups.items() if _share(rows) > 0.0}
    if not bad:
        return None
    zones = {f.zone: f for f in ev.custom.forwarders if any(s.split(":")[0] in bad for s in f.servers)}
    evidence = [f"CoreDNS custom forwarder {srv}: {_count(rows)}" for srv, rows in sorted(bad.items())]
    for zone, f in zones.items():
        evidence.append(f"coredns-custom key {f.key}: forward {zone} → {' '.join(f.servers)}")
        zone_recs = [
            r
            for r in ev.records((Layer.COREDNS_POD, Layer.SERVICE))
            if zone == "." or r.name.rstrip(".").endswith(zone.rstrip("."))
        ]
        if zone_recs:
            evidence.append(f"names in {zone} through CoreDNS: {_count(zone_recs)}")
    worst = max(_share(rows) for rows in bad.values())
    return Finding.of(
        "custom_forwarder",
        88 if worst >= FAIL_SHARE else 65,
        Hypothesis(
            title=f"CoreDNS custom forwarder unreachable: {', '.join(sorted(bad))}",
            confidence=HIGH if worst >= FAIL_SHARE else MEDIUM,
            evidence=tuple(evidence),
            actions=(
                f"{KS} get configmap coredns-custom -o yaml",
                "kubectl debug node/<node> -it --image=mcr.microsoft.com/cbl-mariner/busybox:2.0 -- "
                f"nslookup <name-in-zone> {sorted(bad)[0]}",
                "check the forwarder's health and NSG/firewall rules for UDP and TCP 53 from the node subnet",
                f"{KS} edit configmap coredns-custom   # fix or remove the forward line",
                f"{KS} rollout restart deployment coredns",
            ),
            links=(COREDNS_CUSTOM_DOC, GUIDE),
        ),
    )


# ---------------------------------------------------------------------------- names


def rule_private_zone(ev: CheckEvidence) -> Finding | None:
    """A name gets NXDOMAIN everywhere while other external names resolve: a private DNS zone not linked."""
    findings = []
    for name in ev.external_names:
        recs = [r for r in ev.probes if r.name == name and r.layer is not Layer.SEARCH]
        a_recs = [r for r in recs if r.rdtype == "A"] or recs
        if not a_recs or not all(r.status == "NXDOMAIN" for r in a_recs):
            continue
        others = [r for r in ev.probes if r.name in ev.external_names and r.name != name]
        if others and not any(r.ok for r in others):
            continue  # nothing external resolves: an upstream problem, not this name
        findings.append((name, recs))
    if not findings:
        return None
    name, recs = findings[0]
    layers = sorted({r.layer.label for r in recs})
    private = any(k in name.lower() for k in ("privatelink", ".private", ".internal", ".local", ".corp"))
    custom_vnet = sorted({ns for p in ev.node_probes for ns in p.nameservers if ns != ev.azure_dns})
    zone = name.split(".", 1)[1] if "." in name else name
    evidence = [f"{n}: NXDOMAIN at {', '.join(sorted({r.layer.label for r in rs}))}" for n, rs in findings]
    resolved = sorted({r.name for r in ev.probes if r.ok and r.name in ev.external_names})
    if resolved:
        evidence.append(f"other external names resolve: {', '.join(resolved)}")
    if custom_vnet:
        evidence.append(f"the virtual network uses custom DNS servers {', '.join(custom_vnet)}")
    actions = [
        f"az network private-dns zone list --query \"[?name=='{zone}']\" -o table",
        f"az network private-dns link vnet list -g <zone-resource-group> -z {zone} -o table",
        f"az network private-dns link vnet create -g <zone-resource-group> -z {zone} -n <link-name> "
        "-v <aks-vnet-id> -e false",
        f"az network private-dns record-set list -g <zone-resource-group> -z {zone} -o table",
    ]
    if custom_vnet:
        actions.append(f"on {', '.join(custom_vnet)}: add a conditional forwarder for {zone} to 168.63.129.16")
    return Finding.of(
        "private_zone",
        78 if private else 50,
        Hypothesis(
            title=f"NXDOMAIN for {name} at {', '.join(layers)}: a private DNS zone not linked to the AKS virtual "
            "network (or the record does not exist)",
            confidence=HIGH if private else MEDIUM,
            evidence=tuple(evidence),
            actions=tuple(actions),
            links=(PRIVATE_LINK_DOC, PRIVATE_ENDPOINT_DNS_DOC, GUIDE),
        ),
    )


def rule_conntrack(ev: CheckEvidence) -> Finding | None:
    """Time-outs on AAAA only, or on one of each A/AAAA pair, on the pod side: the conntrack race."""
    pod_side = ev.records((Layer.COREDNS_POD, Layer.SERVICE))
    timeouts = [r for r in pod_side if r.status == "TIMEOUT"]
    if not timeouts:
        return None
    if tally(pod_side).fail_share >= FAIL_SHARE:
        return None  # a dead pod or Service, not a race
    upstream_timeouts = [r for r in upstream_records(ev) if r.status == "TIMEOUT"]
    internal_timeouts = [r for r in timeouts if r.name in ev.internal_names]
    if upstream_timeouts and not internal_timeouts:
        return None  # the upstream drops: rule_vnet_dns
    aaaa_only = all(r.rdtype == "AAAA" for r in timeouts)
    pairs: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
    for r in pod_side:
        if r.status == "TIMEOUT":
            pairs[(r.layer, r.target, r.name, r.attempt)].add(r.rdtype)
    half_pairs = sum(1 for types in pairs.values() if len(types) == 1)
    if not (aaaa_only or half_pairs >= max(1, len(pairs) // 2)):
        return None
    evidence = [
        f"{len(timeouts)}/{len(pod_side)} pod-side queries timed out"
        + (", all AAAA" if aaaa_only else f"; in {half_pairs}/{len(pairs)} A/AAAA pairs only one of the two"),
    ]
    if internal_timeouts:
        evidence.append(f"cluster names time out too ({len(internal_timeouts)}): CoreDNS answers those itself")
    if not upstream_timeouts:
        evidence.append("no time-out at the upstreams")
    return Finding.of(
        "conntrack_race",
        70,
        Hypothesis(
            title="Intermittent time-outs on A/AAAA pairs: the conntrack race of parallel UDP queries",
            confidence=MEDIUM,
            evidence=tuple(evidence),
            actions=(
                "add to the client pod spec: dnsConfig: {options: [{name: single-request-reopen}]}",
                "or use TCP for DNS in the client (dnsConfig option use-vc) or NodeLocal DNSCache",
                "kubectl get pods -n kube-system -l component=kube-proxy -o wide",
                "kubectl debug node/<node> -it --image=mcr.microsoft.com/cbl-mariner/busybox:2.0 -- "
                "cat /proc/net/stat/nf_conntrack",
            ),
            links=(CONNTRACK_ISSUE, DNS_DEBUG_DOC, GUIDE),
        ),
    )


def rule_search_storm(ev: CheckEvidence) -> Finding | None:
    """Every short name walks the whole search list: each lookup multiplies queries and failure chances."""
    storms = [w for w in ev.walks if w.queries >= 8]
    if not storms:
        return None
    troubled = [
        w for w in storms if any(s not in ("NOERROR", "NXDOMAIN") for s in w.statuses) or w.latency_ms >= 1000
    ]
    if not troubled:
        return None
    w = troubled[0]
    evidence = tuple(
        f"{x.name}: {x.queries} queries for one lookup (ndots:{x.ndots}; tried {', '.join(x.candidates)}; "
        f"statuses {', '.join(x.statuses)}; {format_ms(x.latency_ms, fine=False)} in turn)"
        for x in troubled
    )
    return Finding.of(
        "search_storm",
        45,
        Hypothesis(
            title=f"Search-list expansion storm: one lookup of {w.name} costs {w.queries} queries",
            confidence=MEDIUM,
            evidence=evidence,
            actions=(
                f"use the fully qualified name with a trailing dot in the application: {w.name.rstrip('.')}.",
                "lower ndots for the client pod: dnsConfig: {options: [{name: ndots, value: \"2\"}]}",
                f"{KS} logs -l k8s-app=kube-dns --tail 200 | grep NXDOMAIN",
            ),
            links=(POD_DNS_CONFIG_DOC, GUIDE),
        ),
    )


def rule_node_pressure(ev: CheckEvidence) -> Finding | None:
    """Nodes NotReady, under pressure or over-committed: time-outs come from resource exhaustion."""
    coredns_nodes = {p.node for p in ev.coredns_pods}
    # Time-outs on the pod side (CoreDNS pods, Service) are what exhaustion of a CoreDNS node looks like;
    # upstream time-outs are not evidence against the nodes.
    pod_timeouts = tally(ev.records((Layer.COREDNS_POD, Layer.SERVICE))).timeouts
    # Limits above allocatable are common (AKS's own CoreDNS limit is 3 CPUs): a cause worth naming
    # only with such time-outs; NotReady and pressure conditions are worth naming on their own.
    hot = [
        n
        for n in ev.nodes
        if not n.ready or n.pressure or (n.overcommitted and pod_timeouts and n.name in coredns_nodes)
    ]
    if not hot:
        return None
    evidence = []
    for n in hot:
        issues = [] if n.ready else ["NotReady"]
        issues += list(n.pressure)
        if n.overcommitted:
            issues.append(f"limits CPU {n.cpu_limits_pct}%, memory {n.memory_limits_pct}% of allocatable")
        host = " (hosts a CoreDNS pod)" if n.name in coredns_nodes else ""
        evidence.append(f"{n.name}{host}: {', '.join(issues)}")
    if pod_timeouts:
        evidence.append(f"{pod_timeouts} time-outs on the pod side (CoreDNS pods, Service)")
    hosts = any(n.name in coredns_nodes for n in hot)
    measured = any(not n.ready or n.pressure for n in hot)  # conditions the kubelet reported, not limits
    failures = pod_timeouts
    return Finding.of(
        "node_pressure",
        50 if hosts and failures and measured else 25,
        Hypothesis(
            title="Node resource exhaustion or NotReady nodes" + (" hosting CoreDNS" if hosts else ""),
            confidence=MEDIUM if hosts and failures and measured else LOW,
            evidence=tuple(evidence),
            actions=(
                "kubectl top nodes",
                "kubectl describe node | grep -A5 '^Name:\\|^Allocated resources:' | "
                "grep -v '.kubernetes.io\\|^Roles:\\|Labels:'",
                f"kubectl describe node {hot[0].name}",
            ),
            links=(GUIDE, CONTAINER_INSIGHTS_DOC),
        ),
        subjects=[Subject("node", n.name) for n in hot],
    )


def rule_apiserver_link(ev: CheckEvidence) -> Finding | None:
    """Evidence that points at the API server: `apiserver` is the next command (issue 12)."""
    at_pods = ev.records(Layer.COREDNS_POD)
    internal = [r for r in at_pods if r.name in ev.internal_names]
    external = [r for r in at_pods if r.name in ev.external_names]
    # CoreDNS answers the world but not the cluster: its kubernetes plugin lacks data from the API server
    # (its log then says `Failed to list`; it answers SERVFAIL until the first sync).
    plugin = bool(internal) and all(r.status == "SERVFAIL" for r in internal) and any(r.ok for r in external)
    api_notes = [n for n in ev.notes if "Kubernetes API unreachable" in n or "(HTTP 401)" in n]
    if not plugin and not api_notes:
        return None
    evidence = list(api_notes)
    if plugin:
        evidence.insert(0, f"cluster names: SERVFAIL at every CoreDNS pod ({len(internal)} queries) while external "
                           "names resolve through the same pods")
    return Finding.of(
        "apiserver_link",
        97 if plugin else 60,
        Hypothesis(
            title="CoreDNS (or the worker) cannot read from the API server: run `/aksdns apiserver`",
            confidence=HIGH if plugin else MEDIUM,
            evidence=tuple(evidence),
            actions=(
                "/aksdns apiserver   # each stage from the worker and every node, and the cause",
                f"{KS} logs -l k8s-app=kube-dns --tail 200 | grep -i -E 'failed to list|unauthorized|forbidden'",
                "kubectl get clusterrolebinding system:coredns -o yaml",
            ),
            links=(GUIDE,),
        ),
    )


def rule_probe_pods(ev: CheckEvidence) -> Finding | None:
    """Node-level probe pods could not run: the node layer is unknown, say so."""
    failed = [p for p in ev.node_probes if not p.ok]
    if not failed and not (not ev.node_probes and ev.notes):
        return None
    evidence = tuple(f"{p.node}: {p.error}" for p in failed) + ev.notes
    return Finding.of(
        "probe_pods",
        20,
        Hypothesis(
            title="The node layer could not be fully probed",
            confidence=LOW,
            evidence=evidence,
            actions=(
                "kubectl get pods -n <aksdns-namespace> -l app.kubernetes.io/managed-by=aksdns -o wide",
                "kubectl get events -n <aksdns-namespace> --sort-by=.lastTimestamp | tail -20",
            ),
            links=(GUIDE,),
        ),
    )


RULES: tuple[Rule, ...] = (
    rule_coredns_down,
    rule_service_ip,
    rule_one_coredns_pod,
    rule_custom_forwarder,
    rule_vnet_dns,
    rule_node_upstream,
    rule_private_zone,
    rule_conntrack,
    rule_coredns_unhealthy,
    rule_node_pressure,
    rule_search_storm,
    rule_apiserver_link,
    rule_probe_pods,
)


def all_healthy(ev: CheckEvidence) -> Finding:
    """Said plainly when no rule fires."""
    t = tally(ev.probes)
    layers = sorted({r.layer.label for r in ev.probes})
    p95 = format_ms(t.p95_ms, fine=False)
    evidence = [f"{t.ok}/{t.total} queries NOERROR across {', '.join(layers) or 'no layer'}; p95 {p95}"]
    evidence.append(
        f"{sum(p.ready for p in ev.coredns_pods)}/{len(ev.coredns_pods)} CoreDNS pods Ready, no recent restarts"
    )
    if ev.custom.present:
        evidence.append("custom CoreDNS configuration present and answering")
    return Finding.of(
        "all_healthy",
        0,
        Hypothesis(
            title="All healthy: every layer answered, nothing points at DNS right now",
            confidence=HIGH,
            evidence=tuple(evidence),
            actions=(
                "if the problem is intermittent, run again with --repeat 20",
                "if one application fails, check its own dnsConfig and the name it asks for (a trailing dot?)",
                "capture traffic while it happens: /aksdns capture --coredns",
            ),
            links=(GUIDE,),
        ),
    )


def diagnose(ev: CheckEvidence) -> list[Finding]:
    """Check's rule set: every finding, highest score first; "all healthy" when nothing fired."""
    return findings.diagnose(ev, RULES, when_none=_nothing_fired, background=frozenset({"probe_pods"}))


def _nothing_fired(ev: CheckEvidence) -> Finding:
    return unexplained(ev) if tally(ev.probes).failed else all_healthy(ev)


def unexplained(ev: CheckEvidence) -> Finding:
    """Failures no rule recognises: show them and point at the next step of the guide."""
    bad = [r for r in ev.probes if not r.ok]
    groups: dict[tuple[str, str], list[ProbeRecord]] = defaultdict(list)
    for r in bad:
        groups[(r.layer.label, r.name)].append(r)
    evidence = tuple(
        f"{layer}: {name} {error_kinds(tally(rows))}" for (layer, name), rows in sorted(groups.items())
    )
    return Finding.of(
        "unexplained",
        10,
        Hypothesis(
            title="Some queries failed in a way no rule recognises",
            confidence=LOW,
            evidence=evidence[:8],
            actions=(
                f"{KS} logs -l k8s-app=kube-dns --tail 200",
                "capture traffic while it happens: /aksdns capture --coredns",
            ),
            links=(GUIDE,),
        ),
    )
