"""Where a capture's bytes wait on the worker's disk, and their retention.

Each job writes under its scratch directory (``<tmp>/aksdns-<job>-*/capture``), which the runner removes
when the job ends. A worker killed mid-capture leaves it behind: every directory carries its expiry
(``.expires``), and :func:`sweep` — run at worker start and at every capture's start — removes those
past it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

MARKER = ".expires"


def make(workdir: Path, retention_s: float, now: float | None = None) -> Path:
    spool = workdir / "capture"
    spool.mkdir(parents=True, exist_ok=True)
    (spool / MARKER).write_text(str(int((now if now is not None else time.time()) + retention_s)))
    return spool


def sweep(root: Path | None = None, now: float | None = None) -> int:
    """Remove capture directories past their expiry; returns how many."""
    root = root or Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = 0
    for marker in root.glob(f"aksdns-*/capture/{MARKER}"):
        try:
            expires = float(marker.read_text().strip() or 0)
        except (OSError, ValueError):
            expires = 0.0
        if now > expires:
            shutil.rmtree(marker.parent, ignore_errors=True)
            removed += 1
    return removed
