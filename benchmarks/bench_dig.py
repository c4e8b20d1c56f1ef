"""dig fan-out benchmark: 1,000 queries over 10 servers, one dead, 2 s timeout.

Goal (issue 2): the concurrent engine is done within timeout + 1 s.  The baseline is a
sequential loop over the same queries with the same engine; it would take minutes (every
query to the dead server waits the whole timeout), so it runs a per-server sample and is
extrapolated, and the script ends by itself.

Servers run in another process (so their work does not share the client's GIL):
  --servers fake   (default) 9 answering dnspython servers + 1 silent one (tests.dnsservers)
  --servers bind9  one Debian named listening on 9 ports + 1 silent dnspython server

Usage: .venv/bin/python benchmarks/bench_dig.py [--servers fake|bind9] [--runs 3] [--json]
Prints numbers only; never asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aksdns.commands import DnsServer  # noqa: E402
from workers.analysis.figures import percentile  # noqa: E402
from workers.evidence.dns import Query, QueryResult  # noqa: E402
from workers.jobs.dig import concurrency_for  # noqa: E402
from workers.probes.dns import run_queries_sync, run_query  # noqa: E402

QUERIES = 1000
SERVERS = 10
TIMEOUT_S = 2.0
SAMPLE_PER_SERVER = 5  # sequential baseline: this many queries per server, then extrapolate


@contextlib.contextmanager
def fake_servers(modes: list[str]) -> Iterator[list[tuple[str, DnsServer]]]:
    """Start tests.dnsservers in a child process; yields (mode, server) pairs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.dnsservers", *modes],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        servers = []
        for line in proc.stdout:
            if line.strip() == "ready":
                break
            mode, host, port = line.split()
            servers.append((mode, DnsServer(host, int(port))))
        if len(servers) != len(modes):
            raise RuntimeError("fake servers did not start")
        yield servers
    finally:
        if proc.stdin:
            proc.stdin.close()  # the child serves until stdin closes
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def servers_for(kind: str) -> Iterator[tuple[list[DnsServer], DnsServer, str]]:
    """(answering servers, dead server, name suffix)."""
    if kind == "fake":
        with fake_servers(["answer"] * (SERVERS - 1) + ["silent"]) as started:
            live = [s for mode, s in started if mode == "answer"]
            dead = next(s for mode, s in started if mode == "silent")
            yield live, dead, "bench.example"
        return
    from tests.dnsservers import run_bind9

    with (
        tempfile.TemporaryDirectory() as tmp,
        run_bind9(Path(tmp), ports=SERVERS - 1) as named,
        fake_servers(["silent"]) as silent,
    ):
        yield [named.server, *named.also], silent[0][1], "bench.aksdns.test"


def make_queries(servers: list[DnsServer], suffix: str) -> list[Query]:
    """QUERIES queries, round-robin over servers, distinct names (no cache can help)."""
    return [Query(servers[i % len(servers)], f"q{i}.{suffix}") for i in range(QUERIES)]


def describe(results: list[QueryResult], wall_s: float) -> dict[str, object]:
    latencies = [r.latency_ms for r in results if r.responded]
    return {
        "wall_s": round(wall_s, 3),
        "statuses": dict(Counter(r.status for r in results)),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies) if latencies else None,
    }


async def sequential_sample(queries: list[Query]) -> tuple[float, float]:
    """Run SAMPLE_PER_SERVER queries per server one after another.

    Returns (measured seconds for the sample, extrapolated seconds for all queries): each
    server's mean time per query times how many queries that server has.
    """
    per_server: dict[DnsServer, list[Query]] = {}
    for q in queries:
        per_server.setdefault(q.server, []).append(q)
    measured = 0.0
    estimate = 0.0
    for server_queries in per_server.values():
        sample = server_queries[:SAMPLE_PER_SERVER]
        start = time.monotonic()
        for q in sample:
            await run_query(q, timeout=TIMEOUT_S)
        spent = time.monotonic() - start
        measured += spent
        estimate += spent / len(sample) * len(server_queries)
    return measured, estimate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", choices=("fake", "bind9"), default="fake")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="queries in flight (default: what the dig job uses)"
    )
    args = parser.parse_args()
    concurrency = args.concurrency or concurrency_for(QUERIES)

    with servers_for(args.servers) as (live, dead, suffix):
        servers = [*live, dead]
        queries = make_queries(servers, suffix)
        run_queries_sync(queries[:20], timeout=TIMEOUT_S)  # warm-up: imports, first sockets
        runs = []
        for _ in range(args.runs):
            start = time.monotonic()
            results = run_queries_sync(queries, timeout=TIMEOUT_S, concurrency=concurrency)
            runs.append(describe(results, time.monotonic() - start))
        measured, estimate = asyncio.run(sequential_sample(queries))

    walls = [float(r["wall_s"]) for r in runs]  # type: ignore[arg-type]
    out = {
        "servers": args.servers,
        "queries": QUERIES,
        "server_count": SERVERS,
        "dead_servers": 1,
        "timeout_s": TIMEOUT_S,
        "goal_s": TIMEOUT_S + 1.0,
        "concurrent_runs": runs,
        "concurrent_median_s": round(statistics.median(walls), 3),
        "concurrency": concurrency,
        "runs_within_goal": sum(1 for w in walls if w <= TIMEOUT_S + 1.0),
        "sequential_sample_queries": SAMPLE_PER_SERVER * SERVERS,
        "sequential_sample_s": round(measured, 3),
        "sequential_estimate_s": round(estimate, 1),
        "speedup": round(estimate / statistics.median(walls), 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"dig fan-out: {QUERIES} queries, {SERVERS} servers ({args.servers}), 1 dead, "
        f"timeout {TIMEOUT_S:g} s, concurrency {concurrency}"
    )
    for i, r in enumerate(runs, 1):
        print(
            f"  concurrent run {i}: {r['wall_s']:.3f} s  statuses={r['statuses']}  "
            f"p50={r['p50_ms']} ms p95={r['p95_ms']} ms max={r['max_ms']} ms"
        )
    print(
        f"  concurrent median: {out['concurrent_median_s']:.3f} s  "
        f"(goal ≤ {out['goal_s']:g} s: {out['runs_within_goal']}/{len(walls)} runs within it)"
    )
    print(
        f"  sequential loop: {out['sequential_sample_queries']} queries took {measured:.2f} s; "
        f"extrapolated to {QUERIES}: {estimate:.1f} s  (speed-up ×{out['speedup']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
