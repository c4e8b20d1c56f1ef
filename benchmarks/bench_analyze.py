"""Benchmark what users run: every `aksdns analyze` format and the worker's job, end to end,
beside `tshark -q -z dns,tree`, on generated CoreDNS captures.

    .venv/bin/python benchmarks/bench_analyze.py                 # 1 M and 4.5 M packets
    .venv/bin/python benchmarks/bench_analyze.py --packets 200000 --repeat 1

Captures are written by the compiled core (aksdns_native.synthesize: the guide's rcode
mix, SERVFAIL after ~6 s, lost and re-sent queries, duplicate responses, TCP, IPv6).
Every measured command is its own child process, started cold; wall time (median and the
range over --repeat runs, taken in turn so that a burst of load on this shared machine
hits every command alike) and the child's peak resident set (wait4's ru_maxrss) are
reported, with the load average before and after each capture's runs; the commands run in a
new (seeded) order each round.  The worker job runs what a worker's
job process runs for a Slack thread: the job (analysis, report, both PNG pictures, both CSV
files) and the Slack message built from it; only the upload itself is left out (no network).
It is measured twice: forked from a process that has started like `aksdns worker`, as RQ runs
every job (benchmarks/worker_job.py: the job process's own time, fork to exit), and as a cold
process that imports everything itself (the worst case, for comparison).
Prints numbers only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.pcap.native import synthesize  # noqa: E402

AKSDNS = str(Path(sys.executable).parent / "aksdns")

WORKER_JOB = ROOT / "benchmarks" / "worker_job.py"


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float
    stdout: str


@dataclass(frozen=True)
class Figures:
    """One command over several runs: median and range of the wall time, largest RSS."""

    median_s: float
    min_s: float
    max_s: float
    peak_rss_mib: float
    stdout: str

    @staticmethod
    def of(runs: list[Run]) -> Figures:
        secs = [r.seconds for r in runs]
        return Figures(statistics.median(secs), min(secs), max(secs),
                       max(r.peak_rss_mib for r in runs), runs[0].stdout)

    def row(self, base: Figures | None) -> str:
        ratio = f"{base.median_s / self.median_s:.1f}x" if base else ""
        return (f"{self.median_s:>8.2f} {self.min_s:>6.2f}-{self.max_s:<6.2f} {self.peak_rss_mib:>9.1f} "
                f"{ratio:>10}")


FORKED = "worker job (forked)"


def measure_forked(path: Path) -> Run:
    """The worker job's own process, forked from a worker-like parent (benchmarks/worker_job.py)."""
    done = subprocess.run([sys.executable, str(WORKER_JOB), str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker_job.py exited {done.returncode}: {done.stderr[-300:]}")
    seconds, mib = done.stdout.split()
    return Run(float(seconds), float(mib), done.stderr)


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
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
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


def load() -> str:
    """The 1-minute load average (the machine is shared: it says how noisy a figure is)."""
    return f"{os.getloadavg()[0]:.1f}"


def user_commands(path: Path, out_dir: Path) -> dict[str, list[str]]:
    """Every way a user gets the answer: each CLI format, with and without --out, and the worker job."""
    cmds: dict[str, list[str]] = {}
    for fmt in ("text", "json", "csv", "tshark"):
        base = [AKSDNS, "analyze", str(path)] + ([] if fmt == "text" else ["--format", fmt])
        cmds[f"cli {fmt}"] = base
        cmds[f"cli {fmt} --out"] = [*base, "--out", str(out_dir / fmt)]
    cmds["cli tshark --wireshark 4.4"] = [AKSDNS, "analyze", str(path), "--format", "tshark", "--wireshark", "4.4"]
    cmds[FORKED] = []  # measured by measure_forked
    cmds["worker job (cold process)"] = [sys.executable, str(WORKER_JOB), str(path), "--cold"]
    return cmds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, nargs="*", default=[1_000_000, 4_500_000])
    ap.add_argument("--dir", type=Path, default=None, help="where to write the captures (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated captures")
    ap.add_argument("--repeat", type=int, default=5, help="runs per command (median and range reported)")
    ap.add_argument("--hostile", action="store_true",
                    help="instead: never-answered queries from ever-new sockets (memory bound)")
    args = ap.parse_args(argv)
    # pip compiles a package to bytecode when it installs it (the image, a user's virtualenv); this
    # checkout is an editable install, and with PYTHONDONTWRITEBYTECODE set (as on this machine)
    # every command would compile every module again, a cost no installed aksdns pays.
    for package in ("aksdns", "console", "workers"):
        compileall.compile_dir(ROOT / package, quiet=1)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="aksdns-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tshark = shutil.which("tshark")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeat} runs per command, "
          f"captures in {workdir}")
    print(f"{'packets':>10} {'file MiB':>9} {'command':<28} {'median s':>8} {'range s':<13} {'peak MiB':>9} "
          f"{'vs tshark':>10}")
    for n in args.packets:
        path = workdir / f"{'hostile' if args.hostile else 'coredns'}-{n}.pcap"
        if not path.exists():
            written = write_hostile(path, n) if args.hostile else synthesize(path, n, seed=7)
            assert written > 0
            os.sync()  # the fresh file's write-back must not compete with the timed reads
        size = path.stat().st_size / 2**20
        with tempfile.TemporaryDirectory(prefix="aksdns-bench-out-") as out_dir:
            cmds: dict[str, list[str]] = {}
            if tshark:
                cmds["tshark -q -z dns,tree"] = [tshark, "-q", "-n", "-r", str(path), "-z", "dns,tree"]
            cmds.update(user_commands(path, Path(out_dir)))
            print(f"{'':>10} load average before: {load()}")
            runs: dict[str, list[Run]] = {name: [] for name in cmds}
            order = random.Random(n)  # the same orders on every run of the benchmark
            for _ in range(args.repeat):
                # Every command once per round, so each sees the same noise; in a new order each
                # round, because a fixed order penalised one command: text, always run right
                # after tshark (which hands 644 MiB back to the kernel), was slower than json,
                # which does the same work, in 4 benchmark runs of 5 (medians 0.35-0.36 s against
                # 0.28-0.33 s).
                names = list(cmds)
                order.shuffle(names)
                for name in names:
                    cmd = cmds[name]
                    runs[name].append(measure_forked(path) if name == FORKED else measure(cmd, cwd=ROOT))
            figures = {name: Figures.of(r) for name, r in runs.items()}
            base = figures.get("tshark -q -z dns,tree")
            for name, fig in figures.items():
                print(f"{n:>10,} {size:>9.1f} {name:<28} {fig.row(base)}")
            if base:
                same = figures["cli tshark"].stdout == base.stdout
                print(f"{'':>10} dns,tree output identical to tshark's: {same}")
            print(f"{'':>10} load average after: {load()}")
        if not args.keep and args.dir is None:
            path.unlink()
    if args.dir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
