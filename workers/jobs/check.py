"""`check`: the guide's layered DNS diagnosis in one job.

gather (discovery, then every layer at once) → analyse (facts, rules) → report.

Timing: discovery calls run concurrently; then one thread runs every in-worker query (CoreDNS
pods, the Service, the virtual network's DNS, the search-list walks) through the async engine
while another runs the node-level probe pods.  With a dead upstream the job therefore lasts
about one probe timeout plus pod start-up, never a sum of time-outs.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aksdns.commands import CheckCommand, DnsServer
from aksdns.errors import ClusterError
from workers.analysis.capture_button import capture_button
from workers.analysis.check_evidence import CheckEvidence, SearchWalk
from workers.analysis.check_facts import facts_table, layer_lines, overall_status, tally
from workers.analysis.check_rules import diagnose
from workers.evidence.cluster import (
    INTERNAL_NAME,
    CorednsPod,
    CustomDns,
    NodeInfo,
    ServiceInfo,
    is_cluster_name,
    server_of,
)
from workers.evidence.dns import Query, QueryResult
from workers.evidence.layers import Layer, NodeProbe, ProbeRecord, UpstreamRole
from workers.findings import Finding
from workers.jobenv import JobEnv
from workers.jobs import health as health_job
from workers.probes import kube, node_probe
from workers.probes.dns import run_queries_sync
from workers.probes.resolvconf import ResolvConf, parse_resolv_conf, read_resolv_conf, search_list_expansion
from workers.report import Attachment, Button, Markdown, Report, Section, Status

# Above the 5 s that clients wait, so the guide's "SERVFAIL after ~6 s" from CoreDNS's forward
# plugin is seen as what it is rather than as a time-out of our own.
PROBE_TIMEOUT_S = 7.0
# Node-level probes stand for the guide's `dig @<upstream>` on a node, whose clients give up at 5 s;
# it also keeps pod start-up inside the 7 s the worker's own probes take anyway.
NODE_PROBE_TIMEOUT_S = 5.0
TYPES = ("A", "AAAA")
DEFAULT_NODE_SAMPLE = 3
POD_NDOTS = 5  # what the kubelet writes into every ClusterFirst pod's resolv.conf


@dataclass(frozen=True)
class Tag:
    """Where an in-worker query belongs: its layer, target and role."""

    layer: Layer
    target: str
    role: str = ""


# ---------------------------------------------------------------------------- planning (pure)


def probe_names(cmd: CheckCommand, external_default: str) -> tuple[str, ...]:
    """The internal name first, then the user's names (or the external default), without repeats."""
    names = [INTERNAL_NAME, *(cmd.names or (external_default,))]
    return tuple(dict.fromkeys(n.rstrip(".") for n in names if n))


def sample_nodes(
    nodes: Sequence[NodeInfo], pods: Sequence[CorednsPod], wanted: int | None
) -> tuple[list[str], list[str]]:
    """Nodes to probe and nodes skipped: Ready ones, CoreDNS hosts first; None → a sample, 0 → all."""
    ready = [n.name for n in nodes if n.ready]
    hosts = {p.node for p in pods}
    ordered = sorted(ready, key=lambda n: (n not in hosts, n))
    count = len(ordered) if wanted == 0 else (DEFAULT_NODE_SAMPLE if wanted is None else wanted)
    chosen = ordered[:count]
    skipped = [f"{n.name} (NotReady)" for n in nodes if not n.ready] + [
        f"{n} (outside the sample)" for n in ordered[count:]
    ]
    return chosen, skipped


def pod_style_search(conf: ResolvConf, namespace: str) -> tuple[ResolvConf, bool]:
    """The search list a pod in ``namespace`` gets; the worker's own when it is already pod-style."""
    if any(d.endswith("svc.cluster.local") for d in conf.search):
        return conf, False
    search = (f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local", *conf.search)
    return ResolvConf(nameservers=conf.nameservers, search=search, ndots=POD_NDOTS), True


def forwarder_queries(custom: CustomDns, names: Sequence[str]) -> list[tuple[str, str]]:
    """(server, name) pairs that test each coredns-custom forwarder with names it is responsible for."""
    out: list[tuple[str, str]] = []
    for f in custom.forwarders:
        zone = f.zone.rstrip(".")
        in_zone = [n for n in names if not is_cluster_name(n) and (not zone or n == zone or n.endswith("." + zone))]
        asked = in_zone or ([zone] if zone else [])
        for server in f.servers:
            out += [(server, n) for n in asked]
    return out


def plan_queries(
    names: Sequence[str],
    pods: Sequence[CorednsPod],
    service: ServiceInfo | None,
    azure_dns: str,
    custom: CustomDns,
    repeat: int,
) -> tuple[list[Query], list[Tag]]:
    """Every in-worker query of the four layers, with its tag (same order)."""
    queries: list[Query] = []
    tags: list[Tag] = []

    def add(server: DnsServer, tag: Tag, qnames: Sequence[str], types: Sequence[str] = TYPES) -> None:
        for n in qnames:
            for t in types:
                for a in range(1, repeat + 1):
                    queries.append(Query(server=server, name=n, rdtype=t, attempt=a))
                    tags.append(tag)

    for p in pods:
        if p.ip:
            add(DnsServer(p.ip), Tag(Layer.COREDNS_POD, p.name), names)
    if service is not None and service.ip and service.ip != "None":
        add(DnsServer(service.ip, service.port), Tag(Layer.SERVICE, service.name), names)
    external = [n for n in names if not is_cluster_name(n)]
    add(DnsServer(azure_dns), Tag(Layer.VNET_DNS, "Azure DNS", UpstreamRole.AZURE_DNS.value), external)
    for server, name in forwarder_queries(custom, names):
        add(
            server_of(server),
            Tag(Layer.VNET_DNS, "coredns-custom", UpstreamRole.COREDNS_FORWARDER.value),
            [name],
            ("A",),
        )
    return queries, tags


def plan_walks(names: Sequence[str], conf: ResolvConf, server: DnsServer) -> tuple[list[Query], list[tuple[str, str]]]:
    """A and AAAA for every candidate of a pod-style lookup of each external name."""
    queries: list[Query] = []
    keys: list[tuple[str, str]] = []
    for name in names:
        if is_cluster_name(name):
            continue
        for cand in search_list_expansion(name, conf):
            for t in TYPES:
                queries.append(Query(server=server, name=cand, rdtype=t))
                keys.append((name, cand))
    return queries, keys


def record_of(result: QueryResult, tag: Tag) -> ProbeRecord:
    return ProbeRecord(
        layer=tag.layer,
        target=tag.target,
        server=str(result.server),
        name=result.name.rstrip("."),
        rdtype=result.rdtype,
        attempt=result.attempt,
        status=result.status,
        latency_ms=None if result.status == "TIMEOUT" else result.latency_ms,
        answers=result.answers,
        role=tag.role,
        error=result.error or "",
    )


def walks_of(
    conf: ResolvConf,
    synthesized: bool,
    server: DnsServer,
    keys: Sequence[tuple[str, str]],
    results: Sequence[QueryResult],
) -> list[SearchWalk]:
    """Replay a glibc stub over the concurrent results: candidates in order, stop at the first NOERROR."""
    by_name: dict[str, dict[str, QueryResult]] = {}
    order: dict[str, list[str]] = {}
    for (name, cand), res in zip(keys, results, strict=True):
        if res.rdtype == "A":
            by_name.setdefault(name, {})[cand] = res
            order.setdefault(name, []).append(cand)
    walks = []
    for name, cands in order.items():
        statuses, latency, answered = [], 0.0, ""
        for cand in cands:
            res = by_name[name][cand]
            statuses.append(res.status)
            latency += res.latency_ms
            if res.status == "NOERROR":
                answered = cand
                break
        walks.append(
            SearchWalk(
                name=name,
                server=str(server),
                search=conf.search,
                ndots=conf.ndots,
                candidates=tuple(cands),
                statuses=tuple(statuses),
                queries=2 * len(statuses),
                answered_by=answered,
                latency_ms=round(latency, 1),
                synthesized=synthesized,
            )
        )
    return walks


# ---------------------------------------------------------------------------- gathering (I/O)


def _worker_resolv_conf(env: JobEnv) -> ResolvConf:
    try:
        return read_resolv_conf(env.resolv_conf)
    except OSError:
        return parse_resolv_conf("")


def gather(cmd: CheckCommand, env: JobEnv, clients: kube.Clients | None = None) -> CheckEvidence:
    """Discovery, then every layer's probes at once; returns the evidence."""
    started = time.monotonic()
    c = clients or kube.connect(env.kubeconfig)
    notes: list[str] = []
    env.progress("discovering CoreDNS pods, the kube-dns Service, nodes and ConfigMaps")
    with ThreadPoolExecutor(max_workers=5, thread_name_prefix="check-discovery") as pool:
        f_pods = pool.submit(kube.list_coredns_pods, c)
        f_svc = pool.submit(kube.get_service, c)
        f_nodes = pool.submit(kube.list_nodes, c)
        f_custom = pool.submit(kube.read_custom_dns, c)
        # The performance questions, answered from what `health` reads (usage, restart reasons, limits).
        f_perf = pool.submit(health_job.performance, c)
        pods = f_pods.result()
        service = f_svc.result()
        nodes = _or_note(f_nodes, (), notes)
        custom = _or_note(f_custom, CustomDns(), notes)
        pod_health, node_health, metrics_available, metrics_note = _or_note(f_perf, ((), (), None, ""), notes)

    names = probe_names(cmd, env.external_name)
    external = [n for n in names if not is_cluster_name(n)]
    queries, tags = plan_queries(names, pods, service, env.azure_dns, custom, cmd.repeat)
    conf, synthesized = pod_style_search(_worker_resolv_conf(env), env.namespace)
    walk_server = DnsServer(service.ip, service.port) if service and service.ip else None
    walk_queries, walk_keys = plan_walks(external, conf, walk_server) if walk_server else ([], [])
    chosen, skipped = sample_nodes(nodes, pods, cmd.nodes)
    plan = node_probe.ProbePlan(
        job_id=node_probe.new_job_id(),
        aksdns_job=env.job_id,
        requested_by=env.requested_by,
        namespace=env.namespace,
        image=env.probe_image,
        command=env.probe_command,
        names=tuple(external),
        repeat=cmd.repeat,
        timeout_s=NODE_PROBE_TIMEOUT_S,
        azure_dns=env.azure_dns,
    )
    env.progress(f"probing {len(pods)} CoreDNS pods, the Service, the virtual network's DNS and {len(chosen)} nodes")
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="check-probes") as pool:
        f_nodes_probe = pool.submit(node_probe.run_node_probes, c.core, plan, chosen) if chosen else None
        results = run_queries_sync([*queries, *walk_queries], timeout=PROBE_TIMEOUT_S)
        node_probes: list[NodeProbe] = []
        node_records: list[ProbeRecord] = []
        if f_nodes_probe is not None:
            try:
                node_probes, node_records, node_notes = f_nodes_probe.result()
                notes += node_notes
            except ClusterError as err:
                notes.append(err.user_message)
                node_probes = [NodeProbe(node=n, ok=False, error=err.user_message) for n in chosen]
    direct = [record_of(r, t) for r, t in zip(results[: len(queries)], tags, strict=True)]
    walk_results = results[len(queries) :]
    walks = walks_of(conf, synthesized, walk_server, walk_keys, walk_results) if walk_server else []
    search_records = [record_of(r, Tag(Layer.SEARCH, r.name)) for r in walk_results]
    return CheckEvidence(
        cluster=env.cluster,
        names=names,
        azure_dns=env.azure_dns,
        probe_timeout_s=PROBE_TIMEOUT_S,
        repeat=cmd.repeat,
        coredns_pods=pods,
        service=service,
        nodes=nodes,
        custom=custom,
        node_probes=tuple(node_probes),
        probes=(*direct, *node_records),
        walks=tuple(walks),
        search_probes=tuple(search_records),
        skipped_nodes=tuple(skipped),
        notes=tuple(notes),
        worker_search=conf.search,
        worker_ndots=conf.ndots,
        elapsed_s=round(time.monotonic() - started, 2),
        pod_health=pod_health,
        node_health=node_health,
        metrics_available=metrics_available,
        metrics_note=metrics_note,
    )


def _or_note(future: Future[Any], default: Any, notes: list[str]) -> Any:
    """Nodes and ConfigMaps are nice to have: a refusal is noted and the check goes on."""
    try:
        return future.result()
    except ClusterError as err:
        notes.append(err.user_message)
        return default


# ---------------------------------------------------------------------------- report (pure)


CSV_COLUMNS = (
    "layer",
    "target",
    "role",
    "server",
    "name",
    "type",
    "attempt",
    "status",
    "latency_ms",
    "answers",
    "error",
)


def probes_csv(ev: CheckEvidence) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for r in (*ev.probes, *ev.search_probes):
        w.writerow(
            (
                r.layer.value,
                r.target,
                r.role,
                r.server,
                r.name,
                r.rdtype,
                r.attempt,
                r.status,
                "" if r.latency_ms is None else r.latency_ms,
                " ".join(r.answers),
                r.error,
            )
        )
    return out.getvalue()


def rates(ev: CheckEvidence) -> dict[str, dict[str, int]]:
    out = {}
    for layer in (Layer.COREDNS_POD, Layer.SERVICE, Layer.NODE, Layer.LOCALDNS, Layer.VNET_DNS):
        t = tally(ev.records(layer))
        out[layer.label] = {"failed": t.failed, "total": t.total}
    return out


def result_data(cmd: CheckCommand, ev: CheckEvidence, findings: Sequence[Finding]) -> dict[str, Any]:
    """The `--format json` payload; also what the next Re-run compares against."""
    lines = layer_lines(ev)
    return {
        "command": cmd.to_dict(),
        "cluster": ev.cluster,
        "status": _status(lines, findings).value,
        "layers": [{"layer": x.label, "status": x.status.value, "detail": x.detail} for x in lines],
        "facts": [{"question": q, "answer": a} for q, a in facts_table(ev).rows],
        "hypotheses": [f.to_dict() for f in findings],
        "rates": rates(ev),
        "elapsed_s": ev.elapsed_s,
        "evidence": ev.to_dict(),
    }


def _status(lines: Sequence[Any], findings: Sequence[Finding]) -> Status:
    if findings and findings[0].rule == "all_healthy":
        return Status.OK
    worst = overall_status(lines)
    return Status.WARN if worst is Status.OK else worst


def build_report(cmd: CheckCommand, ev: CheckEvidence) -> Report:
    """Summary per layer, the facts table, the hypotheses, attachments and buttons."""
    findings = diagnose(ev)
    lines = layer_lines(ev)
    data = result_data(cmd, ev, findings)
    top = findings[0].hypothesis if findings else None
    summary = top.title if top else "No finding"
    sections: list[Section] = []  # what changed since the previous check leads (workers.jobs.run)
    sections += lines
    sections.append(facts_table(ev))
    sections += [f.hypothesis for f in findings]
    foot = f"{len(ev.probes) + len(ev.search_probes)} queries in {ev.elapsed_s:.1f} s"
    if ev.skipped_nodes:
        foot += f" · nodes not probed: {', '.join(ev.skipped_nodes)}"
    sections.append(Markdown(f"_{foot}_"))
    stem = f"aksdns-check-{ev.cluster}"
    return Report(
        title=f"DNS check · {ev.cluster}",
        status=Status(data["status"]),
        summary=summary,
        sections=sections,
        attachments=[
            Attachment(f"{stem}.json", json.dumps(data, indent=1).encode(), "Every probe and fact (JSON)", "json"),
            Attachment(f"{stem}.csv", probes_csv(ev).encode(), "Every probe (CSV)", "csv"),
        ],
        findings=findings,
        buttons=[
            Button("aksdns_rerun", "Re-run", json.dumps(cmd.to_dict(), sort_keys=True), "primary"),
            capture_button(cmd.cluster, findings),
        ],
        data=data,
    )


# ---------------------------------------------------------------------------- entry


def execute(cmd: CheckCommand, env: JobEnv) -> Report:
    """Run `check` against the cluster of ``env`` (kubeconfig or in-cluster)."""
    return build_report(cmd, gather(cmd, env))
