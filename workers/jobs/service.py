"""`service NAMESPACE/NAME [--port P]`: why a Service is not reachable, as the first failing rung of
the ladder from its name to its pods (the guide's "Service not accessible within Pods").

gather (the Service, its EndpointSlices and Endpoints, the namespace's pods and NetworkPolicies,
kube-proxy; then at once: the name through CoreDNS, TCP connects from the worker, and from one
hostNetwork probe pod per node) → analyse (the ladder, one rule per rung) → report.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aksdns.commands import DnsServer, ServiceCommand
from aksdns.errors import ClusterError
from workers.analysis.service_evidence import DnsProbe, ServiceEvidence, WorkerIdentity
from workers.analysis.service_ladder import Rung, Target, endpoint_count, endpoint_set, ladder, plan_targets
from workers.analysis.service_rules import diagnose
from workers.evidence.dns import Query
from workers.evidence.ipam import NodeRange
from workers.evidence.service import ConnectResult, PodBrief, ServiceSpec
from workers.findings import Finding
from workers.jobenv import JobEnv
from workers.jobs import netreport
from workers.probes import kube, kube_ipam, kube_service, tcp_connect
from workers.probes.dns import run_queries_sync
from workers.report import Report, Section, StatusLine, Table

CONNECT_TIMEOUT_S = 3.0
DNS_TIMEOUT_S = 3.0
MAX_SERVICE_NODES = 10  # probe pods per run; nodes hosting the Service's pods come first


def pick_nodes(nodes: Sequence[NodeRange], pods_: Sequence[PodBrief]) -> tuple[list[str], list[str]]:
    """Ready nodes, those hosting the namespace's pods first; (chosen, skipped with why)."""
    hosts = {p.node for p in pods_}
    ready = sorted((n.name for n in nodes if n.ready), key=lambda n: (n not in hosts, n))
    chosen = ready[:MAX_SERVICE_NODES]
    skipped = [f"{n.name} (NotReady)" for n in nodes if not n.ready] + [f"{n} (over {MAX_SERVICE_NODES})"
                                                                          for n in ready[MAX_SERVICE_NODES:]]
    return chosen, skipped


def ask_dns(service: ServiceSpec, kube_dns: Any, coredns: Sequence[Any]) -> list[DnsProbe]:
    """The Service's name at the kube-dns Service IP and at each CoreDNS pod (A records)."""
    asks: list[tuple[str, DnsServer]] = []
    if kube_dns is not None and kube_dns.ip and kube_dns.ip != "None":
        asks.append(("kube-dns Service", DnsServer(kube_dns.ip, kube_dns.port)))
    asks += [(p.name, DnsServer(p.ip)) for p in coredns if p.ip]
    if not asks:
        return []
    results = run_queries_sync([Query(server=s, name=service.fqdn, rdtype="A") for _, s in asks],
                               timeout=DNS_TIMEOUT_S)
    return [
        DnsProbe(str(r.server), via, r.status, r.answers, None if r.status == "TIMEOUT" else round(r.latency_ms, 2))
        for (via, _), r in zip(asks, results, strict=True)
    ]


def _results(targets: Sequence[Target], source: str, outcomes: Sequence[tcp_connect.Outcome]) -> list[ConnectResult]:
    by_address = {t.address: t for t in targets}
    out = []
    for o in outcomes:
        t = by_address.get(o.target)
        if t is None:
            continue
        out.append(ConnectResult(source, o.target, t.kind, o.status, o.latency_ms, o.source_ip, t.pod, o.error))
    return out


def gather(cmd: ServiceCommand, env: JobEnv, clients: kube.Clients | None = None) -> ServiceEvidence:
    started = time.monotonic()
    c = clients or kube.connect(env.kubeconfig)
    ns, name = cmd.ref.namespace, cmd.ref.name
    notes: list[str] = []
    env.progress(f"reading Service {ns}/{name}")
    service = kube_service.get_service(c, ns, name)
    if service is None:
        others: tuple[str, ...] = ()
        try:
            others = kube_service.service_names(c, ns)
        except ClusterError as err:
            notes.append(err.user_message)
        return ServiceEvidence(cluster=env.cluster, namespace=ns, name=name, port=cmd.port, other_services=others,
                               notes=tuple(notes), elapsed_s=round(time.monotonic() - started, 2))
    env.progress("reading endpoints, pods, NetworkPolicies, kube-proxy and nodes")
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="service-discovery") as pool:
        f_slices = pool.submit(kube_service.list_slices, c, ns, name)
        f_endpoints = pool.submit(kube_service.get_endpoints, c, ns, name)
        f_pods = pool.submit(kube_service.list_pods, c, ns)
        f_policies = pool.submit(kube_service.list_policies, c, ns)
        f_namespaces = pool.submit(kube_service.namespace_labels, c)
        f_proxy = pool.submit(kube_service.list_kube_proxy, c)
        f_nodes = pool.submit(kube_ipam.list_nodes, c)
        f_dns = pool.submit(kube.get_service, c)
        f_coredns = pool.submit(kube.list_coredns_pods, c)
        f_me = pool.submit(kube_service.own_pod_labels, c, env.namespace, socket.gethostname())
        pod_list = f_pods.result()
        slices = netreport.optional(f_slices, notes, None)
        endpoints = netreport.optional(f_endpoints, notes, None)
        n_notes = len(notes)
        policies = netreport.optional(f_policies, notes, None)
        policies_read = len(notes) == n_notes
        namespaces = netreport.optional(f_namespaces, notes, {})
        n_notes = len(notes)
        proxy = netreport.optional(f_proxy, notes, ())
        proxy_read = len(notes) == n_notes
        nodes = netreport.optional(f_nodes, notes, ())
        kube_dns = netreport.optional(f_dns, notes, None)
        coredns = netreport.optional(f_coredns, notes, ())
        my_labels = f_me.result()
    eps = slices if slices is not None and slices.objects else endpoints or slices
    targets = plan_targets(service, cmd.port, pod_list, eps)
    tested = sum(t.kind == "endpoint" for t in targets)
    if endpoint_count(service, cmd.port, pod_list, eps) > tested:
        notes.append(f"{endpoint_count(service, cmd.port, pod_list, eps)} endpoint targets; {tested} tested")
    chosen, skipped = pick_nodes(nodes, pod_list)
    plan = tcp_connect.plan(netreport.pod_job(env), CONNECT_TIMEOUT_S)
    addresses = [t.address for t in targets]
    env.progress(f"asking CoreDNS, connecting to {len(targets)} targets from the worker and {len(chosen)} nodes")
    connects: list[ConnectResult] = []
    node_errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="service-probes") as pool:
        f_nodes_probe = (
            pool.submit(tcp_connect.connect_from_nodes, c.core, plan, chosen, addresses, CONNECT_TIMEOUT_S)
            if chosen and addresses else None
        )
        f_worker = pool.submit(tcp_connect.connect_all, addresses, CONNECT_TIMEOUT_S)
        dns = ask_dns(service, kube_dns, coredns)
        connects += _results(targets, "worker", f_worker.result())
        if f_nodes_probe is not None:
            try:
                per_node, node_errors, probe_notes = f_nodes_probe.result()
                notes += probe_notes
                for node in chosen:
                    connects += _results(targets, node, per_node.get(node, []))
            except ClusterError as err:
                notes.append(err.user_message)
                node_errors = {n: err.user_message for n in chosen}
    return ServiceEvidence(
        cluster=env.cluster,
        namespace=ns,
        name=name,
        port=cmd.port,
        service=service,
        dns=tuple(dns),
        slices=slices,
        endpoints=endpoints,
        pods=pod_list,
        policies=policies or (),
        policies_read=policies_read,
        namespaces=namespaces,
        kube_proxy=proxy,
        kube_proxy_read=proxy_read,
        connects=tuple(connects),
        worker=WorkerIdentity(env.namespace, my_labels),
        nodes=tuple(chosen),
        node_errors=node_errors,
        skipped_nodes=tuple(skipped),
        notes=tuple(dict.fromkeys(notes)),
        connect_timeout_s=CONNECT_TIMEOUT_S,
        elapsed_s=round(time.monotonic() - started, 2),
    )


# ---------------------------------------------------------------------------- report (pure)


def rung_lines(rungs: Sequence[Rung]) -> list[StatusLine]:
    return [StatusLine(r.status, r.label, r.detail) for r in rungs]


def connect_table(ev: ServiceEvidence) -> Table | None:
    """Targets down, sources across: how each connect ended."""
    if not ev.connects:
        return None
    sources = ["worker", *(n for n in ev.nodes if n not in ev.node_errors)]
    cells: dict[tuple[str, str], str] = {}
    targets: dict[str, str] = {}
    for r in ev.connects:
        took = f" {r.latency_ms:.0f} ms" if r.ok and r.latency_ms is not None else ""
        cells[(r.target, r.source)] = r.status + took
        targets.setdefault(r.target, "ClusterIP" if r.target_kind == "cluster_ip" else (r.pod or "endpoint"))
    rows = tuple((t, what, *(cells.get((t, s), "-") for s in sources)) for t, what in targets.items())
    return Table("TCP connects (rows: targets; columns: where from)", ("target", "what", *sources), rows)


def facts_table(ev: ServiceEvidence) -> Table:
    rows: list[tuple[str, str]] = []
    for source in ["worker", *ev.nodes]:
        mine = [r for r in ev.connects if r.source == source]
        if mine:
            ok = sum(r.ok for r in mine)
            where = "the worker" if source == "worker" else source
            rows.append((f"TCP connects from {where}", f"{ok}/{len(mine)} open"))
    for d in ev.dns:
        rows.append((f"{ev.name}.{ev.namespace} at {d.via}", f"{d.status} {' '.join(d.answers)}".strip()))
    eps = endpoint_set(ev)
    rows.append(("Ready endpoint addresses", str(len(eps.ready)) if eps else "none"))
    return Table("Facts", ("Question", "Answer"), tuple(rows))


CSV_COLUMNS = ("source", "source_ip", "target", "target_kind", "pod", "status", "latency_ms", "error")


def csv_rows(ev: ServiceEvidence) -> list[tuple[str, ...]]:
    return [
        (r.source, r.source_ip, r.target, r.target_kind, r.pod, r.status,
         "" if r.latency_ms is None else str(r.latency_ms), r.error)
        for r in ev.connects
    ]


def build_report(cmd: ServiceCommand, ev: ServiceEvidence) -> Report:
    findings: list[Finding] = diagnose(ev)
    rungs = ladder(ev)
    lines = rung_lines(rungs)
    facts = facts_table(ev)
    data: dict[str, Any] = {
        "command": cmd.to_dict(),
        "cluster": ev.cluster,
        "status": netreport.status_of(findings),
        "verdict": next((r.key for r in rungs if r.failed), None),
        "layers": netreport.lines_data(lines),
        "facts": netreport.facts_data(facts),
        "hypotheses": [f.to_dict() for f in findings],
        "elapsed_s": ev.elapsed_s,
        "evidence": ev.to_dict(),
    }
    sections: list[Section] = [*lines]
    table = connect_table(ev)
    if table is not None:
        sections.append(table)
    foot = f"{len(ev.connects)} connects, {len(ev.dns)} DNS queries in {ev.elapsed_s:.1f} s"
    if ev.skipped_nodes:
        foot += f" · nodes not probed: {', '.join(ev.skipped_nodes)}"
    return netreport.report(
        f"Service {ev.namespace}/{ev.name}" + (f":{cmd.port}" if cmd.port else "") + f" · {ev.cluster}",
        findings,
        data,
        sections,
        foot,
        f"aksdns-service-{ev.namespace}-{ev.name}",
        (CSV_COLUMNS, csv_rows(ev), "Every TCP connect"),
    )


def execute(cmd: ServiceCommand, env: JobEnv) -> Report:
    """Run `service` against the cluster of ``env`` (kubeconfig or in-cluster)."""
    return build_report(cmd, gather(cmd, env))
