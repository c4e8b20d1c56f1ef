"""Benchmark `health` on the testbed as the worker runs it: the whole job (API reads, metrics.k8s.io,
two :9153 scrapes 5 s apart, logs, LocalDNS probe pods) in this process, against the worker's token.

    sudo .venv/bin/python benchmarks/bench_health.py [--runs 5]

Prints the median, min and max wall time, healthy and with LocalDNS on (probe pods on every node).
The two scrapes set a floor of about 5 s by design (rates need two readings). Uses a running
testbed or starts one (and stops it afterwards), holding the testbed session lock.
"""

from __future__ import annotations

import argparse
import statistics
import time

from aksdns.commands import HealthCommand
from testbed import cluster
from workers.jobenv import JobEnv
from workers.jobs import health


def measure(env: JobEnv, runs: int) -> tuple[list[float], str]:
    times, top = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        report = health.execute(HealthCommand(minutes=15), env)
        times.append(time.perf_counter() - start)
        top = str(report.data["top"])
    return times, top


def show(label: str, times: list[float], top: str) -> None:
    print(f"{label:<16} runs={len(times)}  median {statistics.median(times):.2f} s  min {min(times):.2f} s  "
          f"max {max(times):.2f} s  (top: {top})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with cluster.session() as tb:
        env = JobEnv(cluster="testbed", kubeconfig=str(tb.write_worker_kubeconfig()), azure_dns=tb.upstream)
        tb.metrics_ready()
        print(f"testbed: {len(tb.coredns_pod_ips)} CoreDNS pods, {len(tb.nodes)} nodes; scrape interval "
              f"{health.SCRAPE_INTERVAL_S:g} s")
        show("healthy", *measure(env, args.runs))
        try:
            tb.localdns_on()
            show("LocalDNS on", *measure(env, args.runs))
        finally:
            tb.localdns_off()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
