"""`ipam [--node NODE]`: pods that cannot get an IP address, per node (the guide's "Pod fails to
allocate the IP address").

gather (nodes, pods, FailedCreatePodSandBox events, NodeNetworkConfigs; then one read-only store
probe pod per kubenet node) → analyse (per-node accounts, rules) → report.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aksdns.commands import IpamCommand
from aksdns.errors import ClusterError
from aksdns.verbs import MAX_NODES
from workers.analysis.ipam_evidence import IpamEvidence
from workers.analysis.ipam_facts import CSV_COLUMNS, csv_rows, facts_table, node_lines
from workers.analysis.ipam_rules import diagnose
from workers.evidence.ipam import NodeRange
from workers.findings import Finding
from workers.jobenv import JobEnv
from workers.jobs import netreport
from workers.probes import ipam_store, kube, kube_ipam
from workers.report import Report


def _chosen(nodes: tuple[NodeRange, ...], wanted: str | None) -> tuple[NodeRange, ...]:
    if wanted is None:
        return nodes
    chosen = tuple(n for n in nodes if n.name == wanted)
    if not chosen:
        names = ", ".join(n.name for n in nodes[:5]) + (" …" if len(nodes) > 5 else "")
        raise ClusterError(f"no node `{wanted}` in this cluster (nodes: {names or 'none'})", status=404)
    return chosen


def gather(cmd: IpamCommand, env: JobEnv, clients: kube.Clients | None = None) -> IpamEvidence:
    started = time.monotonic()
    c = clients or kube.connect(env.kubeconfig)
    notes: list[str] = []
    env.progress("reading nodes, pods, sandbox events and NodeNetworkConfigs")
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="ipam-discovery") as pool:
        f_nodes = pool.submit(kube_ipam.list_nodes, c)
        f_pods = pool.submit(kube_ipam.list_pods, c, cmd.node)
        f_events = pool.submit(kube_ipam.list_sandbox_events, c)
        f_nncs = pool.submit(kube_ipam.list_nncs, c)
        nodes = _chosen(f_nodes.result(), cmd.node)
        pod_list = f_pods.result()
        events = netreport.optional(f_events, notes, ())
        nncs = netreport.optional(f_nncs, notes, None)
    crd = nncs is not None
    nncs = tuple(n for n in (nncs or ()) if any(n.node == x.name for x in nodes))
    with_nnc = {n.node for n in nncs}
    probe = [n.name for n in nodes if n.name not in with_nnc and n.ready][:MAX_NODES]
    skipped = [n.name for n in nodes if n.name not in with_nnc and n.name not in probe]
    ready = {n.name for n in nodes if n.ready}
    notes += [f"{name}: not probed ({'over the limit' if name in ready else 'NotReady'})" for name in skipped]
    stores: list[Any] = []
    if probe:
        env.progress(f"reading the IPAM store on {len(probe)} nodes (read-only probe pods)")
        plan = ipam_store.plan(netreport.pod_job(env))
        try:
            stores, probe_notes = ipam_store.read_stores(c.core, plan, probe, env.progress)
            notes += probe_notes
        except ClusterError as err:
            notes.append(err.user_message)
    return IpamEvidence(
        cluster=env.cluster,
        node_filter=cmd.node or "",
        nodes=nodes,
        pods=pod_list,
        stores=tuple(stores),
        nncs=nncs,
        nnc_crd=crd,
        events=tuple(events),
        notes=tuple(dict.fromkeys(notes)),
        elapsed_s=round(time.monotonic() - started, 2),
    )


def _flagged(findings: list[Finding]) -> set[str]:
    return {
        s.name
        for f in findings
        if f.rule not in ("all_healthy", "partial_view")
        for s in f.subjects
        if s.kind == "node"
    }


def build_report(cmd: IpamCommand, ev: IpamEvidence) -> Report:
    findings = diagnose(ev)
    lines = node_lines(ev, _flagged(findings))
    facts = facts_table(ev)
    data: dict[str, Any] = {
        "command": cmd.to_dict(),
        "cluster": ev.cluster,
        "status": netreport.status_of(findings),
        "layers": netreport.lines_data(lines),
        "facts": netreport.facts_data(facts),
        "hypotheses": [f.to_dict() for f in findings],
        "elapsed_s": ev.elapsed_s,
        "evidence": ev.to_dict(),
    }
    foot = f"{len(ev.nodes)} nodes, {len(ev.pods)} pods, {len(ev.stores)} store probes in {ev.elapsed_s:.1f} s"
    return netreport.report(
        f"Pod IP addresses · {ev.cluster}" + (f" · {cmd.node}" if cmd.node else ""),
        findings,
        data,
        [*lines, facts],
        foot,
        f"aksdns-ipam-{ev.cluster}",
        (CSV_COLUMNS, csv_rows(ev), "Allocations per node"),
    )


def execute(cmd: IpamCommand, env: JobEnv) -> Report:
    """Run `ipam` against the cluster of ``env`` (kubeconfig or in-cluster)."""
    return build_report(cmd, gather(cmd, env))
