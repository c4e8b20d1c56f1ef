"""Benchmark `aksdns analyze` beside `tshark -q -z dns,tree` on generated CoreDNS captures.

    .venv/bin/python benchmarks/bench_analyze.py                 # 1 M and 4.5 M packets
    .venv/bin/python benchmarks/bench_analyze.py --packets 200000 --filters

Captures are written by the compiled core (aksdns_native.synthesize: the guide's rcode
mix, SERVFAIL after ~6 s, lost and re-sent queries, duplicate responses, TCP, IPv6).
Each tool runs as its own child process; wall time and the child's peak resident set
(wait4's ru_maxrss) are reported.  Prints numbers only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.pcap.native import synthesize  # noqa: E402

# What `aksdns analyze FILE` does (analysis, then the default text rendering); the tshark
# rendering is printed so that the run can be checked against tshark's own output.
ANALYZE_SNIPPET = (
    "import sys; from workers.jobs.analyze import analyze_files, render; "
    "r = analyze_files(sys.argv[1:]); render(r, 'text'); sys.stdout.write(str(render(r, 'tshark')))"
)


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float
    stdout: str


def measure(argv: list[str], *, cwd: Path | None = None) -> Run:
    """Run argv as a child; wall time and that child's own peak RSS (wait4)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    # ru_maxrss is in KiB on Linux.
    return Run(elapsed, usage.ru_maxrss / 1024.0, text)


def write_hostile(path: Path, packets: int) -> int:
    """Queries from ever-new sockets, none answered: memory must stay bounded anyway."""
    import struct

    from workers.pcap import synth as S

    frame = S.udp_packet(0, S.Endpoint("10.0.0.5", 1000), S.Endpoint("10.0.0.10", 53),
                         S.dns_message(1, "x.example.com")).data
    rec = bytearray(16 + len(frame))
    rec[16:] = frame
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        out = bytearray()
        for i in range(packets):
            struct.pack_into("<IIII", rec, 0, 1_700_000_000 + i // 10_000, i % 10_000 * 100, len(frame), len(frame))
            struct.pack_into("!H", rec, 16 + 34, 1024 + i % 60_000)  # UDP source port
            struct.pack_into("!H", rec, 16 + 42, (i // 60_000) & 0xFFFF)  # DNS ID
            out += rec
            if len(out) > 1 << 22:
                f.write(out)
                out = bytearray()
        f.write(out)
    return packets


def best(argv: list[str], repeat: int, *, cwd: Path | None = None) -> Run:
    """The fastest of `repeat` runs (shared machines are noisy), with the largest RSS seen."""
    runs = [measure(argv, cwd=cwd) for _ in range(repeat)]
    fastest = min(runs, key=lambda r: r.seconds)
    return Run(fastest.seconds, max(r.peak_rss_mib for r in runs), fastest.stdout)


def bench(path: Path, *, filters: bool, repeat: int) -> dict[str, Run]:
    tshark = shutil.which("tshark")
    runs: dict[str, Run] = {}
    runs["aksdns"] = best([sys.executable, "-c", ANALYZE_SNIPPET, str(path)], repeat, cwd=ROOT)
    if tshark:
        runs["tshark"] = best([tshark, "-q", "-n", "-r", str(path), "-z", "dns,tree"], repeat)
        if filters:
            runs["tshark-2 unanswered"] = best(
                [tshark, "-n", "-2", "-r", str(path), "-Y", "(dns.flags.response == 0) && ! dns.response_in"], 1)
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, nargs="*", default=[1_000_000, 4_500_000])
    ap.add_argument("--dir", type=Path, default=None, help="where to write the captures (default: a temp dir)")
    ap.add_argument("--filters", action="store_true", help="also time tshark's two-pass unanswered filter")
    ap.add_argument("--keep", action="store_true", help="keep the generated captures")
    ap.add_argument("--repeat", type=int, default=2, help="runs per tool; the fastest is reported")
    ap.add_argument("--hostile", action="store_true",
                    help="instead: never-answered queries from ever-new sockets (memory bound)")
    args = ap.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="aksdns-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, captures in {workdir}")
    print(f"{'packets':>10} {'file MiB':>9} {'gen s':>7} {'tool':<22} {'seconds':>9} {'peak RSS MiB':>13} "
          f"{'speedup':>8}")
    for n in args.packets:
        path = workdir / f"{'hostile' if args.hostile else 'coredns'}-{n}.pcap"
        t0 = time.perf_counter()
        written = write_hostile(path, n) if args.hostile else synthesize(path, n, seed=7)
        gen = time.perf_counter() - t0
        os.sync()  # the fresh file's write-back must not compete with the timed reads
        size = path.stat().st_size / 2**20
        runs = bench(path, filters=args.filters, repeat=max(1, args.repeat))
        base = runs.get("tshark")
        for name, run in runs.items():
            speed = f"{base.seconds / runs['aksdns'].seconds:7.1f}x" if base and name == "aksdns" else ""
            print(f"{written:>10,} {size:>9.1f} {gen:>7.2f} {name:<22} {run.seconds:>9.2f} "
                  f"{run.peak_rss_mib:>13.1f} {speed:>8}")
        if base:
            same = base.stdout == runs["aksdns"].stdout
            print(f"{'':>10} dns,tree output identical to tshark: {same}")
        if not args.keep:
            path.unlink()
    if args.dir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
