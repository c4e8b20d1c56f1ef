"""Health evidence → ranked findings (one rule set, run by ``workers.findings.diagnose``).

Each rule is a pure ``(HealthEvidence) -> Finding | None``. Scores: CoreDNS down or crashing and
LocalDNS dead outrank a failing forwarder, which outranks resource risks, configuration smells and
low-trust signals (Node Problem Detector events).
"""

from __future__ import annotations

from collections.abc import Callable

from workers import findings
from workers.analysis.figures import plural
from workers.analysis.health_facts import (
    COLD_CACHE_RATIO,
    COLD_MIN_REQUESTS,
    all_rates,
    cpu_limit_share,
    hot_pod,
    memory_limit_share,
    restart_title,
    throttling_risk,
)
from workers.analysis.health_quantity import Quantity
from workers.evidence.health import HealthEvidence, LogClass, NodeHealth, PodHealth
from workers.findings import HIGH, LOW, MEDIUM, Finding, Subject
from workers.report import Hypothesis

GUIDE = (
    "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/dns/"
    "basic-troubleshooting-dns-resolution-problems"
)
COREDNS_CUSTOM_DOC = "https://learn.microsoft.com/azure/aks/coredns-custom"
LOOP_DOC = "https://coredns.io/plugins/loop/#troubleshooting"
METRICS_SERVER_DOC = "https://github.com/kubernetes-sigs/metrics-server#readme"
LOCALDNS_DOC = "https://learn.microsoft.com/azure/aks/localdns-custom"
NPD_DOC = "https://learn.microsoft.com/azure/aks/node-problem-detector"
KS = "kubectl -n kube-system"

Rule = Callable[[HealthEvidence], Finding | None]
BUSY_SHARE = 0.8


def _log(ev: HealthEvidence, kind: LogClass) -> int:
    return sum(s.count for s in ev.logs if s.kind is kind)


def _samples(ev: HealthEvidence, kind: LogClass) -> tuple[str, ...]:
    return next((s.samples for s in ev.logs if s.kind is kind), ())


def _pods(names: list[PodHealth]) -> list[Subject]:
    return [Subject("pod", p.name, "kube-system") for p in names]


def _tail(p: PodHealth, lines: int = 3) -> tuple[str, ...]:
    return tuple(f"{p.name} previous log: {line[:200]}" for line in p.previous_log_tail[-lines:])


def rule_forward_loop(ev: HealthEvidence) -> Finding | None:
    """CoreDNS's loop plugin found its own queries coming back and made CoreDNS exit."""
    looped = [p for p in ev.pods if any("plugin/loop" in line for line in p.previous_log_tail)]
    count = _log(ev, LogClass.LOOP)
    if not looped and not count:
        return None
    evidence = [f"{p.name}: {plural(p.restarts, 'restart')}, {restart_title(p)}" for p in looped]
    evidence += list(_samples(ev, LogClass.LOOP)[:2]) or [line for p in looped for line in _tail(p, 2)]
    return Finding.of("forward_loop", 97, Hypothesis(
        title="CoreDNS detects a forwarding loop and exits (plugin/loop)",
        confidence=HIGH,
        evidence=tuple(evidence),
        actions=(
            f"{KS} logs -l k8s-app=kube-dns --previous --tail 20 | grep plugin/loop",
            f"{KS} get configmap coredns-custom -o yaml   # a forward to the cluster's own DNS (10.0.0.10, a pod IP)?",
            "cat /etc/resolv.conf on the nodes: `forward . /etc/resolv.conf` must not lead back to CoreDNS",
            f"{KS} delete configmap coredns-custom   # only if the loop came with a custom forward; back it up first",
        ),
        links=(LOOP_DOC, COREDNS_CUSTOM_DOC),
    ), subjects=_pods(looped))


def rule_oom(ev: HealthEvidence) -> Finding | None:
    oom = [p for p in ev.pods if p.last_reason == "OOMKilled"]
    if not oom:
        return None
    evidence = []
    for p in oom:
        share = memory_limit_share(p)
        now = f"; uses {p.usage.memory_mi}Mi now ({share:.0%} of the limit)" if p.usage and share is not None else ""
        evidence.append(f"{p.name}: {plural(p.restarts, 'restart')}, {restart_title(p)}, memory limit "
                        f"{p.resources.memory_limit or 'none'}{now}")
    down = all(not p.ready for p in ev.pods)
    return Finding.of("coredns_oomkilled", 88 if down else 72, Hypothesis(
        title="CoreDNS was OOMKilled: its memory limit is too low for its load",
        confidence=HIGH,
        evidence=tuple(evidence),
        actions=(
            "kubectl top pods -n kube-system -l k8s-app=kube-dns",
            f"{KS} describe pod {oom[0].name} | grep -A6 'Last State'",
            f"{KS} get configmap coredns-autoscaler -o yaml   # more replicas share the load (AKS manages limits)",
            f"{KS} get configmap coredns-custom -o yaml   # a `log` plugin or a huge hosts file costs memory",
        ),
        links=(GUIDE,),
    ), subjects=_pods(oom))


def rule_crash(ev: HealthEvidence) -> Finding | None:
    """Restarts whose last termination was Error: a crash, told apart from resource pressure."""
    crashed = [p for p in ev.pods if p.last_reason == "Error" and p.restarts
               and not any("plugin/loop" in line for line in p.previous_log_tail)]
    if not crashed:
        return None
    evidence = [f"{p.name}: {plural(p.restarts, 'restart')}, {restart_title(p)}" for p in crashed]
    for p in crashed:
        evidence += list(_tail(p))
    looping = any(p.waiting_reason == "CrashLoopBackOff" for p in crashed)
    return Finding.of("coredns_crash", 82 if looping or all(not p.ready for p in ev.pods) else 66, Hypothesis(
        title="CoreDNS crashes (exit Error)" + (", in CrashLoopBackOff" if looping else ""),
        confidence=HIGH if any(p.previous_log_tail for p in crashed) else MEDIUM,
        evidence=tuple(evidence),
        actions=(
            f"{KS} logs {crashed[0].name} --previous --tail 50",
            f"{KS} describe pod {crashed[0].name}",
            f"{KS} get configmap coredns coredns-custom -o yaml",
        ),
        links=(GUIDE, COREDNS_CUSTOM_DOC),
    ), subjects=_pods(crashed))


def rule_not_ready(ev: HealthEvidence) -> Finding | None:
    bad = [p for p in ev.pods if not p.ready and not p.restarts]
    if not ev.pods:
        return Finding.of("coredns_missing", 100, Hypothesis(
            title="No CoreDNS pod found (label k8s-app=kube-dns)", confidence=HIGH,
            evidence=(f"{KS} get pods -l k8s-app=kube-dns returned nothing",),
            actions=(f"{KS} get deployment coredns", f"{KS} get events --sort-by=.lastTimestamp | tail -20"),
            links=(GUIDE,)))
    if not bad:
        return None
    return Finding.of("coredns_not_ready", 70, Hypothesis(
        title=f"CoreDNS pods not Ready: {', '.join(p.name for p in bad)}", confidence=MEDIUM,
        evidence=tuple(f"{p.name}: {p.phase}, not Ready{', ' + p.waiting_reason if p.waiting_reason else ''}"
                       f" on {p.node}" for p in bad),
        actions=(f"{KS} describe pod {bad[0].name}", f"kubectl describe node {bad[0].node}"),
        links=(GUIDE,)), subjects=_pods(bad))


def rule_panics(ev: HealthEvidence) -> Finding | None:
    rates = [r for r in all_rates(ev) if r.panics_total > 0]
    count = _log(ev, LogClass.PANIC)
    if not rates and not count:
        return None
    evidence = [f"{r.pod}: coredns_panics_total {r.panics_total:.0f} ({r.panics_new:.0f} during the scrape)"
                for r in rates] + list(_samples(ev, LogClass.PANIC))
    return Finding.of("coredns_panics", 78, Hypothesis(
        title="CoreDNS panics", confidence=HIGH, evidence=tuple(evidence),
        actions=(f"{KS} logs -l k8s-app=kube-dns --tail 200 | grep -B2 -A10 panic",
                 "open a support case with the panic's stack trace"),
        links=(GUIDE,)))


def rule_localdns_dead(ev: HealthEvidence) -> Finding | None:
    dead = [n for n in ev.localdns if n.dead]
    if not dead:
        return None
    evidence = []
    for n in dead:
        statuses = sorted({f"{r.server} {r.status}" for r in n.records})
        evidence.append(f"{n.node}: LocalDNS does not answer ({', '.join(statuses)})")
    alive = [n.node for n in ev.localdns if n.enabled and n.answering]
    if alive:
        evidence.append(f"answering on {', '.join(alive)}")
    return Finding.of("localdns_dead", 92, Hypothesis(
        title=f"LocalDNS is dead on {', '.join(n.node for n in dead)}: nothing on that node resolves",
        confidence=HIGH, evidence=tuple(evidence),
        actions=(f"az vmss run-command invoke ... --scripts 'systemctl status localdns'   # node {dead[0].node}",
                 "systemctl restart localdns   # on the node (or reimage it)",
                 f"kubectl cordon {dead[0].node} && kubectl drain {dead[0].node} --ignore-daemonsets"),
        links=(LOCALDNS_DOC,)), subjects=[Subject("node", n.node) for n in dead])


def rule_failing_forwarder(ev: HealthEvidence) -> Finding | None:
    """Health checks of a forwarder fail, or CoreDNS logs i/o time-outs to its upstream."""
    failing: dict[str, float] = {}
    for r in all_rates(ev):
        for to, n in r.healthcheck_failures.items():
            failing[to] = failing.get(to, 0.0) + n
    timeouts = _log(ev, LogClass.UPSTREAM_TIMEOUT)
    if not failing and not timeouts and not ev.health_check_errors:
        return None
    evidence = [f"forwarder {to}: {n:.0f} failed health checks during the scrape" for to, n in failing.items()]
    if timeouts:
        evidence.append(f"{timeouts} upstream i/o time-outs in the logs of the last {ev.minutes} min "
                        "(health checks of `. NS` not counted)")
        evidence += list(_samples(ev, LogClass.UPSTREAM_TIMEOUT)[:2])
    if ev.health_check_errors:
        evidence.append(f"{ev.health_check_errors} failed `. NS` health checks logged")
    return Finding.of("failing_forwarder", 84 if timeouts or failing else 50, Hypothesis(
        title="A CoreDNS forwarder (upstream) is failing: " + (", ".join(failing) or "upstream time-outs"),
        confidence=HIGH if failing and timeouts else MEDIUM, evidence=tuple(evidence),
        actions=(f"{KS} logs -l k8s-app=kube-dns --since={ev.minutes}m | grep -v ' . NS' | grep 'i/o timeout'",
                 "/aksdns check   # asks the upstream from the nodes and from the worker",
                 f"{KS} get configmap coredns-custom -o yaml   # custom forwarders"),
        links=(GUIDE,)))


def rule_bad_config(ev: HealthEvidence) -> Finding | None:
    critical = [i for i in ev.config_issues if i.severity == "critical"]
    reload_errors = _log(ev, LogClass.RELOAD_ERROR)
    reload_failed = max((r.reload_failures for r in all_rates(ev)), default=0.0)
    if not critical:
        return None
    evidence = [f"{i.where}: {i.problem}" for i in critical]
    if reload_errors or reload_failed:
        evidence.append(f"CoreDNS refused it: {reload_errors} reload errors logged, coredns_reload_failed_total "
                        f"{reload_failed:.0f}")
        evidence += list(_samples(ev, LogClass.RELOAD_ERROR)[:2])
    refused = bool(reload_errors or reload_failed)
    return Finding.of("bad_coredns_custom", 80, Hypothesis(
        title=("coredns-custom is rejected: CoreDNS keeps running its old configuration" if refused else
               "coredns-custom does not do what it says: " + critical[0].rule.replace("_", " ")),
        confidence=HIGH if reload_errors or reload_failed else MEDIUM, evidence=tuple(evidence),
        actions=(*(f"{i.where}: {i.fix}" for i in critical),
                 f"{KS} logs -l k8s-app=kube-dns --since={ev.minutes}m | grep -i -e restart -e reload",
                 f"{KS} get configmap coredns-custom -o yaml"),
        links=(COREDNS_CUSTOM_DOC,)), subjects=[Subject("configmap", "coredns-custom", "kube-system")])


def rule_api_access(ev: HealthEvidence) -> Finding | None:
    n = _log(ev, LogClass.API_ACCESS)
    if not n:
        return None
    return Finding.of("coredns_api_access", 62, Hypothesis(
        title="CoreDNS cannot read the Kubernetes API (cluster names go stale or fail)", confidence=MEDIUM,
        evidence=(f"{n} 'Failed to list/watch' lines in {ev.minutes} min", *_samples(ev, LogClass.API_ACCESS)[:2]),
        actions=("/aksdns apiserver", f"{KS} get pods -l k8s-app=konnectivity-agent",
                 "kubectl get clusterrolebinding system:coredns -o yaml"),
        links=(GUIDE,)))


def rule_servfail(ev: HealthEvidence) -> Finding | None:
    sf = sum(r.responses.get("SERVFAIL", 0.0) for r in all_rates(ev))
    total = sum(sum(r.responses.values()) for r in all_rates(ev))
    logged = _log(ev, LogClass.SERVFAIL)
    if (not total or sf / total < 0.05 or sf < 3) and not logged:
        return None
    evidence = []
    if total:
        evidence.append(f"SERVFAIL {sf:.0f} of {total:.0f} answers during the scrape ({sf / total:.0%})")
    if logged:
        evidence.append(f"{logged} SERVFAIL lines logged in {ev.minutes} min")
        evidence += list(_samples(ev, LogClass.SERVFAIL)[:2])
    return Finding.of("servfail", 55, Hypothesis(
        title="CoreDNS answers SERVFAIL", confidence=MEDIUM, evidence=tuple(evidence),
        actions=("/aksdns check   # which layer fails", f"{KS} logs -l k8s-app=kube-dns --since={ev.minutes}m"),
        links=(GUIDE,)))


def rule_hot_pod(ev: HealthEvidence) -> Finding | None:
    hot = hot_pod(all_rates(ev))
    if hot is None:
        return None
    top, share = hot
    rates = all_rates(ev)
    evidence = [f"{r.pod}: {r.requests:.0f} queries in {r.seconds:.1f} s ({r.rps:.1f}/s)" for r in rates]
    return Finding.of("hot_pod", 58, Hypothesis(
        title=f"One CoreDNS pod takes {share:.0%} of the queries: {top.pod}", confidence=MEDIUM,
        evidence=(*evidence, "UDP through the Service sticks each client socket to one pod (5-tuple hash)"),
        actions=("kubectl top pods -n kube-system -l k8s-app=kube-dns",
                 "/aksdns capture --coredns --duration 60s   # who sends the queries",
                 "clients that reuse one UDP socket (fixed source port) stay on one pod: spread or cache them"),
        links=(GUIDE,)), subjects=[Subject("pod", top.pod, "kube-system")])


def rule_throttling(ev: HealthEvidence) -> Finding | None:
    risky = [p for p in ev.pods if throttling_risk(p)]
    if not risky:
        return None
    return Finding.of("cpu_throttling_risk", 52, Hypothesis(
        title="CoreDNS runs near its CPU limit: throttling delays answers", confidence=MEDIUM,
        evidence=tuple(f"{p.name}: {p.usage.cpu_m if p.usage else '?'}m of a {p.resources.cpu_limit} limit "
                       f"({cpu_limit_share(p) or 0:.0%})" for p in risky),
        actions=("kubectl top pods -n kube-system -l k8s-app=kube-dns",
                 f"{KS} get configmap coredns-autoscaler -o yaml   # more replicas",
                 "/aksdns health   # again in a few minutes: a burst or a trend?"),
        links=(GUIDE,)), subjects=_pods(risky))


def rule_cold_cache(ev: HealthEvidence) -> Finding | None:
    cold = [r for r in all_rates(ev) if r.cache_ratio is not None and r.cache_hits + r.cache_misses
            >= COLD_MIN_REQUESTS and r.cache_ratio < COLD_CACHE_RATIO]
    if not cold:
        return None
    return Finding.of("cold_cache", 30, Hypothesis(
        title="CoreDNS's cache rarely answers (cold cache): most queries go upstream", confidence=LOW,
        evidence=tuple(f"{r.pod}: cache hit ratio {r.cache_ratio or 0:.0%} ({r.cache_hits:.0f} hits, "
                       f"{r.cache_misses:.0f} misses)" for r in cold),
        actions=("names queried once (random subdomains, search-list expansions) never hit a cache",
                 "/aksdns check   # the search-list cost of a short name"),
        links=(GUIDE,)))


def rule_nodes(ev: HealthEvidence) -> Finding | None:
    bad = [n for n in ev.nodes if n.bad_conditions]
    if not bad:
        return None
    evidence = [f"{n.name} ({', '.join(n.roles) or 'node'}): "
                + ", ".join(f"{c.type}={c.status}" + (f" ({c.reason})" if c.reason else "") for c in n.bad_conditions)
                for n in bad]
    return Finding.of("node_conditions", 68, Hypothesis(
        title=f"Nodes hosting CoreDNS or the client are unhealthy: {', '.join(n.name for n in bad)}",
        confidence=HIGH, evidence=tuple(evidence),
        actions=(*(f"kubectl describe node {n.name}" for n in bad[:3]), "kubectl top nodes"),
        links=(GUIDE,)), subjects=[Subject("node", n.name) for n in bad])


def rule_overcommit(ev: HealthEvidence) -> Finding | None:
    """Limits above allocatable: a problem when the node is busy (kubectl top), a risk otherwise."""
    over = [n for n in ev.nodes if n.overcommitted]
    if not over:
        return None
    busy = [n for n in over if n.usage is not None and _busy(n)]
    evidence = [f"{n.name}: limits cpu {n.cpu_limits} ({n.cpu_limits_pct}%), memory {n.memory_limits} "
                f"({n.memory_limits_pct}%)" + (f"; uses {n.usage.cpu_m}m CPU, {n.usage.memory_mi}Mi now"
                                               if n.usage is not None else "") for n in over]
    return Finding.of("node_overcommitted" if busy else "node_overcommit_risk", 45 if busy else 20, Hypothesis(
        title=(f"Nodes over-committed and busy: {', '.join(n.name for n in busy)}" if busy else
               f"Nodes over-committed (limits above 100% of allocatable): {', '.join(n.name for n in over)}"),
        confidence=MEDIUM if busy else LOW,
        evidence=tuple(evidence),
        actions=("kubectl describe node | grep -A5 '^Name:\\|^Allocated resources:' | "
                 "grep -v '.kubernetes.io\\|^Roles:\\|Labels:'", "kubectl top nodes",
                 "lower the limits of the pods there, or move CoreDNS off the node"),
        links=(GUIDE,)), subjects=[Subject("node", n.name) for n in over])


def _busy(n: NodeHealth) -> bool:
    """kubectl top above BUSY_SHARE of allocatable: limits beyond 100 % can now really be short."""
    if n.usage is None:
        return False
    cpu = Quantity.parse(n.allocatable_cpu).milli
    mem = Quantity.parse(n.allocatable_memory).whole
    return bool((cpu and n.usage.cpu_m / cpu >= BUSY_SHARE) or (mem and n.usage.memory_mi * 2**20 / mem >= BUSY_SHARE))


def rule_metrics_missing(ev: HealthEvidence) -> Finding | None:
    if ev.metrics_available:
        return None
    return Finding.of("metrics_unavailable", 25, Hypothesis(
        title="Usage unknown: metrics.k8s.io (metrics-server) does not answer", confidence=HIGH,
        evidence=(ev.metrics_note or "metrics.k8s.io did not answer",),
        actions=("kubectl get apiservice v1beta1.metrics.k8s.io",
                 "kubectl -n kube-system get pods -l k8s-app=metrics-server",
                 "kubectl -n kube-system logs -l k8s-app=metrics-server --tail 50"),
        links=(METRICS_SERVER_DOC,)))


def rule_autoscaler(ev: HealthEvidence) -> Finding | None:
    a = ev.autoscaler
    if not a.present or a.expected_replicas is None or a.replicas is None or a.replicas >= a.expected_replicas:
        return None
    return Finding.of("autoscaler_short", 35, Hypothesis(
        title=f"Fewer CoreDNS replicas ({a.replicas}) than the autoscaler's {a.mode} gives ({a.expected_replicas})",
        confidence=LOW, evidence=(f"{a.nodes} nodes, {a.cores} cores; {a.mode}: {a.params}",),
        actions=(f"{KS} get deployment coredns-autoscaler", f"{KS} logs deploy/coredns-autoscaler --tail 20"),
        links=(GUIDE,)))


def rule_config_smells(ev: HealthEvidence) -> Finding | None:
    smells = [i for i in ev.config_issues if i.severity != "critical"]
    if not smells:
        return None
    return Finding.of("config_review", 28 if any(i.severity == "warning" for i in smells) else 12, Hypothesis(
        title="Configuration review: " + ", ".join(dict.fromkeys(i.rule.replace("_", " ") for i in smells)),
        confidence=MEDIUM, evidence=tuple(f"{i.where}: {i.problem}" for i in smells),
        actions=tuple(f"{i.where}: {i.fix}" for i in smells), links=(COREDNS_CUSTOM_DOC,)))


def rule_npd(ev: HealthEvidence) -> Finding | None:
    events = [(n, e) for n in ev.nodes for e in n.npd_events]
    if not events:
        return None
    return Finding.of("npd_dns_events", 20, Hypothesis(
        title="Node Problem Detector reported DNS trouble (low trust: false positives are known)", confidence=LOW,
        evidence=tuple(f"{n.name}: {e.reason} ×{e.count}, {e.message[:120]}" for n, e in events[:5]),
        actions=("/aksdns check   # asks the same servers now",
                 "on non-default node pools NPD may probe 10.0.0.10 and report falsely (Azure/AKS#5451)"),
        links=(NPD_DOC,)), subjects=[Subject("node", n.name) for n, _ in events])


def rule_node_warnings(ev: HealthEvidence) -> Finding | None:
    noisy = [n for n in ev.nodes if n.events]
    if not noisy:
        return None
    return Finding.of("node_warning_events", 15, Hypothesis(
        title="Recent Warning events on nodes hosting CoreDNS or the client", confidence=LOW,
        evidence=tuple(f"{n.name}: {e.reason} ×{e.count}: {e.message[:120]}" for n in noisy for e in n.events[:3]),
        actions=tuple(f"kubectl get events -A --field-selector involvedObject.name={n.name}" for n in noisy[:3]),
        links=(GUIDE,)))


RULES: tuple[Rule, ...] = (
    rule_not_ready, rule_forward_loop, rule_oom, rule_crash, rule_panics, rule_localdns_dead,
    rule_failing_forwarder, rule_bad_config, rule_api_access, rule_servfail, rule_hot_pod, rule_throttling,
    rule_cold_cache, rule_nodes, rule_overcommit, rule_metrics_missing, rule_autoscaler, rule_config_smells,
    rule_npd, rule_node_warnings,
)
# Smells worth listing that do not make a cluster unhealthy.
BACKGROUND = frozenset({"config_review", "npd_dns_events", "node_warning_events", "cold_cache",
                        "node_overcommit_risk"})


def all_healthy(ev: HealthEvidence) -> Finding:
    ready = sum(p.ready for p in ev.pods)
    usage = "usage unknown" if not ev.metrics_available else "usage within limits"
    return Finding.of("all_healthy", 0, Hypothesis(
        title="CoreDNS and its nodes look healthy", confidence=MEDIUM,
        evidence=(f"{ready}/{len(ev.pods)} CoreDNS pods Ready, no recent restarts, {usage}",
                  f"no error lines in {ev.minutes} min of logs" if not ev.logs else "only minor log lines",
                  f"{len(ev.nodes)} nodes without pressure" + ("" if not any(n.overcommitted for n in ev.nodes)
                                                               else " (limits over-committed: a risk, see below)")),
        actions=("/aksdns check   # the layered probe", "/aksdns capture --coredns   # when failures are intermittent"),
        links=(GUIDE,)))


def diagnose(ev: HealthEvidence) -> list[Finding]:
    return findings.diagnose(ev, RULES, when_none=all_healthy, background=BACKGROUND)
