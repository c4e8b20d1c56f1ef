"""`analyze`'s whole answer for capture files: one pass of the compiled core, then the report.

Shared by the worker's job (``workers.jobs.analyze``, files uploaded to a thread) and the
terminal's `aksdns analyze FILE...` (``console.analyze_cli``), which comes here without loading
the grammar or the job table: that command is the one timed against tshark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.report import Report


def _no_progress(_text: str) -> None:
    pass


def report_for(
    paths: Sequence[Path], *, slow_s: float, attachments: bool, progress: Callable[[str], None] = _no_progress
) -> Report:
    """Analyze ``paths`` as one merged capture and build the report.

    ``attachments=False`` skips the pictures and CSV files (the CLI without ``--out``: nothing
    would show them).
    """
    # The pcap core loads only here.
    from workers.analysis.traffic import analysis

    progress(f"🔬 analyze: reading {len(paths)} capture file(s)…")
    pending = analysis.start(paths, slow_s=slow_s)
    # While the core's threads read the captures, this thread loads what the report needs
    # (a forked worker job has it loaded already: then this costs nothing).
    from workers.analysis.traffic.report import build_report

    if attachments:
        from workers.analysis.traffic import charts  # noqa: F401  (the pictures' layout)
    result = pending.result()
    names = ", ".join(p.name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
    return build_report(result, title=f"DNS traffic analysis — {names}", attachments=attachments)
