"""The testbed's node dataplane: what kube-proxy, a network-policy engine and kubenet's IPAM store
do on an AKS node, kept in step with the API server by one process.

``python -m testbed.dataplane --run-dir DIR`` (started by ``up``) polls every POLL_S:

* Services (``testbed.kubeproxy``): every ClusterIP port DNATed to a ready endpoint, rejected
  without one, in the host (the worker) and in each node namespace (host-network pods and pods);
* NetworkPolicies (``testbed.netpol``): ingress rules enforced in the forward hook of each node;
* the kubenet host-local store of each node (``testbed.nodefs``): one entry per running pod.

Its rules live in their own nftables table (``aksdns_svc``), apart from the runner's kube-dns VIP.
It writes ``run/dataplane.json`` after each change (the Services and policies in force), so fault
knobs can wait until what they created is really enforced. The testbed's kube-proxy DaemonSet
(pods kwok keeps Running, one per node, label ``component=kube-proxy`` as on AKS) is created by
``up`` from :func:`kube_proxy_daemonset`: this process is what those pods stand for.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from testbed import kubeproxy, layout, netpol, nodefs, versions
from testbed.kube import JSON, Kube
from testbed.sh import ok, run
from testbed.state import State

TABLE = "aksdns_svc"
POLL_S = 0.5
STATUS_FILE = "dataplane.json"


def table_text(body: str) -> str:
    """An atomic replacement of the dataplane's table (create, delete, create again in one batch)."""
    return f"table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n{body}}}\n"


def apply(netns: str | None, text: str) -> None:
    argv = ["nft", "-f", "-"] if netns is None else ["ip", "netns", "exec", netns, "nft", "-f", "-"]
    run(argv, input_text=text)


def cleanup() -> None:
    """Remove the host's table (node namespaces take theirs with them when deleted)."""
    ok(["nft", "delete", "table", "ip", TABLE])


def status_path(run_dir: Path) -> Path:
    return run_dir / STATUS_FILE


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(status_path(run_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data


class Dataplane:
    def __init__(self, state: State) -> None:
        self.state = state
        self.kube: Kube = state.admin(timeout=10)
        self.nodes = {n.name: n for n in state.nodes()}
        self.applied: dict[str, str] = {}  # netns ("" = host) -> the text last applied
        self.stopping = threading.Event()
        nodefs.ensure(state.run, self.nodes)

    def tick(self) -> None:
        services = self.kube.get("/api/v1/services")["items"]
        slices = self.kube.get("/apis/discovery.k8s.io/v1/endpointslices")["items"]
        policies = self.kube.get("/apis/networking.k8s.io/v1/networkpolicies")["items"]
        pods = self.kube.get("/api/v1/pods")["items"]
        namespaces = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
                      for n in self.kube.get("/api/v1/namespaces")["items"]}
        forwards = kubeproxy.forwards(services, slices)
        changed = self._apply("", table_text(kubeproxy.nat_text(forwards, node=False)))
        for name, node in self.nodes.items():
            chains = netpol.node_chains(name, policies, pods, namespaces)
            changed |= self._apply(node.netns, table_text(kubeproxy.nat_text(forwards, node=True,
                                                                              policy_chains=chains)))
            running = {p["status"]["podIP"]: p["metadata"]["uid"] for p in pods
                       if p["spec"].get("nodeName") == name and netpol.running_pod(p)}
            nodefs.sync_store(self.state.run, name, running)
        if changed or not status_path(self.state.run).exists():
            self._write_status(forwards, policies, pods)

    def _apply(self, netns: str, text: str) -> bool:
        if self.applied.get(netns) == text:
            return False
        apply(netns or None, text)
        self.applied[netns] = text
        return True

    def _write_status(self, forwards: list[kubeproxy.Forward], policies: list[JSON], pods: list[JSON]) -> None:
        data = {
            "at": time.time(),
            "services": {f"{f.service} {f.port}/{f.protocol}": [f"{ip}:{port}" for ip, port in f.endpoints]
                         for f in forwards},
            "policies": netpol.enforced(policies, pods),
        }
        tmp = status_path(self.state.run).with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(status_path(self.state.run))

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep serving: an API hiccup must not stop the dataplane
                print(f"dataplane: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self.stopping.wait(POLL_S)


def kube_proxy_daemonset() -> JSON:
    """AKS's kube-proxy DaemonSet shape; its pods are kwok's (Running, Ready), never executed."""
    labels = {"component": "kube-proxy", "tier": "node"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system",
                     "labels": {**labels, "addonmanager.kubernetes.io/mode": "Reconcile"}},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{
                        "name": "kube-proxy",
                        "image": f"mcr.microsoft.com/oss/kubernetes/kube-proxy:{versions.KUBERNETES}",
                        "command": ["kube-proxy", "--conntrack-max-per-core=0", "--metrics-bind-address=0.0.0.0:10249"],
                        "resources": {"requests": {"cpu": "100m"}},
                        "securityContext": {"privileged": True},
                    }],
                },
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.dataplane")
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    state = State.load(args.run_dir)
    if state is None:
        print(f"dataplane: no testbed state in {args.run_dir}", file=sys.stderr)
        return 2
    plane = Dataplane(state)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        plane.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"dataplane: started ({layout.PREFIX}* nodes: {', '.join(plane.nodes)})", flush=True)
    plane.run()
    print("dataplane: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
