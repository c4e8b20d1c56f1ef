"""Ack latency of `aksdns bot --http` under bursts of slash commands.

Starts a real redis-server, the Slack stand-in and the bot (gunicorn, gthread), sends
bursts of 50 and 200 signed slash commands at once (three rounds each), and prints
p50/p99/max latency of the HTTP answers plus how many jobs reached the queue (none may be
lost). No worker runs, so the queue holds every job afterwards. Bounded: six bursts, then
everything stops.

    .venv/bin/python benchmarks/bench_ack.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dnsservers import free_port
from tests.services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    aksdns_env,
    post,
    run_aksdns,
    run_redis,
    sign,
    slash_body,
    wait_http,
)


def burst(url: str, size: int, tag: str) -> list[tuple[int, float]]:
    bodies = [slash_body(f"dig n{i}.{tag}.bench.aksdns.test", user=f"U{i:05d}") for i in range(size)]

    def one(body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        status, _ = post(url, body, sign(body), "application/x-www-form-urlencoded")
        return status, (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(max_workers=size) as pool:
        return list(pool.map(one, bodies))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, run_redis(Path(tmp) / "redis") as redis_server:
        # The Slack stand-in runs in a process of its own, so that the load generator's threads
        # and the stand-in's do not share one interpreter lock and skew the latencies.
        slack_port = free_port()
        slack_api = f"http://127.0.0.1:{slack_port}/api/"
        port = free_port()
        env = aksdns_env(REDIS_URL=redis_server.url, SLACK_API_URL=slack_api, SLACK_BOT_TOKEN=BOT_TOKEN,
                         SLACK_SIGNING_SECRET=SIGNING_SECRET, AKSDNS_CLUSTER="bench", AKSDNS_LOG_LEVEL="WARNING")
        standin = ["standin", "--port", str(slack_port), "--token", BOT_TOKEN]
        with run_aksdns(standin, env, Path(tmp) / "standin.log"), \
                run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port)], env, Path(tmp) / "bot.log"):
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz")
            burst(base + "/slack/events", 5, "warm")  # first requests build clients per worker
            time.sleep(1)
            queued_before = redis_server.client().llen("rq:queue:aksdns:bench")
            print("burst  round  answered  non-200  p50_ms  p99_ms  max_ms  queued")
            for size, round_no in [(50, r) for r in (1, 2, 3)] + [(200, r) for r in (1, 2, 3)]:
                results = burst(base + "/slack/events", size, f"b{size}r{round_no}")
                latencies = [ms for _, ms in results]
                bad = sum(1 for status, _ in results if status != 200)
                time.sleep(2)  # the listener queues after the ack
                queued = redis_server.client().llen("rq:queue:aksdns:bench") - queued_before
                queued_before += queued
                print(f"{size:5d}  {round_no:5d}  {len(results):8d}  {bad:7d}  {statistics.median(latencies):6.1f}  "
                      f"{pct(latencies, 0.99):6.1f}  {max(latencies):6.1f}  {queued:6d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
