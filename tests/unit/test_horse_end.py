"""Why a job's process ended, as its thread reads it (workers.runner.horse_end)."""

from __future__ import annotations

import os
import subprocess
import sys

from workers.runner import horse_end


def wait_status(*argv: str) -> int:
    """A real child's wait status, as RQ's os.wait4 gives it."""
    proc = subprocess.Popen([sys.executable, "-c", *argv])
    return os.waitpid(proc.pid, 0)[1]


def test_sigkill_within_the_time_out_points_at_the_memory_limit() -> None:
    status = wait_status("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    said = horse_end(status, ran_s=3.0, timeout_s=30.0)
    assert "killed (SIGKILL)" in said and "memory limit" in said and "OOMKilled" in said


def test_sigkill_past_the_time_out_says_time_out() -> None:
    status = wait_status("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    said = horse_end(status, ran_s=95.0, timeout_s=30.0)
    assert said == "its process was stopped after running past its 30 s time-out"


def test_a_crash_names_its_signal_and_an_exit_its_code() -> None:
    assert horse_end(wait_status("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"), 1.0, 30.0) == \
        "its process ended on SIGSEGV"
    assert horse_end(wait_status("raise SystemExit(3)"), 1.0, 30.0) == "its process exited with code 3 before answering"
    assert horse_end(None, 1.0, 30.0) == "its process ended before answering"
