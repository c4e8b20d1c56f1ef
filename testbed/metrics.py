"""A real metrics.k8s.io for the testbed: metrics-server behind the API server's aggregation layer,
fed by kwok's emulated kubelet resource metrics, which report what the real CoreDNS processes use.

* kwok serves `/metrics/nodes/NODE/metrics/resource` (its upstream `Metric` object) on its kubelet
  endpoint; each node carries metrics-server's ``metrics.k8s.io/resource-metrics-path`` annotation.
* The numbers come from ``ResourceUsage`` objects: the runner writes one per CoreDNS pod every few
  seconds with the process's CPU rate (from /proc/PID/stat) and memory (RSS, the working set a
  cgroup-less process has); kwok integrates the CPU rate into container_cpu_usage_seconds_total.
  Every other pod gets kwok's default 1m / 1Mi (ClusterResourceUsage).
* metrics-server (built from its Go module) scrapes every 10 s and serves on the bridge address; an
  APIService v1beta1.metrics.k8s.io points at a selector-less Service whose Endpoints name that
  address, and the API server (front-proxy flags, aggregator routing) proxies to it, so `kubectl top`
  and the worker read it exactly as on AKS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from testbed import layout, paths, pki, procs
from testbed.kube import JSON, Kube, apply_object
from testbed.state import State

NAME = "metrics-server"
RESOLUTION = "10s"  # metrics-server's minimum: `kubectl top` has numbers ~20 s after start
USAGE_PERIOD_S = 3.0
CRD_FILES = ("kwok.x-k8s.io_metrics.yaml", "kwok.x-k8s.io_resourceusages.yaml",
             "kwok.x-k8s.io_clusterresourceusages.yaml")
SHARE_FILES = ("kustomize/metrics/resource/metrics-resource.yaml", "kustomize/metrics/usage/usage-from-annotation.yaml")
KWOK_CRDS = "Metric,ResourceUsage,ClusterResourceUsage"
USAGE_API = "/apis/kwok.x-k8s.io/v1alpha1"


def metrics_path(node: str) -> str:
    return f"/metrics/nodes/{node}/metrics/resource"


def port(state: State) -> int:
    value = state.extra.get("metrics_port")
    if not value:
        value = str(procs.free_port())
        state.extra["metrics_port"] = value
        state.save()
    return int(value)


def apiserver_flags(pki_dir: Path) -> list[str]:
    """What the API server needs to proxy to an aggregated API (the front proxy)."""
    return [
        f"--requestheader-client-ca-file={pki_dir / 'ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki_dir / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki_dir / 'front-proxy-client.key'}",
        # Resolve the APIService's Service to its endpoint (the host has no kube-proxy for it).
        "--enable-aggregator-routing=true",
    ]


def make_pki(pki_dir: Path) -> None:
    pki.make_cert(pki_dir, "front-proxy-client", "front-proxy-client")


def crds() -> list[JSON]:
    share = paths.kwok_share_dir()
    return [yaml.safe_load((share / f).read_text()) for f in CRD_FILES]


def objects(state: State) -> list[JSON]:
    """kwok's Metric and default usage, and the Service, Endpoints and APIService of metrics-server."""
    share = paths.kwok_share_dir()
    out: list[JSON] = [yaml.safe_load((share / Path(f).name).read_text()) for f in SHARE_FILES]
    labels = {"k8s-app": NAME}
    out += [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": NAME, "namespace": "kube-system", "labels": labels},
         "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port(state)}]}},
        {"apiVersion": "v1", "kind": "Endpoints",
         "metadata": {"name": NAME, "namespace": "kube-system", "labels": labels},
         "subsets": [{"addresses": [{"ip": layout.GATEWAY_IP}],
                      "ports": [{"name": "https", "port": port(state), "protocol": "TCP"}]}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
         "spec": {"service": {"name": NAME, "namespace": "kube-system", "port": 443},
                  "group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]
    return out


def apply(kube: Kube, state: State) -> None:
    for obj in objects(state):
        apply_object(kube, obj)


def start(state: State, env: dict[str, str] | None = None) -> None:
    binary = paths.binary(NAME)
    if binary is None:
        raise FileNotFoundError("metrics-server is not built: python -m testbed.build metrics-server")
    p = state.pki
    kubeconfig = state.run / "admin.kubeconfig"
    procs.start(NAME, [
        str(binary), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={layout.GATEWAY_IP}", f"--secure-port={port(state)}",
        f"--cert-dir={state.run / 'metrics-server'}",
        "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
        "--kubelet-insecure-tls", f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        f"--metric-resolution={RESOLUTION}", "--kubelet-request-timeout=5s", "--v=1",
    ], state.pids, state.logs / f"{NAME}.log", env=env)


def stop(state: State) -> None:
    pid = procs.read_pid(state.pids / f"{NAME}.pid")
    if pid is not None:
        procs.stop_pid(pid, grace_s=2.0)
    (state.pids / f"{NAME}.pid").unlink(missing_ok=True)


def running(state: State) -> bool:
    return procs.alive(state.pids, NAME)


# ---------------------------------------------------------------------------- real usage → kwok


def _clock_ticks() -> int:
    import os

    return int(os.sysconf("SC_CLK_TCK"))


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (and its reaped children), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / _clock_ticks()


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def usage_object(namespace: str, name: str, container: str, cpu_m: int, memory_b: int) -> JSON:
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ResourceUsage",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"usages": [{"containers": [container],
                                 "usage": {"cpu": {"value": f"{max(cpu_m, 1)}m"},
                                           "memory": {"value": str(max(memory_b, 1))}}}]}}


def put_usage(kube: Kube, obj: JSON) -> None:
    meta: dict[str, Any] = obj["metadata"]
    kube.apply(f"{USAGE_API}/namespaces/{meta['namespace']}/resourceusages", meta["name"], obj)


def main() -> int:  # pragma: no cover - `python -m testbed.metrics` prints what kubectl top would read
    from testbed import cluster

    tb = cluster.attach()
    if tb is None:
        print("testbed not running", file=sys.stderr)
        return 1
    print(tb.kubectl("top", "pods", "-n", "kube-system").stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
