"""One short-lived hostNetwork probe pod per node, running an ``aksdns probe KIND`` program.

Used by `ipam` (the read-only IPAM store probe) and `service` (TCP connects from each node). The
pods go through the pod runner (``workers.probes.pods``: labelled, pinned with nodeName, tolerating
every taint, bounded by activeDeadlineSeconds, deleted in ``finally``). hostNetwork matters for
both: the connect must leave from the node's own address, and a node out of pod addresses cannot
give a probe pod one.

A program prints one JSON line (``{"v": 1, ...}``) and writes it to its termination log; when it
does not fit the kubelet's 4 KiB, the termination message says ``truncated`` and the worker reads
the pod log (``workers.probes.node_probe.termination_text``).

Kubernetes calls: those of the pod runner; get pods/log when the termination message is truncated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aksdns.errors import ClusterError
from workers.probes import pods
from workers.probes.node_probe import TERMINATION_LOG, encode_output, termination_text

CONTAINER = "probe"
OUTPUT_VERSION = 1
START_BUDGET_S = 25.0  # scheduling + image pull + start on a real node; the testbed needs ~1 s


@dataclass(frozen=True)
class PodJob:
    """Whose probe pods these are and what they run: one per job, shared by its probe kinds."""

    run_id: str  # the pods' aksdns.io/job label
    namespace: str  # the release namespace
    image: str
    command: tuple[str, ...]  # ("aksdns", "probe")
    aksdns_job: str = ""  # the aksdns job that asked (an annotation on the pods)
    requested_by: str = ""


@dataclass(frozen=True)
class NodePodPlan:
    """What each node's probe pod runs and how long the worker waits for it."""

    job: PodJob
    kind: str  # the probe program (workers.probes.programs)
    role: str  # aksdns.io/role: what the pod guard keys on
    program_s: float  # how long the program itself may take
    start_budget_s: float = START_BUDGET_S
    volumes: tuple[Mapping[str, Any], ...] = ()
    mounts: tuple[Mapping[str, Any], ...] = ()

    @property
    def wait_s(self) -> float:
        return self.program_s + self.start_budget_s

    @property
    def deadline_s(self) -> int:
        """activeDeadlineSeconds: the kubelet kills a probe that outlives the worker's patience."""
        return int(self.wait_s + 15)


@dataclass(frozen=True)
class NodeOutput:
    """What one node's probe pod said: its JSON output, or why there is none."""

    node: str
    ok: bool
    output: Mapping[str, Any] | None = None
    error: str = ""


def pod_name(plan: NodePodPlan, index: int) -> str:
    return f"aksdns-{plan.kind}-{plan.job.run_id}-{index}"


def pod_manifest(
    plan: NodePodPlan, node: str, index: int, args: Sequence[str], now: float | None = None
) -> dict[str, Any]:
    """One probe pod pinned to ``node``; pure, so its safety properties are unit-tested."""
    job = plan.job
    owner = pods.Owner(job.run_id, job.aksdns_job, job.requested_by)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": job.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*job.command, plan.kind, *args],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if plan.mounts:
        container["volumeMounts"] = [dict(m) for m in plan.mounts]
    spec: dict[str, Any] = {
        "nodeName": node,  # pinned: no scheduler, exactly this node
        "hostNetwork": True,  # the node's own address; needs no pod IP on a node that has none left
        "dnsPolicy": "Default",
        "restartPolicy": "Never",
        "activeDeadlineSeconds": plan.deadline_s,
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "tolerations": [{"operator": "Exists"}],  # nodes in trouble are the interesting ones
        "containers": [container],
    }
    if plan.volumes:
        spec["volumes"] = [dict(v) for v in plan.volumes]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pods.pod_metadata(pod_name(plan, index), job.namespace, plan.role, owner, plan.deadline_s, now),
        "spec": spec,
    }


# ---------------------------------------------------------------------------- in the pod


def emit(out: dict[str, Any], termination_log: str) -> None:
    """Print the program's JSON line and leave it (or a truncated marker) as the termination message.

    Bulky rows go under the key ``r``: that is what a too-long termination message leaves out.
    """
    line = encode_output({"v": OUTPUT_VERSION, **out})
    print(line, flush=True)
    try:
        Path(termination_log).write_text(termination_text(line, {"v": OUTPUT_VERSION, **out}))
    except OSError:
        pass  # the worker falls back to the pod log


# ---------------------------------------------------------------------------- in the worker


def parse_output(text: str) -> dict[str, Any] | None:
    """The last JSON line of a probe's output, if it is one of ours and complete."""
    line = next((ln for ln in reversed(text.strip().splitlines()) if ln.startswith("{")), "")
    try:
        out = json.loads(line)
    except ValueError:
        return None
    if not isinstance(out, dict) or out.get("v") != OUTPUT_VERSION:
        return None
    return out


def _result(runner: pods.PodRunner, outcome: pods.PodOutcome, node: str) -> NodeOutput:
    term = outcome.terminated(CONTAINER)
    out = parse_output((term.message or "") if term is not None else "")
    if out is None or out.get("truncated"):
        try:
            out = parse_output(runner.log(outcome.name, CONTAINER))
        except ClusterError as err:
            return NodeOutput(node, False, error=err.user_message)
    if out is None:
        code = term.exit_code if term is not None else None
        return NodeOutput(node, False, error=f"probe gave no result (exit {code})")
    if term is not None and term.exit_code not in (0, None):
        return NodeOutput(node, False, out, str(out.get("error") or f"probe exited {term.exit_code}"))
    return NodeOutput(node, True, out)


def run_on_nodes(
    core: Any,
    plan: NodePodPlan,
    args_by_node: Mapping[str, Sequence[str]],
    progress: Callable[[str], None] | None = None,
) -> tuple[list[NodeOutput], list[str]]:
    """Create one pod per node, wait, collect; always deleted.

    Returns (outputs in the order of ``args_by_node``, notes). A refused create (403, the pod
    guard) is a note and a failed output, not a crash: the rest of the report still stands.
    """
    nodes = list(args_by_node)
    notes: list[str] = []
    results: dict[str, NodeOutput] = {}
    bodies = [pod_manifest(plan, node, i, args_by_node[node]) for i, node in enumerate(nodes)]
    with pods.pod_run(core, plan.job.namespace) as runner:
        outcomes = runner.create(bodies)
        for node, outcome in zip(nodes, outcomes, strict=True):
            err = outcome.error
            if err is not None:
                results[node] = NodeOutput(node, False, error=err.user_message)
                if err.status in (401, 403, 422) and err.user_message not in notes:
                    notes.append(err.user_message)
        started = [o for o in outcomes if o.created]
        if progress is not None and started:
            progress(f"{plan.kind} probe pods started on {len(started)} nodes")
        runner.wait(outcomes, plan.job.run_id, plan.wait_s)
        for node, outcome in zip(nodes, outcomes, strict=True):
            if not outcome.created:
                continue
            if outcome.done:
                results[node] = _result(runner, outcome, node)
            else:
                results[node] = NodeOutput(node, False, error=outcome.why_not_done("probe pod"))
    return [results[n] for n in nodes], notes
