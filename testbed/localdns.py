"""AKS LocalDNS on the testbed's nodes: a real CoreDNS per node, on 169.254.10.10 (the node's resolver)
and 169.254.10.11 (the pods' address), as AKS runs its `localdns` systemd service.

`on(state)` puts both addresses on each node's loopback, starts one CoreDNS in each node namespace
(cluster names to the kube-dns VIP, everything else to the virtual network's DNS, both cached) and
points the node's resolv.conf at 169.254.10.10, so hostNetwork pods started afterwards (the probes)
resolve through it. `kill(state, node)` SIGKILLs one node's process (Azure/AKS#5930's dead
localdns.service: the addresses stay, nothing answers). `off(state)` undoes everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from testbed import layout, net, procs
from testbed.sh import ok, run
from testbed.state import State

NODE_ADDRESS, POD_ADDRESS = "169.254.10.10", "169.254.10.11"
METRICS_PORT = 9253


def corefile() -> str:
    bind = f"bind {NODE_ADDRESS} {POD_ADDRESS}"
    return f"""{layout.CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    {bind}
    errors
    cache 30
    forward . {layout.KUBE_DNS_IP}
}}
.:53 {{
    {bind}
    errors
    cache 30
    prometheus {NODE_ADDRESS}:{METRICS_PORT}
    forward . {layout.UPSTREAM_IP}
}}
"""


def node_resolv_conf() -> str:
    return (f"# aksdns testbed: LocalDNS on\nnameserver {NODE_ADDRESS}\n"
            f"search {layout.NODE_SEARCH_DOMAIN}\n")


def proc_name(node: layout.NodeSpec) -> str:
    return f"localdns-{node.name[-6:]}"


def _dir(state: State) -> Path:
    d = state.run / "localdns"
    d.mkdir(parents=True, exist_ok=True)
    return d


def start_node(state: State, node: layout.NodeSpec) -> None:
    for addr in (NODE_ADDRESS, POD_ADDRESS):
        ok(["ip", "-n", node.netns, "addr", "add", f"{addr}/32", "dev", "lo"])
    conf = _dir(state) / f"{node.name}.Corefile"
    conf.write_text(corefile())
    procs.start(proc_name(node), ["ip", "netns", "exec", node.netns, state.coredns_binary, "-conf", str(conf)],
                state.pids, state.logs / f"{proc_name(node)}.log")
    net.write_resolv_conf(node.netns, node_resolv_conf())


def on(state: State) -> None:
    for node in state.nodes():
        if not procs.alive(state.pids, proc_name(node)):
            start_node(state, node)


def running(state: State, node: layout.NodeSpec) -> bool:
    return procs.alive(state.pids, proc_name(node))


def kill(state: State, node: layout.NodeSpec) -> None:
    """The node's LocalDNS dies (SIGKILL); its addresses and the node's resolv.conf stay."""
    pid = procs.read_pid(state.pids / f"{proc_name(node)}.pid")
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        procs.wait_for(f"LocalDNS on {node.name} gone", lambda: procs.gone(pid), 10.0)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
    (state.pids / f"{proc_name(node)}.pid").unlink(missing_ok=True)


def off(state: State) -> None:
    for node in state.nodes():
        pid = procs.read_pid(state.pids / f"{proc_name(node)}.pid")
        if pid is not None:
            procs.stop_pid(pid, grace_s=1.0)
        (state.pids / f"{proc_name(node)}.pid").unlink(missing_ok=True)
        for addr in (NODE_ADDRESS, POD_ADDRESS):
            ok(["ip", "-n", node.netns, "addr", "del", f"{addr}/32", "dev", "lo"])
        net.write_resolv_conf(node.netns)


def answers(node: layout.NodeSpec, name: str = "kubernetes.default.svc.cluster.local") -> bool:
    """Does LocalDNS answer on this node (asked from inside the node namespace with dig)?"""
    proc = run(["ip", "netns", "exec", node.netns, "dig", "+short", "+time=1", "+tries=1", f"@{NODE_ADDRESS}",
                name], check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())
