"""Benchmark `capture` on the testbed, the whole command as users run it, in separate processes.

    sudo .venv/bin/python benchmarks/bench_capture.py [thread] [memory] [live] [--duration 30]

* thread — `/aksdns capture --coredns --pod default/<client> --duration D` typed as a signed Slack
  request to `aksdns bot --http`, Start pressed, `aksdns worker` doing the job, the Slack stand-in as
  Slack: seconds from the Start click to the analysis in the thread, and to the end (goal: D + 10 s).
* memory — `aksdns capture --pod ×3 --duration 60s --out DIR` (the CLI runs the worker's job) while each
  of three client pods floods the kube-dns Service with padded queries: bytes kept per target and the
  process's resident memory, sampled while it streams and its peak over the whole run (goal: ≤ 128 MiB
  while streaming three targets of 100 MiB).
* live — the decoder alone on a synthetic capture (DNS messages decoded per second on one core), then
  `aksdns capture --live` on a client flooding 5,000 queries a second: rows written against packets
  captured and queries sent (no rows dropped).

Uses the testbed session lock; a running testbed from this code is reused, else one is started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from console import embedded
from console.capture_demo import capture_in_slack
from console.standin import SlackStandIn
from testbed import cluster

BOT_TOKEN = "xoxb-bench-local"
SECRET = "bench-signing-secret"
CHANNEL = "C0BENCH"
SIGNING_KEY = secrets.token_hex(32)  # the bot signs jobs, the worker checks them (a fresh key per run)
MIB = 1024 * 1024


def _env(tb: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AKSDNS_", "REDIS_"))}
    env.update(PATH=f"{embedded.VENV_BIN}:{env.get('PATH', '')}", KUBECONFIG=str(tb.worker_kubeconfig),
               AKSDNS_NAMESPACE="aksdns", AKSDNS_PROBE_IMAGE="aksdns:bench", AKSDNS_LOG_LEVEL="WARNING",
               AKSDNS_JOB_SIGNING_KEY=SIGNING_KEY, **extra)
    return env


# ---- thread -----------------------------------------------------------------------------------------------


def bench_thread(tb: Any, duration: int, work: Path) -> None:
    client = tb.dns_client("bench-client")
    try:
        with contextlib.ExitStack() as stack:
            redis_url = stack.enter_context(embedded.redis_server(work / "redis"))
            slack = SlackStandIn(BOT_TOKEN).start()
            stack.callback(slack.stop)
            env = _env(tb, REDIS_URL=redis_url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                       SLACK_SIGNING_SECRET=SECRET, AKSDNS_CLUSTER="bench", AKSDNS_PRIVILEGED_USERS="U0ONCALL")
            port = embedded.free_port()
            stack.enter_context(embedded.process(embedded.aksdns_argv("worker"), env, work / "worker.log"))
            stack.enter_context(embedded.process(embedded.aksdns_argv(
                "bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"), env, work / "bot.log"))
            embedded.wait_http_ok(f"http://127.0.0.1:{port}/healthz")
            text = f"capture --coredns --pod default/bench-client --duration {duration}s"
            names = [f"bench{i}.wild.example.com." for i in range(20)]
            run = capture_in_slack(f"http://127.0.0.1:{port}/slack/events", SECRET, slack, CHANNEL, text,
                                   traffic=lambda: client.query(names, count=2, rate=4))
            assert run.analysis_at is not None and run.done_at is not None
            start_to_analysis = run.analysis_at - run.clicked_at
            to_capturing = (run.capturing_at or 0) - run.clicked_at
            print(f"thread   3 targets, {duration} s: Start → capturing {to_capturing:.1f} s"
                  f" · Start → analysis in the thread {start_to_analysis:.1f} s"
                  f" · Start → done {run.done_at - run.clicked_at:.1f} s"
                  f" (goal ≤ {duration + 10} s: {'met' if start_to_analysis <= duration + 10 else 'NOT met'})")
            (work / "thread.txt").write_text(slack.transcript(CHANNEL, run.root.ts))
            print(f"         the thread: {work / 'thread.txt'}")
    finally:
        client.delete()


# ---- memory -----------------------------------------------------------------------------------------------


def bench_memory(tb: Any, work: Path, duration: int = 60, per_target_mib: int = 100) -> None:
    nodes = tb.nodes
    clients = [tb.dns_client(f"bench-flood-{i}", node=nodes[i % len(nodes)]) for i in range(3)]
    try:
        argv = [*embedded.aksdns_argv("capture"), *[w for c in clients for w in ("--pod", f"default/{c.name}")],
                "--duration", f"{duration}s", "--out", str(work / "out")]
        proc = subprocess.Popen(argv, env=_env(tb, AKSDNS_CAPTURE_MAX_MIB=str(per_target_mib)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        floods: list[threading.Thread] = []
        peak = {"streaming": 0.0, "all": 0.0}
        phase = {"now": "start"}

        def watch() -> None:
            while proc.poll() is None:
                try:
                    text = Path(f"/proc/{proc.pid}/status").read_text()
                except OSError:
                    return
                rss = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS")) / 1024
                peak["all"] = max(peak["all"], rss)
                if phase["now"] == "capturing":
                    peak["streaming"] = max(peak["streaming"], rss)
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        for line in proc.stderr:
            if line.startswith("… capturing") and phase["now"] != "capturing":
                phase["now"] = "capturing"
                # ~1 KiB queries at 2,000 a second per client: about 100 MiB per target within the minute
                for c in clients:
                    t = threading.Thread(target=c.flood, kwargs={"seconds": duration - 8, "rate": 2000, "size": 900},
                                         daemon=True)
                    t.start()
                    floods.append(t)
            elif line.startswith(("… finishing", "… stopped")):
                phase["now"] = "after"
        out, _err = proc.communicate(timeout=600)
        watcher.join(2)
        elapsed = time.monotonic() - started
        peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        kept = {line.split(" — ")[0].strip("✅⚠️❌ "): line for line in out.splitlines() if " packets, " in line}
        print(f"memory   3 targets flooded for {duration - 8} s, cap {per_target_mib} MiB each, {elapsed:.0f} s in all")
        for label, line in kept.items():
            print(f"         {label}: {line.split(' — ')[1].split(' · ')[0]}")
        print(f"         resident memory while streaming: peak {peak['streaming']:.0f} MiB (goal ≤ 128 MiB); "
              f"whole run (merge, analysis, gzip included): peak {max(peak['all'], peak_rss):.0f} MiB")
        for f in sorted((work / "out").glob("*")):
            print(f"         {f.name}: {f.stat().st_size / MIB:.1f} MiB")
    finally:
        for c in clients:
            c.delete()


# ---- live -------------------------------------------------------------------------------------------------


def bench_decoder(work: Path, packets: int = 400_000) -> float:
    from workers.analysis.capture_live import LiveTracker
    from workers.analysis.capture_wire import decode
    from workers.capture.pcapio import read_pcap
    from workers.pcap.native import synthesize

    path = work / "synthetic.pcap"
    synthesize(path, packets)
    rows = 0

    def sink(_row: object) -> None:
        nonlocal rows
        rows += 1

    tracker = LiveTracker({}, sink)
    records = [(info.linktype, rec) for info, rec in read_pcap(path)]
    start = time.perf_counter()
    for linktype, rec in records:
        m = decode(rec.ts_ns, linktype, rec.data)
        if m is not None:
            tracker.feed("bench", m)
    tracker.finish()
    seconds = time.perf_counter() - start
    rate = len(records) / seconds
    print(f"live     decoder alone: {len(records):,} frames → {rows:,} rows in {seconds:.2f} s = "
          f"{rate:,.0f} DNS messages decoded per second on one core")
    return rate


def bench_live(tb: Any, work: Path, qps: int = 5000, seconds: int = 10) -> None:
    client = tb.dns_client("bench-live")
    try:
        argv = [*embedded.aksdns_argv("capture"), "--live", "--pod", "default/bench-live", "--duration",
                f"{seconds + 6}s", "--out", str(work / "live"), "--format", "json"]
        proc = subprocess.Popen(argv, env=_env(tb), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        sent = 0
        for line in proc.stderr:
            if line.startswith("… capturing"):
                sent = client.flood(seconds=seconds, rate=qps)
                break
        out, _ = proc.communicate(timeout=300)
        import json

        data = json.loads(out)
        target = data["targets"][0]
        csv_rows = sum(1 for _ in next((work / "live").glob("trace-dns-*.csv")).open()) - 1
        print(f"live     {qps:,} queries/s for {seconds} s at one client: {sent:,} sent, {target['packets']:,} packets "
              f"captured, {csv_rows:,} rows written (answered {data['live']['answered']:,}, unanswered "
              f"{data['live']['unanswered']:,}), kernel drops {target['kernel_dropped']}")
    finally:
        client.delete()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="*", default=["thread", "memory", "live"])
    parser.add_argument("--duration", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    if "live" in args.what:
        bench_decoder(work)
    with cluster.session() as tb:
        tb.write_worker_kubeconfig()
        if "thread" in args.what:
            bench_thread(tb, args.duration, work)
        if "memory" in args.what:
            bench_memory(tb, work)
        if "live" in args.what:
            bench_live(tb, work)
    print(f"(files of this run: {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
