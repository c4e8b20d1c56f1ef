"""Ack latency of `aksdns bot --http` under bursts of slash commands.

Starts a real redis-server, the Slack stand-in and the bot (gunicorn, gthread), sends
bursts of 50 and 200 signed slash commands at once (three rounds each), and prints
p50/p99/max latency of the HTTP answers plus how many jobs reached the queue (none may be
lost). No worker runs (a heartbeat stands in for one), so the queue holds every job
afterwards. Bounded: six bursts, then everything stops.

    .venv/bin/python benchmarks/bench_ack.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dnsservers import free_port
from tests.services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    aksdns_env,
    heartbeat_only,
    run_aksdns,
    run_redis,
    sign,
    slash_body,
    wait_http,
)


def burst(url: str, size: int, tag: str) -> list[tuple[int, float]]:
    """All requests at once from one asyncio loop: a light client, so its own CPU use
    (threads fighting over one interpreter lock) does not inflate the server's latency."""
    bodies = [slash_body(f"dig n{i}.{tag}.bench.aksdns.test", user=f"U{i:05d}") for i in range(size)]
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80

    async def one(body: bytes, start: asyncio.Event) -> tuple[int, float]:
        head = "".join(f"{k}: {v}\r\n" for k, v in sign(body).items())
        request = (f"POST {parsed.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded"
                   f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{head}\r\n").encode() + body
        await start.wait()
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        elapsed = (time.perf_counter() - started) * 1000
        writer.close()
        return int(status_line.split()[1]), elapsed

    async def run() -> list[tuple[int, float]]:
        start = asyncio.Event()
        tasks = [asyncio.create_task(one(b, start)) for b in bodies]
        await asyncio.sleep(0.05)
        start.set()
        return list(await asyncio.gather(*tasks))

    return asyncio.run(run())


def settle(client: redis.Redis, expected: int, timeout_s: float = 30.0) -> int:
    """Wait (bounded) until ``expected`` jobs are queued; returns how many are."""
    deadline = time.monotonic() + timeout_s
    while True:
        queued = int(client.llen("rq:queue:aksdns:bench"))
        if queued >= expected or time.monotonic() > deadline:
            time.sleep(0.5)
            return int(client.llen("rq:queue:aksdns:bench"))
        time.sleep(0.1)


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
        workers = os.environ.get("BENCH_BOT_WORKERS", "2")
        # The cluster looks served (a heartbeat, no worker), so the bot queues rather than answering
        # "no worker is serving cluster bench".
        with heartbeat_only(redis_server.url, "bench"), run_aksdns(standin, env, Path(tmp) / "standin.log"), \
                run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", workers],
                           env, Path(tmp) / "bot.log"):
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz")
            # A running bot is warm: its gunicorn threads, follow-up pool and Redis connections exist.
            burst(base + "/slack/events", 50, "warm")
            queued_before = settle(redis_server.client(), 50)
            print("burst  round  answered  non-200  p50_ms  p99_ms  max_ms  queued")
            for size, round_no in [(50, r) for r in (1, 2, 3)] + [(200, r) for r in (1, 2, 3)]:
                results = burst(base + "/slack/events", size, f"b{size}r{round_no}")
                latencies = [ms for _, ms in results]
                bad = sum(1 for status, _ in results if status != 200)
                # Follow-ups (parent message, enqueue) run after the acks: let them finish, so that
                # each burst meets an idle bot, as bursts in an incident channel do.
                queued = settle(redis_server.client(), queued_before + size) - queued_before
                queued_before += queued
                print(f"{size:5d}  {round_no:5d}  {len(results):8d}  {bad:7d}  {statistics.median(latencies):6.1f}  "
                      f"{pct(latencies, 0.99):6.1f}  {max(latencies):6.1f}  {queued:6d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
