"""One `analyze` job as a worker runs it for a Slack thread: the capture read as a thread upload,
the job (analysis, report, both pictures, both CSV files) and the Slack message built from it.
Only the upload is left out (no network).

    .venv/bin/python benchmarks/worker_job.py CAPTURE          # forked, as RQ runs it
    .venv/bin/python benchmarks/worker_job.py CAPTURE --cold   # in this process, imports and all

Forked: this process starts like `aksdns worker` (its modules and ``warm.preload()``), then forks
the job process, as RQ's work-horse model does for every job, and prints that process's wall time
(fork to exit) and peak RSS: "SECONDS MIB". Cold: the job runs here and prints nothing (the caller
times the whole process). Used by bench_analyze.py; nothing here asserts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def job(capture: Path) -> None:
    from aksdns.commands import AnalyzeCommand
    from workers import jobs
    from workers.jobenv import JobEnv
    from workers.render.blocks import render_blocks

    env = JobEnv(cluster="bench", source="slack", thread_files=lambda: [capture])
    report = jobs.execute(AnalyzeCommand(), env)
    message = render_blocks(report)
    sizes = {a.filename: len(a.content) for a in report.attachments}
    # Written to stderr: stdout carries the figures only.
    sys.stderr.write(json.dumps(message.blocks)[:100] + json.dumps(sizes) + "\n")


def forked(capture: Path) -> int:
    import workers.main  # noqa: F401  (what `aksdns worker` has loaded before its first job)
    from workers.analysis.traffic import warm

    warm.preload()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            job(capture)
        except BaseException:  # the parent reports the failure through the exit status
            code = 1
        os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"the job process failed (status {status})", file=sys.stderr)
        return 1
    print(f"{elapsed:.4f} {usage.ru_maxrss / 1024.0:.1f}")  # ru_maxrss: KiB on Linux
    return 0


def main() -> int:
    capture = Path(sys.argv[1])
    if sys.argv[2:] == ["--cold"]:
        job(capture)
        return 0
    return forked(capture)


if __name__ == "__main__":
    raise SystemExit(main())
