"""Benchmark `apiserver` on the testbed: the whole command as the CLI runs it, in its own process.

`aksdns apiserver --kubeconfig <the worker's ServiceAccount> --format json`, run N times healthy and
N times with one node's way to the API server dropped (the testbed's `node_unreachable` knob): process
start, the worker's stages (name, TCP, TLS, credentials, /readyz, /livez), the `kubernetes` Service,
konnectivity-agent, one host-network probe pod per node (created, run, read through the API server,
deleted), the rules and the report. Prints wall time (what the user waits for) and the job's own
`elapsed_s` (the part after Python start-up and imports).

    sudo .venv/bin/python benchmarks/bench_apiserver.py [--runs 3]

Takes the machine's testbed lock (the fault knob is global); uses a running testbed or starts one and
stops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testbed import cluster

AKSDNS = str(Path(sys.executable).parent / "aksdns")
RUN_TIMEOUT_S = 180


def once(kubeconfig: str) -> tuple[float, dict[str, Any]]:
    argv = [AKSDNS, "apiserver", "--kubeconfig", kubeconfig, "--format", "json"]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"aksdns apiserver exited {proc.returncode}: {proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return wall, data


def measure(label: str, kubeconfig: str, runs: int) -> None:
    walls: list[float] = []
    jobs: list[float] = []
    data: dict[str, Any] = {}
    for _ in range(runs):
        wall, data = once(kubeconfig)
        walls.append(wall)
        jobs.append(float(data["elapsed_s"]))
    ev = data["evidence"]
    print(f"{label:<22} runs={runs}  wall median {statistics.median(walls):.2f} s "
          f"(min {min(walls):.2f}, max {max(walls):.2f})  job median {statistics.median(jobs):.2f} s  "
          f"[{len(ev['probes'])} stage rows, {len(ev['node_runs'])} probe pods; "
          f"top: {data['hypotheses'][0]['rule']}]", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lock = cluster.acquire_session(who="bench_apiserver")
    try:
        tb = cluster.attach()
        owned = tb is None
        if tb is None:
            print("starting the testbed…", flush=True)
            tb = cluster.up()
        try:
            tb.reset_faults()
            kubeconfig = str(tb.write_worker_kubeconfig())
            print(f"testbed: {len(tb.nodes)} nodes; `aksdns apiserver` as a separate process, {args.runs} runs each")
            measure("healthy", kubeconfig, args.runs)
            node = tb.apiserver_faults.node_unreachable()
            try:
                measure("one node cut off", kubeconfig, args.runs)
            finally:
                tb.apiserver_faults.reset()
            print(f"(cut off: {node}; its TCP connects wait out the probe's 3 s connect time-out)")
        finally:
            if owned:
                cluster.down()
    finally:
        lock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
