"""The node-level DNS probe: one short-lived probe pod per node, and the program it runs.

(a) In the pod — :func:`probe_main` (``aksdns probe node-dns ...``): hostNetwork and dnsPolicy
    Default give the pod the node's own /etc/resolv.conf, i.e. the node's upstreams (Azure DNS
    or the virtual network's custom DNS servers).  It queries each upstream for each name and
    prints one compact JSON line, also written to the termination log (4 KiB at most: larger
    results say ``truncated`` and the worker reads the pod log instead).

(b) In the worker — :func:`run_node_probes` runs the pods through the pod runner
    (``workers.probes.pods``: labelled, pinned with nodeName, tolerating every taint, bounded by
    activeDeadlineSeconds, deleted in ``finally``) and reads each termination message or log.

Kubernetes calls: those of the pod runner; get pods/log when the termination message is truncated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aksdns.commands import DnsServer
from aksdns.errors import ClusterError
from workers.evidence.layers import Layer, NodeProbe, ProbeRecord, UpstreamRole
from workers.probes import pods

ROLE = "node-dns-probe"
CONTAINER = "probe"
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096  # the kubelet keeps at most 4 KiB of a termination message
START_BUDGET_S = 25.0  # scheduling + image pull + start on a real node; the testbed needs ~1 s
OUTPUT_VERSION = 1
# AKS LocalDNS: a node-local CoreDNS answering the node at .10 and its pods at .11.
LOCALDNS_NODE, LOCALDNS_POD = "169.254.10.10", "169.254.10.11"
LOCALDNS_ADDRESSES = (LOCALDNS_NODE, LOCALDNS_POD)
LOCALDNS_PREFIX = "169.254.10."


# ============================================================================ (a) in the pod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aksdns probe node-dns", description="Query the node's upstream DNS servers.")
    p.add_argument("--name", action="append", default=[], help="name to resolve (repeatable)")
    p.add_argument("--type", action="append", default=[], dest="types", help="record type (default A and AAAA)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--resolv-conf", default="/etc/resolv.conf")
    p.add_argument("--termination-log", default=TERMINATION_LOG)
    p.add_argument("--node", default=None, help="node name (default: $NODE_NAME, then the host name)")
    p.add_argument("--port", type=int, default=53, help=argparse.SUPPRESS)  # tests: servers on loopback
    p.add_argument("--upstream", default="", help="the VNet's DNS, asked too when the node resolves through LocalDNS")
    p.add_argument("--localdns-only", action="store_true", help="ask only LocalDNS (when the node uses it)")
    return p


def servers_to_ask(nameservers: Sequence[str], upstream: str, localdns_only: bool) -> list[str]:
    """The node's nameservers; with LocalDNS both of its addresses (a layer of their own) and the VNet
    DNS behind it, which the node's resolv.conf no longer names."""
    uses_localdns = any(ns in LOCALDNS_ADDRESSES for ns in nameservers)
    if not uses_localdns:
        return [] if localdns_only else list(nameservers)
    if localdns_only:
        return list(LOCALDNS_ADDRESSES)
    rest = [ns for ns in nameservers if ns not in LOCALDNS_ADDRESSES]
    return list(dict.fromkeys([*LOCALDNS_ADDRESSES, *rest, *([upstream] if upstream else [])]))


def encode_output(out: dict[str, Any]) -> str:
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def termination_text(line: str, out: dict[str, Any]) -> str:
    """The termination message: the whole line, or a truncated marker when it would not fit."""
    if len(line.encode()) < TERMINATION_LIMIT:
        return line
    small = {k: v for k, v in out.items() if k != "r"}
    small["truncated"] = True
    return encode_output(small)


def probe_main(argv: list[str]) -> int:
    """Entry of the probe pod: exit 0 when the probe ran (whatever DNS said), 1 when it could not."""
    from workers.evidence.dns import Query
    from workers.probes.dns import run_queries_sync
    from workers.probes.resolvconf import read_resolv_conf

    if argv and argv[0] == "node-dns":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    node = args.node or os.environ.get("NODE_NAME") or socket.gethostname()
    types = args.types or ["A", "AAAA"]
    out: dict[str, Any] = {"v": OUTPUT_VERSION, "node": node, "names": args.name, "error": ""}
    code = 0
    try:
        conf = read_resolv_conf(args.resolv_conf)
        asked = servers_to_ask(conf.nameservers, args.upstream, args.localdns_only)
        out.update(ns=asked, rc=list(conf.nameservers), search=list(conf.search), ndots=conf.ndots)
        servers = [DnsServer(ns, args.port) for ns in asked]
        queries = [
            Query(server=s, name=n, rdtype=t, attempt=a)
            for s in servers
            for n in args.name
            for t in types
            for a in range(1, max(1, args.repeat) + 1)
        ]
        started = time.monotonic()
        results = run_queries_sync(queries, timeout=args.timeout) if queries else []
        out["seconds"] = round(time.monotonic() - started, 3)
        index_s = {s.host: i for i, s in enumerate(servers)}
        index_n = {n: i for i, n in enumerate(args.name)}
        # Compact rows keep a few hundred results under the 4 KiB termination-message limit.
        out["r"] = [
            [index_s[r.server.host], index_n[r.name], r.rdtype, r.attempt, r.status, r.latency_ms]
            for r in results
        ]
        if not conf.nameservers:
            out["error"] = f"no nameserver in {args.resolv_conf}"
    except OSError as exc:
        out["error"] = f"cannot read {args.resolv_conf}: {exc.strerror or exc}"
        code = 1
    line = encode_output(out)
    print(line, flush=True)
    try:
        Path(args.termination_log).write_text(termination_text(line, out))
    except OSError:
        pass  # the worker falls back to the pod log
    return code


# ============================================================================ (b) in the worker


@dataclass(frozen=True)
class ProbePlan:
    """What the node-level probe pods do, decided by the job."""

    job_id: str  # this run's id (the pods' aksdns.io/job label)
    namespace: str
    image: str
    command: tuple[str, ...]  # e.g. ("aksdns", "probe")
    names: tuple[str, ...]
    types: tuple[str, ...] = ("A", "AAAA")
    repeat: int = 1
    timeout_s: float = 5.0
    azure_dns: str = "168.63.129.16"
    start_budget_s: float = START_BUDGET_S
    aksdns_job: str = ""  # the aksdns job that asked (an annotation on the pods)
    requested_by: str = ""
    localdns_only: bool = False  # `health`: ask LocalDNS only (nothing when the node does not use it)

    @property
    def wait_s(self) -> float:
        return self.timeout_s + self.start_budget_s

    @property
    def deadline_s(self) -> int:
        """activeDeadlineSeconds: the kubelet kills a probe that outlives the worker's patience."""
        return int(self.wait_s + 15)


def new_job_id() -> str:
    return pods.new_run_id()


def pod_name(plan: ProbePlan, index: int) -> str:
    return f"aksdns-probe-{plan.job_id}-{index}"


def probe_pod_manifest(plan: ProbePlan, node: str, index: int, now: float | None = None) -> dict[str, Any]:
    """One probe pod pinned to ``node``; pure, so its safety properties are unit-tested."""
    args = ["node-dns", "--timeout", f"{plan.timeout_s:g}", "--repeat", str(plan.repeat), "--upstream", plan.azure_dns]
    if plan.localdns_only:
        args.append("--localdns-only")
    for n in plan.names:
        args += ["--name", n]
    for t in plan.types:
        args += ["--type", t]
    owner = pods.Owner(plan.job_id, plan.aksdns_job, plan.requested_by)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pods.pod_metadata(pod_name(plan, index), plan.namespace, ROLE, owner, plan.deadline_s, now),
        "spec": {
            "nodeName": node,  # pinned: no scheduler, and exactly this node's network
            "hostNetwork": True,
            "dnsPolicy": "Default",  # the node's resolv.conf, i.e. its upstreams
            "restartPolicy": "Never",
            "activeDeadlineSeconds": plan.deadline_s,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],  # every taint: nodes under pressure are the interesting ones
            "containers": [
                {
                    "name": CONTAINER,
                    "image": plan.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [*plan.command, *args],
                    "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "terminationMessagePath": TERMINATION_LOG,
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "128Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def parse_probe_output(text: str, plan: ProbePlan, node: str) -> tuple[NodeProbe, list[ProbeRecord]]:
    """The JSON line of the probe program → a NodeProbe and its records (layer node)."""
    line = next((ln for ln in reversed(text.strip().splitlines()) if ln.startswith("{")), "")
    try:
        out = json.loads(line)
    except ValueError:
        return NodeProbe(node=node, ok=False, error="probe output is not JSON"), []
    if not isinstance(out, dict) or out.get("v") != OUTPUT_VERSION:
        return NodeProbe(node=node, ok=False, error="unexpected probe output"), []
    if out.get("truncated"):
        return NodeProbe(node=node, ok=False, error="truncated"), []
    servers = [str(s) for s in out.get("ns", [])]
    names = [str(n) for n in out.get("names", [])]
    records = []
    for row in out.get("r", []):
        si, ni, rdtype, attempt, status, latency = row
        server = servers[si]
        local = server in LOCALDNS_ADDRESSES
        records.append(
            ProbeRecord(
                layer=Layer.LOCALDNS if local else Layer.NODE,
                target=node,
                server=server,
                name=names[ni],
                rdtype=str(rdtype),
                attempt=int(attempt),
                status=str(status),
                latency_ms=None if status == "TIMEOUT" else float(latency),
                role="" if local else (
                    UpstreamRole.AZURE_DNS if server == plan.azure_dns else UpstreamRole.CUSTOM_VNET_DNS
                ).value,
            )
        )
    error = str(out.get("error") or "")
    probe = NodeProbe(
        node=node,
        ok=not error,
        error=error,
        nameservers=tuple(str(s) for s in out.get("rc", servers)),
        search=tuple(str(s) for s in out.get("search", [])),
        ndots=int(out.get("ndots", 1)),
        seconds=float(out.get("seconds", 0.0)),
    )
    return probe, records


def _read_result(
    runner: pods.PodRunner, plan: ProbePlan, outcome: pods.PodOutcome, node: str
) -> tuple[NodeProbe, list[ProbeRecord]]:
    term = outcome.terminated(CONTAINER)
    message = (term.message or "") if term is not None else ""
    probe, records = parse_probe_output(message, plan, node) if message else (None, [])
    if probe is None or probe.error in ("truncated", "probe output is not JSON"):
        try:
            log = runner.log(outcome.name, CONTAINER)
        except ClusterError as err:
            return NodeProbe(node=node, ok=False, error=err.user_message), []
        probe, records = parse_probe_output(log, plan, node)
    if term is not None and term.exit_code not in (0, None) and probe.ok:
        probe = dataclasses.replace(probe, ok=False, error=f"probe exited {term.exit_code}")
    return probe, records


def run_node_probes(
    core: Any,
    plan: ProbePlan,
    nodes: Sequence[str],
    *,
    progress: Any = None,
) -> tuple[list[NodeProbe], list[ProbeRecord], list[str]]:
    """One probe pod per node through the pod runner: create, wait, collect; always deleted.

    Returns (node probes, records, notes).  A refused create (403) is a note, not a crash:
    the other layers still make a report.
    """
    bodies = [probe_pod_manifest(plan, node, i) for i, node in enumerate(nodes)]
    node_of = {b["metadata"]["name"]: node for b, node in zip(bodies, nodes, strict=True)}
    results, notes = pods.run_to_completion(
        core, plan.namespace, plan.job_id, bodies, plan.wait_s,
        lambda runner, outcome: _read_result(runner, plan, outcome, node_of[outcome.name]),
        what="probe pod",
        started=(lambda n: progress(f"probe pods started on {n} nodes")) if progress is not None else None,
    )
    probes: list[NodeProbe] = []
    records: list[ProbeRecord] = []
    for r in results:
        if r.value is None:
            probes.append(NodeProbe(node=node_of[r.name], ok=False, error=r.error))
        else:
            probes.append(r.value[0])
            records.extend(r.value[1])
    return probes, records, notes


if __name__ == "__main__":  # the testbed and local runs: python -m workers.probes.node_probe node-dns ...
    sys.exit(probe_main(sys.argv[1:]))
