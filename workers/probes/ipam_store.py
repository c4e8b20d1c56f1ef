"""The kubenet host-local IPAM store, read on each node by a read-only probe pod.

(a) In the pod — :func:`probe_main` (``aksdns probe ipam-store``): the node's
    ``/var/lib/cni/networks`` is mounted read-only at the same path (a hostPath the chart's pod
    guard allows for this role only). host-local keeps one file per allocated address, named by the
    address, holding the sandbox's container ID; plus ``last_reserved_ip.0`` and ``lock``. The
    guide counts the files that are not ``lock`` or ``last*``; so does this, and keeps each file's
    address, sandbox and age.

(b) In the worker — :func:`read_stores` runs one such pod per node (``workers.probes.node_pods``)
    and turns each output into a :class:`~workers.evidence.ipam.StoreReading`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workers.evidence.ipam import StoreEntry, StoreReading
from workers.probes import node_pods
from workers.probes.node_probe import TERMINATION_LOG

KIND = "ipam-store"
ROLE = "ipam-probe"  # the pod guard allows the read-only store hostPath for this role only
STORE_PATH = "/var/lib/cni/networks"
VOLUME = "cni-networks"
# kubenet without Calico, then kubenet with Calico (the guide's note); other plugins keep other names.
KUBENET_NETWORKS = ("kubenet", "k8s-pod-network")
PROGRAM_S = 5.0
MAX_ENTRIES = 4096  # a /20 worth; a store bigger than that is read no further


# ============================================================================ (a) in the pod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aksdns probe ipam-store", description="Read the node's host-local IPAM store.")
    p.add_argument("--root", default=STORE_PATH, help="the host-local data directory (read only)")
    p.add_argument("--termination-log", default=TERMINATION_LOG)
    p.add_argument("--node", default=None, help="node name (default: $NODE_NAME, then the host name)")
    return p


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def read_network(directory: Path, now: float) -> list[list[Any]]:
    """[address, sandbox (12 chars), age in seconds] for each allocation file, as the guide counts them."""
    rows: list[list[Any]] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if len(rows) >= MAX_ENTRIES:
            break
        if not entry.is_file(follow_symlinks=False) or not _is_address(entry.name):
            continue  # lock, last_reserved_ip.0, anything else
        try:
            with open(entry.path, encoding="utf-8", errors="replace") as fh:
                sandbox = fh.readline(256).strip()[:12]
            age = max(0.0, now - entry.stat(follow_symlinks=False).st_mtime)
        except OSError:
            sandbox, age = "", 0.0
        rows.append([entry.name, sandbox, round(age)])
    return rows


def probe_main(argv: list[str]) -> int:
    """Entry of the probe pod: exit 0 when the directory could be looked at (even if absent)."""
    if argv and argv[0] == KIND:
        argv = argv[1:]
    args = _parser().parse_args(argv)
    node = args.node or os.environ.get("NODE_NAME") or socket.gethostname()
    root = Path(args.root)
    out: dict[str, Any] = {"node": node, "root": str(root), "networks": [], "r": [], "error": ""}
    code = 0
    try:
        if root.is_dir():
            networks = sorted(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
            out["networks"] = networks
            now = time.time()
            for name in networks:
                out["r"] += [[name, *row] for row in read_network(root / name, now)]
        else:
            out["error"] = f"no {root} on this node"
    except OSError as exc:
        out["error"] = f"cannot read {root}: {exc.strerror or exc}"
        code = 1
    node_pods.emit(out, args.termination_log)
    return code


# ============================================================================ (b) in the worker


def plan(job: node_pods.PodJob) -> node_pods.NodePodPlan:
    """Probe pods with the node's store mounted read-only at the path the guide lists."""
    return node_pods.NodePodPlan(
        job=job,
        kind=KIND,
        role=ROLE,
        program_s=PROGRAM_S,
        # type Directory: never created on a node that has no store (the pod guard insists on it).
        volumes=({"name": VOLUME, "hostPath": {"path": STORE_PATH, "type": "Directory"}},),
        mounts=({"name": VOLUME, "mountPath": STORE_PATH, "readOnly": True},),
    )


def reading_from(node: str, out: dict[str, Any] | None, error: str = "") -> StoreReading:
    """A probe output → the store of the kubenet network it found (kubenet first, then Calico's)."""
    if out is None:
        return StoreReading(node=node, ok=False, error=error or "no output")
    networks = tuple(str(n) for n in out.get("networks", []))
    network = next((n for n in KUBENET_NETWORKS if n in networks), "")
    entries = tuple(
        StoreEntry(ip=str(row[1]), container_id=str(row[2]), age_s=float(row[3]))
        for row in out.get("r", [])
        if isinstance(row, list) and len(row) == 4 and row[0] == network
    )
    probe_error = str(out.get("error") or "")
    return StoreReading(
        node=node,
        ok=not error and not probe_error.startswith("cannot read"),
        error=error or probe_error,
        network=network,
        entries=entries,
        networks=networks,
    )


def read_stores(
    core: Any, probe_plan: node_pods.NodePodPlan, nodes: Sequence[str], progress: Callable[[str], None] | None = None
) -> tuple[list[StoreReading], list[str]]:
    """One read-only probe pod per node; (readings in node order, notes such as a 403)."""
    outputs, notes = node_pods.run_on_nodes(core, probe_plan, {n: [] for n in nodes}, progress)
    return [reading_from(o.node, dict(o.output) if o.output else None, o.error) for o in outputs], notes


if __name__ == "__main__":
    sys.exit(probe_main(sys.argv[1:]))
