"""Benchmark `health` on the testbed as a user gets it: `aksdns health --format json` run as its own
process (Python start, imports, every API read, metrics.k8s.io, two :9153 scrapes 5 s apart, logs,
LocalDNS probe pods), against the worker's ServiceAccount token.

    sudo .venv/bin/python benchmarks/bench_health.py [--runs 5]

Prints the median, min and max wall time, healthy and with LocalDNS on (probe pods on every node).
The two scrapes set a floor of about 5 s by design (rates need two readings). Uses a running
testbed or starts one (and stops it afterwards), holding the testbed session lock.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from testbed import cluster
from workers.jobs import health

AKSDNS = Path(sys.executable).with_name("aksdns")
TIMEOUT_S = 300


def measure(kubeconfig: str, upstream: str, runs: int) -> tuple[list[float], str]:
    times, top = [], ""
    # The testbed's private stand-in for Azure DNS (168.63.129.16), as the worker's settings name it.
    env = {**os.environ, "AKSDNS_CLUSTER": "testbed", "AKSDNS_AZURE_DNS": upstream}
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([str(AKSDNS), "health", "--minutes", "15", "--kubeconfig", kubeconfig,
                               "--format", "json"], capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"aksdns health failed: {done.stderr.strip()[-500:]}")
        top = str(json.loads(done.stdout)["top"])
    return times, top


def show(label: str, times: list[float], top: str) -> None:
    print(f"{label:<16} runs={len(times)}  median {statistics.median(times):.2f} s  min {min(times):.2f} s  "
          f"max {max(times):.2f} s  (top: {top})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with cluster.session() as tb:
        kubeconfig = str(tb.write_worker_kubeconfig())
        tb.metrics_ready()
        print(f"testbed: {len(tb.coredns_pod_ips)} CoreDNS pods, {len(tb.nodes)} nodes; scrape interval "
              f"{health.SCRAPE_INTERVAL_S:g} s; `aksdns health` as a process")
        show("healthy", *measure(kubeconfig, str(tb.upstream), args.runs))
        try:
            tb.localdns_on()
            show("LocalDNS on", *measure(kubeconfig, str(tb.upstream), args.runs))
        finally:
            tb.localdns_off()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
