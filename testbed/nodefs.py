"""Node file systems: the few host paths of a testbed node that pods may mount.

A real node has its own disk; testbed nodes are network namespaces on one host, so each node gets a
directory ``run/nodes/<node>/`` standing for its root, and a pod's ``hostPath`` volume is bound from
there (read-only when its mount says so) over the container's ``mountPath`` in the command's own
mount namespace (``testbed.podexec --bind``).

What lives there today: kubenet's host-local IPAM store, ``var/lib/cni/networks/kubenet``: one file
per allocated address, named by the address, holding the sandbox's container ID, plus
``last_reserved_ip.0`` and ``lock``, as on an AKS kubenet node. The dataplane keeps one entry per
running non-hostNetwork pod of the node (first line ``testbed-<uid>``) and removes its own entries
when their pod stops running; entries anyone else wrote (a fault knob's stale ones) stay until
removed, like the leaks and leftovers the guide talks about.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STORE = Path("var/lib/cni/networks/kubenet")
OWN_PREFIX = "testbed-"  # first line of the entries the dataplane writes for running pods


def node_root(run_dir: Path, node: str) -> Path:
    return run_dir / "nodes" / node


def store_dir(run_dir: Path, node: str) -> Path:
    return node_root(run_dir, node) / STORE


def ensure(run_dir: Path, nodes: Iterable[str]) -> None:
    """Every node's store directory with its lock file, as kubenet leaves it on a fresh node."""
    for node in nodes:
        d = store_dir(run_dir, node)
        d.mkdir(parents=True, exist_ok=True)
        (d / "lock").touch()


def sandbox_id(seed: str) -> str:
    """A containerd-style 64-hex sandbox ID derived from ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


def write_entry(directory: Path, ip: str, first_line: str, mtime: float | None = None) -> None:
    """One allocation file, written atomically (a reader never sees half of it)."""
    tmp = directory / f".{ip}.tmp"
    tmp.write_text(f"{first_line}\neth0\n")
    tmp.replace(directory / ip)
    if mtime is not None:
        os.utime(directory / ip, (mtime, mtime))
    (directory / "last_reserved_ip.0").write_text(ip)


def sync_store(run_dir: Path, node: str, running: Mapping[str, str]) -> None:
    """Make the node's store hold an entry for each running pod (``ip -> uid``) and drop our entries
    whose pod no longer runs. Others' entries are left alone."""
    d = store_dir(run_dir, node)
    d.mkdir(parents=True, exist_ok=True)
    present: dict[str, str] = {}
    for entry in os.scandir(d):
        if entry.is_file() and entry.name[:1].isdigit():
            try:
                with open(entry.path, encoding="utf-8", errors="replace") as fh:
                    present[entry.name] = fh.readline().strip()
            except OSError:
                continue
    for ip, owner in present.items():
        if owner.startswith(OWN_PREFIX) and ip not in running:
            (d / ip).unlink(missing_ok=True)
    for ip, uid in running.items():
        if ip not in present:
            write_entry(d, ip, OWN_PREFIX + uid)


def host_path(pod: Mapping[str, Any], volume: Mapping[str, Any], run_dir: Path) -> Path:
    """Where a hostPath volume of ``pod`` lives: inside its node's directory.

    Raises ValueError (the runner reports the pod as failed to start) for a path leaving the node's
    root, or of type Directory that the node does not have (the kubelet refuses to mount it).
    """
    host = volume["hostPath"]
    path = str(host.get("path", "")).lstrip("/")
    if not path or ".." in Path(path).parts:
        raise ValueError(f"hostPath {host.get('path')!r} is not allowed on the testbed")
    source = node_root(run_dir, (pod.get("spec") or {}).get("nodeName", "")) / path
    if not source.exists():
        if host.get("type") == "Directory":
            raise ValueError(f"hostPath type check failed: /{path} is not a directory")
        source.mkdir(parents=True, exist_ok=True)
    return source


def binds(pod: Mapping[str, Any], container: Mapping[str, Any], run_dir: Path) -> list[str]:
    """``SRC:DST:ro|rw`` for each hostPath volume the container mounts (process mode, podexec --bind)."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("hostPath")}
    out = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        if volume is None:
            continue
        mode = "ro" if mount.get("readOnly") else "rw"
        out.append(f"{host_path(pod, volume, run_dir)}:{mount['mountPath']}:{mode}")
    return out
