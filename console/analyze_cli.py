"""`aksdns analyze FILE...` in a terminal: the answer on stdout in the format asked for, and with
``--out DIR`` the report's pictures and CSV files there.

Both roads of the CLI end here — the short one from :mod:`console.entry` and the grammar's
(``aksdns analyze FILE --slow 2``) — so they print the same bytes.  Nothing here loads the grammar,
the verb registry or the job table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from aksdns.errors import UsageError
from console.output import write_report

DEFAULT_SLOW_S = 5.0  # AnalyzeCommand's default; test_analyze_cli checks they agree


def grammar_accepts(files: Sequence[str]) -> bool:
    """True when the grammar takes every word as a capture file name (its own rule, so that a
    name it refuses gets its message from the full road)."""
    from aksdns.validate import file_name

    try:
        for f in files:
            file_name(f)
    except UsageError:
        return False
    return True


def run(files: Sequence[str], *, slow_s: float, fmt: str, wireshark: str, out: str | None) -> int:
    """Analyze ``files`` as one merged capture and write the answer; 0 when done."""
    paths = [Path(f) for f in files]
    if fmt in {"csv", "tshark"}:
        # tshark's text and the CSV list need the capture core only: nothing else loads, and
        # --out has nothing to keep.
        from workers.analysis.traffic import analysis

        if fmt == "tshark":
            pending = analysis.start(paths, slow_s=slow_s, wireshark=wireshark, trees_only=True)
            sys.stdout.write(pending.tshark_text())
        else:
            pending = analysis.start(paths, slow_s=slow_s)
            from workers.analysis.traffic import formats  # loaded (with the model) while the core runs

            sys.stdout.write(formats.render_csv(pending.result()))
        return 0
    from workers.analysis.traffic.answer import report_for

    # Pictures and CSV files are made only when --out will keep them.
    write_report(report_for(paths, slow_s=slow_s, attachments=bool(out)), fmt, out)
    return 0
