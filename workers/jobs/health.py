"""`health`: CoreDNS and node health reviewed as the guide's Part 2 does by hand, in one job.

gather (the API reads, metrics.k8s.io, two :9153 scrapes, the logs, LocalDNS probes from the nodes;
all at once) → analyse (facts, lint, rules) → report. Partial failures (no metrics-server, a 403 on
events, a pod whose log cannot be read) become notes: the rest of the review still reaches the thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from aksdns.commands import HealthCommand
from aksdns.errors import ClusterError
from workers.analysis import health_lint, health_logs
from workers.analysis.capture_button import capture_button
from workers.analysis.health_quantity import allocated, non_terminated_on, usage_from
from workers.analysis.health_report import (
    changes,
    config_digest,
    config_line,
    config_table,
    localdns_line,
    localdns_table,
    logs_line,
    logs_table,
    metrics_line,
    metrics_table,
    nodes_line,
    nodes_section,
    pods_csv,
    pods_line,
    pods_table,
    result_data,
)
from workers.analysis.health_rules import diagnose
from workers.evidence.cluster import INTERNAL_NAME
from workers.evidence.health import EventInfo, HealthEvidence, LocalDnsNode, NodeHealth, PodHealth
from workers.evidence.layers import Layer, NodeProbe, ProbeRecord
from workers.findings import Finding
from workers.jobenv import JobEnv
from workers.probes import coredns_metrics, health_kube, kube, node_probe
from workers.probes.health_kube import JSON, NPD_REASONS
from workers.report import Attachment, Markdown, Report, Section, Status

SCRAPE_INTERVAL_S = 5.0
LOCALDNS_PROBE_TIMEOUT_S = 2.0
MAX_LOCALDNS_NODES = 10
WARNING_EVENT_AGE_S = 3600.0
MAX_EVENTS_PER_NODE = 5
METRICS_HINT = (
    "install metrics-server (AKS has it by default: `kubectl -n kube-system get deploy metrics-server`), "
    "then `kubectl top pods -n kube-system -l k8s-app=kube-dns`"
)

T = TypeVar("T")


def _noted(future: Future[T], default: T, notes: list[str]) -> T:
    try:
        return future.result()
    except ClusterError as err:
        notes.append(err.user_message)
        return default


# ---------------------------------------------------------------------------- pure assembly


def node_health(name: str, roles: Sequence[str], node: Mapping[str, Any], pods: Sequence[JSON],
                events: Sequence[JSON], now: float) -> NodeHealth:
    alloc_text = (node.get("status") or {}).get("allocatable") or {}
    a = allocated(non_terminated_on(pods, name), alloc_text)
    warn, npd = [], []
    for raw in events:
        ev = health_kube.event_from(raw, now)
        if ev.reason in NPD_REASONS:
            npd.append(ev)
        elif ev.type == "Warning" and (ev.age_s is None or ev.age_s <= WARNING_EVENT_AGE_S):
            warn.append(ev)
    return NodeHealth(
        name=name, roles=tuple(roles), conditions=health_kube.conditions_of(node),
        allocatable_cpu=str(alloc_text.get("cpu", "")), allocatable_memory=str(alloc_text.get("memory", "")),
        cpu_requests=a.cpu_requests, cpu_requests_pct=a.cpu_requests_pct, cpu_limits=a.cpu_limits,
        cpu_limits_pct=a.cpu_limits_pct, memory_requests=a.memory_requests, memory_requests_pct=a.memory_requests_pct,
        memory_limits=a.memory_limits, memory_limits_pct=a.memory_limits_pct, other_rows=a.other_rows,
        events=tuple(sorted(warn, key=_recent)[:MAX_EVENTS_PER_NODE]),
        npd_events=tuple(sorted(npd, key=_recent)[:MAX_EVENTS_PER_NODE]),
    )


def _recent(e: EventInfo) -> float:
    return e.age_s if e.age_s is not None else float("inf")


def localdns_of(probes: Sequence[NodeProbe], records: Sequence[ProbeRecord]) -> tuple[LocalDnsNode, ...]:
    out = []
    for p in probes:
        mine = tuple(r for r in records if r.layer is Layer.LOCALDNS and r.target == p.node)
        enabled = bool(mine) or any(ns.startswith(node_probe.LOCALDNS_PREFIX) for ns in p.nameservers)
        out.append(LocalDnsNode(node=p.node, enabled=enabled, records=mine, error="" if p.ok else p.error))
    return tuple(out)


# ---------------------------------------------------------------------------- gathering (I/O)


def _logs(c: kube.Clients, pods: Sequence[PodHealth], minutes: int) -> tuple[dict[str, list[str]], list[str]]:
    logs: dict[str, list[str]] = {}
    failed: list[str] = []

    def read(p: PodHealth) -> tuple[str, list[str] | None]:
        try:
            return p.name, health_kube.pod_log(c, p.name, since_s=minutes * 60)
        except ClusterError:
            return p.name, None

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="health-logs") as pool:
        for name, lines in pool.map(read, pods):
            if lines is None:
                failed.append(name)
            else:
                logs[name] = lines
    return logs, failed


def _previous_tails(c: kube.Clients, pods: Sequence[PodHealth]) -> dict[str, tuple[str, ...]]:
    out = {}
    for p in pods:
        if p.restarts and p.last_reason != "OOMKilled":  # an OOM kill leaves no log line saying so
            try:
                lines = health_kube.pod_log(c, p.name, previous=True, tail=health_kube.TAIL_LINES)
            except ClusterError:
                continue
            out[p.name] = tuple(line for line in lines if line.strip())
    return out


def _localdns(c: kube.Clients, env: JobEnv, nodes: Sequence[str]) -> tuple[LocalDnsNode, ...]:
    if not nodes:
        return ()
    plan = node_probe.ProbePlan(
        job_id=node_probe.new_job_id(), aksdns_job=env.job_id, requested_by=env.requested_by,
        namespace=env.namespace, image=env.probe_image, command=env.probe_command, names=(INTERNAL_NAME,),
        types=("A",), timeout_s=LOCALDNS_PROBE_TIMEOUT_S, azure_dns=env.azure_dns, localdns_only=True,
    )
    probes, records, _notes = node_probe.run_node_probes(c.core, plan, nodes)
    return localdns_of(probes, records)


def gather(cmd: HealthCommand, env: JobEnv, clients: kube.Clients | None = None) -> HealthEvidence:
    started = time.monotonic()
    c = clients or kube.connect(env.kubeconfig)
    notes: list[str] = []
    env.progress("reading CoreDNS pods, nodes, events, metrics and configuration")
    raw_pods = health_kube.coredns_pods(c)
    now = time.time()
    pods = [health_kube.pod_health_from(p, now) for p in raw_pods]
    clients_json: list[JSON] = []
    for ref in cmd.pods:
        found = health_kube.pod(c, ref.namespace, ref.name)
        if found is None:
            notes.append(f"client pod {ref} not found")
        else:
            clients_json.append(found)
    roles: dict[str, list[str]] = {}
    for p in raw_pods:
        roles.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append("CoreDNS")
    for p in clients_json:
        roles.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append("client")
    roles.pop("", None)
    roles = {n: list(dict.fromkeys(r)) for n, r in roles.items()}

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="health") as pool:
        f_nodes = pool.submit(health_kube.nodes, c)
        f_all = pool.submit(health_kube.all_active_pods, c)
        f_events = pool.submit(health_kube.events, c, "Node")
        f_pm = pool.submit(health_kube.pod_metrics, c, kube.KUBE_SYSTEM, kube.COREDNS_SELECTOR)
        f_nm = pool.submit(health_kube.node_metrics, c)
        f_cms = pool.submit(health_kube.configmaps, c, ("coredns", "coredns-custom", "coredns-autoscaler"))
        f_dep = pool.submit(health_kube.coredns_replicas, c)
        f_scrape = pool.submit(coredns_metrics.scrape_pods, [(p.name, p.ip) for p in pods], SCRAPE_INTERVAL_S)
        f_logs = pool.submit(_logs, c, pods, cmd.minutes)
        f_tails = pool.submit(_previous_tails, c, pods)
        all_nodes = _noted(f_nodes, [], notes)
        ready_nodes = [n["metadata"]["name"] for n in all_nodes
                       if any(x.get("type") == "Ready" and x.get("status") == "True"
                              for x in (n.get("status") or {}).get("conditions") or [])]
        env.progress("scraping CoreDNS metrics twice, reading logs, asking LocalDNS from the nodes")
        f_local = pool.submit(_localdns, c, env, ready_nodes[:MAX_LOCALDNS_NODES])
        all_pods = _noted(f_all, [], notes)
        events = _noted(f_events, [], notes)
        metrics_available, metrics_note = True, ""
        try:
            pod_usage = {k: usage_from(v) for k, v in f_pm.result().items()}
            node_usage = {k: usage_from(v) for k, v in f_nm.result().items()}
        except ClusterError as err:
            pod_usage, node_usage = {}, {}
            metrics_available = False
            metrics_note = f"{err.user_message}; {METRICS_HINT}"
        cms = _noted(f_cms, {}, notes)
        replicas, ready_replicas = _noted(f_dep, (None, None), notes)
        scrapes = f_scrape.result()
        logs, log_failed = f_logs.result()
        tails = f_tails.result()
        try:
            local = f_local.result()
        except ClusterError as err:
            notes.append(f"LocalDNS not probed: {err.user_message}")
            local = ()

    if metrics_available and not pod_usage and pods:
        metrics_note = "metrics.k8s.io answered without CoreDNS pods (metrics-server starts scraping within a minute)"
    pods = [PodHealth(**{**p.__dict__, "usage": pod_usage.get(p.name), "previous_log_tail": tails.get(p.name, ())})
            for p in pods]
    by_name = {n["metadata"]["name"]: n for n in all_nodes}
    events_by_node: dict[str, list[JSON]] = {}
    for e in events:
        events_by_node.setdefault((e.get("involvedObject") or {}).get("name", ""), []).append(e)
    nodes = []
    for name in sorted(roles):
        if name in by_name:
            nh = node_health(name, roles[name], by_name[name], all_pods, events_by_node.get(name, []), now)
            nodes.append(NodeHealth(**{**nh.__dict__, "usage": node_usage.get(name)}))
    corefile = ((cms.get("coredns") or {}).get("Corefile")) or ""
    custom = dict(cms.get("coredns-custom") or {})
    cores = sum(int(health_kube_cores(n)) for n in all_nodes if not (n.get("spec") or {}).get("unschedulable"))
    schedulable = sum(1 for n in all_nodes if not (n.get("spec") or {}).get("unschedulable"))
    return HealthEvidence(
        cluster=env.cluster, minutes=cmd.minutes, pods=tuple(pods), metrics_available=metrics_available,
        metrics_note=metrics_note, scrapes=tuple(scrapes), nodes=tuple(nodes),
        logs=health_logs.summarize(logs), log_lines=sum(len(v) for v in logs.values()), log_errors=tuple(log_failed),
        health_check_errors=health_logs.health_checks(logs), corefile=corefile, custom=custom,
        config_issues=health_lint.lint(corefile, custom), config_digest=config_digest(corefile, custom),
        autoscaler=health_lint.autoscaler(cms.get("coredns-autoscaler"), schedulable, cores, replicas, ready_replicas),
        localdns=local, client_pods=tuple(str(r) for r in cmd.pods), notes=tuple(notes),
        elapsed_s=round(time.monotonic() - started, 2),
    )


def health_kube_cores(node: Mapping[str, Any]) -> int:
    """Whole cores of a node's capacity, as cluster-proportional-autoscaler counts them."""
    from workers.analysis.health_quantity import Quantity

    return Quantity.parse(((node.get("status") or {}).get("capacity") or {}).get("cpu")).whole


# ---------------------------------------------------------------------------- report (pure)


def _status(findings: Sequence[Finding]) -> Status:
    if not findings or findings[0].rule == "all_healthy":
        return Status.OK
    return Status.FAIL if findings[0].score >= 80 else (Status.WARN if findings[0].score >= 25 else Status.INFO)


def build_report(cmd: HealthCommand, ev: HealthEvidence, previous: dict[str, Any] | None = None) -> Report:
    findings = diagnose(ev)
    status = _status(findings)
    data = result_data(ev, findings, status)
    data["command"] = cmd.to_dict()
    sections: list[Section] = list(changes(previous, data))
    lines = [pods_line(ev), metrics_line(ev), nodes_line(ev), logs_line(ev), config_line(ev)]
    local = localdns_line(ev)
    sections += lines + ([local] if local else [])
    data["parts"] = [{"part": x.label, "status": x.status.value, "detail": x.detail}
                     for x in (*lines, *([local] if local else []))]
    sections += [pods_table(ev), metrics_table(ev), nodes_section(ev)]
    if ev.logs:
        sections.append(logs_table(ev))
    if ev.config_issues:
        sections.append(config_table(ev))
    if local:
        sections.append(localdns_table(ev))
    sections += [f.hypothesis for f in findings]
    foot = f"read in {ev.elapsed_s:.1f} s"
    if ev.notes:
        foot += " · " + " · ".join(ev.notes)
    if not ev.metrics_available:
        foot += f" · {ev.metrics_note}"
    sections.append(Markdown(f"_{foot}_"))
    stem = f"aksdns-health-{ev.cluster}"
    return Report(
        title=f"CoreDNS and node health · {ev.cluster}",
        status=status,
        summary=findings[0].title if findings else "No finding",
        sections=sections,
        attachments=[
            Attachment(f"{stem}.json", json.dumps(data, indent=1).encode(), "Everything health read (JSON)", "json"),
            Attachment(f"{stem}.csv", pods_csv(ev).encode(), "CoreDNS pods: state, usage, metrics (CSV)", "csv"),
        ],
        findings=findings,
        buttons=[  # Re-run and Hand off are added to every thread reply (workers/thread_actions.py)
            capture_button(cmd.cluster, findings),  # every CoreDNS pod plus the nodes and pods found
        ],
        data=data,
    )


def execute(cmd: HealthCommand, env: JobEnv) -> Report:
    return build_report(cmd, gather(cmd, env), env.previous)




# ---------------------------------------------------------------------------- shared with `check`


def performance(c: kube.Clients) -> tuple[tuple[PodHealth, ...], tuple[NodeHealth, ...], bool, str]:
    """What `check`'s performance questions read, from the same sources and code as `health`: CoreDNS pods
    with their restart reasons, limits and `kubectl top` usage; their nodes' conditions, Allocated
    resources as `kubectl describe node` prints them, and usage. (pods, nodes, metrics available, note)"""
    with ThreadPoolExecutor(max_workers=5, thread_name_prefix="check-perf") as pool:
        f_pods = pool.submit(health_kube.coredns_pods, c)
        f_nodes = pool.submit(health_kube.nodes, c)
        f_all = pool.submit(health_kube.all_active_pods, c)
        f_pm = pool.submit(health_kube.pod_metrics, c, kube.KUBE_SYSTEM, kube.COREDNS_SELECTOR)
        f_nm = pool.submit(health_kube.node_metrics, c)
        raw, nodes_json, all_pods = f_pods.result(), f_nodes.result(), f_all.result()
        try:
            pod_usage = {k: usage_from(v) for k, v in f_pm.result().items()}
            node_usage = {k: usage_from(v) for k, v in f_nm.result().items()}
            available, note = True, ""
        except ClusterError as err:
            pod_usage, node_usage, available, note = {}, {}, False, f"{err.user_message}; {METRICS_HINT}"
    now = time.time()
    pods = tuple(PodHealth(**{**health_kube.pod_health_from(p, now).__dict__,
                              "usage": pod_usage.get(p["metadata"]["name"])}) for p in raw)
    hosts = {p.node for p in pods if p.node}
    nodes = tuple(
        NodeHealth(**{**node_health(n["metadata"]["name"], ("CoreDNS",), n, all_pods, (), now).__dict__,
                      "usage": node_usage.get(n["metadata"]["name"])})
        for n in nodes_json if n["metadata"]["name"] in hosts
    )
    return pods, nodes, available, note
