"""Reaching the API server from every node: one host-network probe pod per node, and the program it runs.

(a) In the pod — :func:`probe_main` (``aksdns probe apiserver --target ...``): hostNetwork and
    dnsPolicy Default give it the node's network and resolv.conf, so each stage (name, TCP, TLS,
    anonymous /readyz and /livez) is what that node sees. Besides the targets the worker names it
    probes ``KUBERNETES_SERVICE_HOST``:``KUBERNETES_SERVICE_PORT`` of its own environment — the
    address pods on that node are told to use (on AKS the API server's FQDN). No token is mounted:
    the health endpoints answer anonymous callers. The cluster's CA (public) comes in an env var.
    It prints one JSON line, also written to the termination log (the worker reads the pod log
    when it does not fit in 4 KiB).

(b) In the worker — :func:`run_node_probes` runs the pods through the pod runner (the hardened shape
    of ``node_probe``: pinned, every taint tolerated, no token, read-only, a deadline, deleted in
    ``finally``), then reads each pod's log through the API server: that read goes API server →
    node (on AKS through konnectivity), so a failure there is the tunnel's, per node.

Kubernetes calls: those of the pod runner; get pods/log of each probe pod.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aksdns.errors import ClusterError
from workers.evidence.apiserver import EndpointProbe, NodeRun, from_plain
from workers.evidence.plain import to_plain
from workers.probes import node_probe, pods
from workers.probes.apiserver_endpoint import probe

ROLE = "apiserver-probe"
KIND = "apiserver"  # `aksdns probe apiserver`
CA_ENV = "AKSDNS_CA_PEM"
POD_ENVIRONMENT = "pod environment"
OUTPUT_VERSION = 1
START_BUDGET_S = node_probe.START_BUDGET_S


@dataclass(frozen=True)
class Target:
    """An address to reach: what it is, host, port and the name TLS must verify."""

    label: str
    host: str
    port: int
    server_name: str = ""

    def word(self) -> str:
        return "|".join((self.label, self.host, str(self.port), self.server_name))

    @classmethod
    def from_word(cls, word: str) -> Target:
        label, host, port, server_name = ([*word.split("|"), "", "", "", ""])[:4]
        return cls(label, host, int(port or 443), server_name)


# ============================================================================ (a) in the pod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aksdns probe apiserver", description="Reach the API server stage by stage.")
    p.add_argument("--target", action="append", default=[], help="LABEL|HOST|PORT|SERVER_NAME (repeatable)")
    p.add_argument("--no-pod-environment", action="store_true", help="skip KUBERNETES_SERVICE_HOST")
    p.add_argument("--termination-log", default=node_probe.TERMINATION_LOG)
    p.add_argument("--node", default=None, help="node name (default: $NODE_NAME, then the host name)")
    return p


def targets_of(args: argparse.Namespace, environ: dict[str, str]) -> list[Target]:
    """The worker's targets, then the pod environment's address unless already among them."""
    targets = [Target.from_word(w) for w in args.target]
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    if host and not args.no_pod_environment:
        port = int(environ.get("KUBERNETES_SERVICE_PORT") or 443)
        if not any(t.host == host and t.port == port for t in targets):
            targets.insert(0, Target(POD_ENVIRONMENT, host, port))
    return targets


def probe_main(argv: list[str]) -> int:
    """Entry of the probe pod: exit 0 when the probes ran (whatever they found)."""
    if argv and argv[0] == KIND:
        argv = argv[1:]
    args = _parser().parse_args(argv)
    node = args.node or os.environ.get("NODE_NAME") or socket.gethostname()
    ca = os.environ.get(CA_ENV) or None
    targets = targets_of(args, dict(os.environ))
    with ThreadPoolExecutor(max_workers=max(1, len(targets)), thread_name_prefix="aksdns-api") as pool:
        found = list(
            pool.map(lambda t: probe(node, t.label, t.host, t.port, server_name=t.server_name, ca_pem=ca), targets)
        )
    out: dict[str, Any] = {"v": OUTPUT_VERSION, "node": node, "probes": to_plain(found), "error": ""}
    if not targets:
        out["error"] = "no API server address to probe"
    line = node_probe.encode_output(out)
    print(line, flush=True)
    try:
        Path(args.termination_log).write_text(node_probe.termination_text(line, out))
    except OSError:
        pass  # the worker falls back to the pod log
    return 0


def parse_output(text: str, node: str) -> tuple[list[EndpointProbe], str]:
    """The program's JSON line → probes and an error ("" when fine; "truncated" → read the log)."""
    line = next((ln for ln in reversed(text.strip().splitlines()) if ln.startswith("{")), "")
    try:
        out = json.loads(line)
    except ValueError:
        return [], "probe output is not JSON"
    if not isinstance(out, dict) or out.get("v") != OUTPUT_VERSION:
        return [], "unexpected probe output"
    if out.get("truncated"):
        return [], "truncated"
    try:
        found = [from_plain(EndpointProbe, p) for p in out.get("probes", [])]
    except (KeyError, TypeError, ValueError):
        return [], "unexpected probe output"
    return [p for p in found if p.vantage == node], str(out.get("error") or "")


# ============================================================================ (b) in the worker


@dataclass(frozen=True)
class ProbePlan:
    run_id: str
    namespace: str
    image: str
    command: tuple[str, ...]  # e.g. ("aksdns", "probe")
    targets: tuple[Target, ...]
    ca_pem: str = ""
    aksdns_job: str = ""
    requested_by: str = ""
    start_budget_s: float = START_BUDGET_S

    @property
    def wait_s(self) -> float:
        # resolve + connect + TLS + two health reads, each bounded, plus start-up
        return 3 + 3 + 3 + 2 * 5 + self.start_budget_s

    @property
    def deadline_s(self) -> int:
        return int(self.wait_s + 15)


def probe_pod_manifest(plan: ProbePlan, node: str, index: int) -> dict[str, Any]:
    """The node probe's hardened pod shape (hostNetwork, no token, read-only, a deadline) with this program."""
    shape = node_probe.ProbePlan(
        job_id=plan.run_id, namespace=plan.namespace, image=plan.image, command=plan.command, names=()
    )
    body = node_probe.probe_pod_manifest(shape, node, index)
    owner = pods.Owner(plan.run_id, plan.aksdns_job, plan.requested_by)
    body["metadata"] = pods.pod_metadata(f"aksdns-api-{plan.run_id}-{index}", plan.namespace, ROLE, owner,
                                         plan.deadline_s)
    body["spec"]["activeDeadlineSeconds"] = plan.deadline_s
    container = body["spec"]["containers"][0]
    args = [KIND]
    for t in plan.targets:
        args += ["--target", t.word()]
    container["command"] = [*plan.command, *args]
    if plan.ca_pem:
        container["env"] = [*container["env"], {"name": CA_ENV, "value": plan.ca_pem}]
    return body


def _read(runner: pods.PodRunner, outcome: pods.PodOutcome, node: str) -> tuple[list[EndpointProbe], NodeRun]:
    term = outcome.terminated(node_probe.CONTAINER)
    message = (term.message or "") if term is not None else ""
    found, error = parse_output(message, node) if message else ([], "no termination message")
    log_read: bool | None = None
    log_error = ""
    try:
        log = runner.log(outcome.name, node_probe.CONTAINER)
        log_read = True
        if error:
            found, error = parse_output(log, node)
    except ClusterError as err:
        log_read, log_error = False, err.user_message
    if term is not None and term.exit_code not in (0, None) and not error:
        error = f"probe exited {term.exit_code}"
    return found, NodeRun(node=node, ok=not error and bool(found), error=error, log_read=log_read,
                          log_error=log_error)


def run_node_probes(
    core: Any, plan: ProbePlan, nodes: Sequence[str]
) -> tuple[list[EndpointProbe], list[NodeRun], list[str]]:
    """One probe pod per node through the pod runner: create, wait, read (termination message, then the
    log); always deleted. Returns (probes, one run per node in the order of ``nodes``, notes)."""
    bodies = [probe_pod_manifest(plan, node, i) for i, node in enumerate(nodes)]
    node_of = {b["metadata"]["name"]: node for b, node in zip(bodies, nodes, strict=True)}
    results, notes = pods.run_to_completion(
        core, plan.namespace, plan.run_id, bodies, plan.wait_s,
        lambda runner, outcome: _read(runner, outcome, node_of[outcome.name]), what="probe pod",
    )
    found: list[EndpointProbe] = []
    runs: list[NodeRun] = []
    for r in results:
        if r.value is None:
            runs.append(NodeRun(node=node_of[r.name], ok=False, error=r.error))
        else:
            found += r.value[0]
            runs.append(r.value[1])
    return found, runs, notes


if __name__ == "__main__":  # python -m workers.probes.apiserver_nodes apiserver --target ...
    sys.exit(probe_main(sys.argv[1:]))
