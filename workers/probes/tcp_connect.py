"""TCP connects, all at once: the guide's ``curl -v telnet://<Pod-IP>:<containerPort>``.

:func:`connect_all` runs from the worker; :func:`probe_main` (``aksdns probe tcp-connect``) runs the
same in a hostNetwork probe pod on each node, so the connect leaves from the node's own address
(:func:`connect_from_nodes`). A handshake that completes is ``open``; an RST is ``refused``
(nothing listens, or kube-proxy rejects a Service without endpoints); silence is ``timeout``
(dropped: a network policy, a firewall); ICMP unreachable or no route is ``unreachable``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workers.evidence.service import ERROR, OPEN, REFUSED, TIMEOUT, UNREACHABLE
from workers.probes import node_pods
from workers.probes.node_probe import TERMINATION_LOG

KIND = "tcp-connect"
ROLE = "connect-probe"
MAX_TARGETS = 64
MAX_PARALLEL = 64
DEFAULT_TIMEOUT_S = 3.0
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


@dataclass(frozen=True)
class Outcome:
    """One connect: how it ended, how long it took, and the local address it left from."""

    target: str  # ip:port
    status: str
    latency_ms: float | None = None
    source_ip: str = ""
    error: str = ""


def split_target(target: str) -> tuple[str, int]:
    """``10.244.0.5:8080`` → (address, port); ValueError for anything else."""
    host, _, port_text = target.rpartition(":")
    ipaddress.ip_address(host)
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {target}")
    return host, port


def _route_source(host: str, port: int) -> str:
    """The local address the kernel would use for ``host`` (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return str(s.getsockname()[0])
    except OSError:
        return ""


async def _connect(target: str, timeout: float, gate: asyncio.Semaphore) -> Outcome:
    host, port = split_target(target)
    async with gate:
        started = time.perf_counter()
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except TimeoutError:
            return Outcome(target, TIMEOUT, None, _route_source(host, port))
        except ConnectionRefusedError:
            elapsed = (time.perf_counter() - started) * 1000
            return Outcome(target, REFUSED, round(elapsed, 2), _route_source(host, port))
        except OSError as exc:
            status = UNREACHABLE if exc.errno in _UNREACHABLE else ERROR
            return Outcome(target, status, None, _route_source(host, port), exc.strerror or type(exc).__name__)
        elapsed = (time.perf_counter() - started) * 1000
        sock = writer.get_extra_info("sockname")
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, TimeoutError):
            pass
        return Outcome(target, OPEN, round(elapsed, 2), str(sock[0]) if sock else "")


def connect_all(targets: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S) -> list[Outcome]:
    """Connect to every ``ip:port`` at once (bounded); one outcome per target, same order."""

    async def main() -> list[Outcome]:
        gate = asyncio.Semaphore(MAX_PARALLEL)
        return list(await asyncio.gather(*(_connect(t, timeout, gate) for t in targets)))

    return asyncio.run(main()) if targets else []


# ============================================================================ in the probe pod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aksdns probe tcp-connect", description="TCP connects from this node.")
    p.add_argument("--target", action="append", default=[], help="IP:PORT (repeatable)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    p.add_argument("--termination-log", default=TERMINATION_LOG)
    p.add_argument("--node", default=None)
    return p


def probe_main(argv: list[str]) -> int:
    """Entry of the probe pod: exit 0 when the connects ran (whatever they found), 2 on bad targets."""
    if argv and argv[0] == KIND:
        argv = argv[1:]
    args = _parser().parse_args(argv)
    node = args.node or os.environ.get("NODE_NAME") or socket.gethostname()
    out: dict[str, Any] = {"node": node, "r": [], "error": ""}
    try:
        targets = list(dict.fromkeys(args.target))[:MAX_TARGETS]
        for t in targets:
            split_target(t)
    except ValueError as exc:
        out["error"] = f"bad target: {exc}"
        node_pods.emit(out, args.termination_log)
        return 2
    timeout = min(max(args.timeout, 0.1), 30.0)
    out["r"] = [[o.target, o.status, o.latency_ms, o.source_ip, o.error] for o in connect_all(targets, timeout)]
    node_pods.emit(out, args.termination_log)
    return 0


# ============================================================================ in the worker


def plan(job: node_pods.PodJob, timeout_s: float = DEFAULT_TIMEOUT_S) -> node_pods.NodePodPlan:
    return node_pods.NodePodPlan(job=job, kind=KIND, role=ROLE, program_s=timeout_s + 1.0)


def outcomes_from(out: Mapping[str, Any]) -> list[Outcome]:
    rows = out.get("r", [])
    return [
        Outcome(str(r[0]), str(r[1]), None if r[2] is None else float(r[2]), str(r[3]), str(r[4]))
        for r in rows
        if isinstance(r, list) and len(r) == 5
    ]


def connect_from_nodes(
    core: Any,
    probe_plan: node_pods.NodePodPlan,
    nodes: Sequence[str],
    targets: Sequence[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[Outcome]], dict[str, str], list[str]]:
    """Connects from one hostNetwork probe pod per node: (outcomes per node, errors per node, notes)."""
    args = ["--timeout", f"{timeout_s:g}"]
    for t in targets[:MAX_TARGETS]:
        args += ["--target", t]
    outputs, notes = node_pods.run_on_nodes(core, probe_plan, {n: args for n in nodes}, progress)
    results = {o.node: outcomes_from(o.output) for o in outputs if o.ok and o.output is not None}
    errors = {o.node: o.error for o in outputs if not o.ok}
    return results, errors, notes


if __name__ == "__main__":
    sys.exit(probe_main(sys.argv[1:]))
