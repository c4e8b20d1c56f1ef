"""Benchmark `check` on the testbed: 2 CoreDNS pods, 3 nodes, 3 names, --repeat 5.

Prints the wall time of the whole job (discovery, every layer, probe pods created, run, read and
deleted) healthy and with a dead upstream.  Goals (issue 5): healthy under 5 s; dead upstream at
most the probe timeout + 2 s, i.e. the layers run at once rather than one after another.

    sudo .venv/bin/python benchmarks/bench_check.py [--runs 5]

Uses a running testbed (`python -m testbed up`) or starts one and stops it afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from aksdns.commands import CheckCommand
from testbed import cluster
from workers.jobenv import JobEnv
from workers.jobs import check

NAMES = ("microsoft.com", "login.microsoftonline.com", "mcr.microsoft.com")


def measure(env: JobEnv, runs: int) -> tuple[list[float], dict[str, object]]:
    cmd = CheckCommand(names=NAMES, repeat=5, nodes=0)
    times = []
    data: dict[str, object] = {}
    for _ in range(runs):
        start = time.perf_counter()
        report = check.execute(cmd, env)
        times.append(time.perf_counter() - start)
        data = report.data
    return times, data


def show(label: str, times: list[float], data: dict[str, object]) -> None:
    ev = data["evidence"]
    assert isinstance(ev, dict)
    queries = len(ev["probes"]) + len(ev["search_probes"])
    hyps = data["hypotheses"]
    assert isinstance(hyps, list)
    print(
        f"{label:<14} runs={len(times)}  median {statistics.median(times):.2f} s  "
        f"min {min(times):.2f} s  max {max(times):.2f} s  "
        f"({queries} queries, {len(ev['node_probes'])} probe pods; top: {hyps[0]['rule']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tb = cluster.attach()
    owned = tb is None
    if tb is None:
        print("starting the testbed…")
        tb = cluster.up()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            resolv = Path(tmp) / "resolv.conf"
            resolv.write_text(
                f"nameserver {tb.kube_dns_ip}\n"
                "search aksdns.svc.cluster.local svc.cluster.local cluster.local testbed.internal.cloudapp.net\n"
                "options ndots:5\n"
            )
            env = JobEnv(
                cluster="testbed",
                kubeconfig=str(tb.write_worker_kubeconfig()),
                resolv_conf=resolv,
                azure_dns=tb.upstream,
            )
            pods, nodes = len(tb.coredns_pod_ips), len(tb.nodes)
            print(f"testbed: {pods} CoreDNS pods, {nodes} nodes; names {', '.join(NAMES)}; --repeat 5 --nodes all")
            print(f"probe timeout {check.PROBE_TIMEOUT_S:g} s")
            show("healthy", *measure(env, args.runs))
            tb.upstream_drop(100)
            try:
                times, data = measure(env, max(1, args.runs // 2))
            finally:
                tb.upstream_reset()
            show("dead upstream", times, data)
            goal = check.PROBE_TIMEOUT_S + 2
            print(
                f"dead-upstream goal ≤ {goal:g} s (probe timeout + 2 s): {'met' if max(times) <= goal else 'MISSED'}"
            )
    finally:
        if owned:
            cluster.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
