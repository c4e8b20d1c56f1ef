"""What a worker loads before it forks job processes (workers.analysis.traffic.warm)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_preload_loads_the_job_modules_and_freezes_the_heap() -> None:
    # In a process of its own: a freeze would otherwise keep this test run's objects forever.
    code = (
        "import gc, sys\n"
        "from workers.analysis.traffic import warm\n"
        "assert gc.get_freeze_count() == 0\n"
        "warm.preload()\n"
        "wanted = (*warm.JOB_MODULES, 'aksdns_native')\n"
        "print(gc.get_freeze_count() > 1000, [m for m in wanted if m not in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True []"
