"""Benchmark `ipam` and `service` on the testbed, as a user gets them: `aksdns ipam` / `aksdns service`
run by the CLI in a process of its own each time (start-up, reads, probe pods on 3 nodes created, run,
read and deleted), with the worker's ServiceAccount token.

Cases: ipam on a healthy cluster; service on a healthy Service (connects from the worker and 3
nodes); service while a NetworkPolicy drops the connects (they wait for the 3 s connect time-out,
once, not once per target).

    sudo .venv/bin/python benchmarks/bench_netcmds.py [--runs 5]

Takes the testbed's session lock; uses a running testbed (faults reset) or starts one and stops it.
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

from testbed import cluster, faults_service
from workers.jobs import service

AKSDNS = str(Path(sys.executable).parent / "aksdns")


def once(argv: list[str], kubeconfig: Path) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "AKSDNS_LOG_LEVEL": "WARNING"}
    start = time.perf_counter()
    proc = subprocess.run([AKSDNS, *argv, "--format", "json"], capture_output=True, text=True, timeout=120, env=env)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"aksdns {' '.join(argv)} failed: {proc.stderr.strip()[:300]}")
    data: dict[str, object] = json.loads(proc.stdout)
    return took, data


def measure(label: str, argv: list[str], kubeconfig: Path, runs: int) -> None:
    times = []
    data: dict[str, object] = {}
    for _ in range(runs):
        took, data = once(argv, kubeconfig)
        times.append(took)
    hyps = data["hypotheses"]
    assert isinstance(hyps, list)
    inner = data.get("elapsed_s")
    print(f"{label:<28} runs={len(times)}  median {statistics.median(times):.2f} s  min {min(times):.2f} s  "
          f"max {max(times):.2f} s  (job itself {inner} s in the last run; top: {hyps[0]['rule']})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with cluster.session() as tb:
        kubeconfig = tb.write_worker_kubeconfig()
        print(f"testbed: {len(tb.nodes)} nodes; each run is `aksdns … --format json` in a new process")
        measure("ipam (healthy)", ["ipam"], kubeconfig, args.runs)
        try:
            ns, name = faults_service.healthy(tb)
            measure("service (healthy)", ["service", f"{ns}/{name}"], kubeconfig, args.runs)
            faults_service.deny_policy(tb)
            print(f"connect time-out {service.CONNECT_TIMEOUT_S:g} s")
            measure("service (policy drops)", ["service", f"{ns}/{name}"], kubeconfig, args.runs)
        finally:
            faults_service.reset(tb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
