"""Report parts `ipam` and `service` share: the overall status from findings, the JSON and CSV
attachments, the Re-run button and the "since the previous run" sections.

The Re-run comparison is check's (``workers.analysis.check_diff``): both commands put their
per-node or per-rung lines under ``layers``, their facts under ``facts`` and their findings under
``hypotheses`` in ``report.data``, which is what that diff reads.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from aksdns.commands import Command
from workers.analysis.check_diff import diff_runs, diff_sections
from workers.findings import Finding, Severity
from workers.report import Attachment, Button, Section, StatusLine, Table


def status_of(findings: Sequence[Finding], healthy_rule: str = "all_healthy") -> str:
    """ok when the top finding is "healthy" and nothing else is worth a mark; else its severity's mark."""
    if not findings:
        return "info"
    top = findings[0]
    if top.rule == healthy_rule:
        return "ok" if len(findings) == 1 else "warn"
    return {Severity.CRITICAL: "fail", Severity.WARNING: "warn"}.get(top.severity, "info")


def lines_data(lines: Sequence[StatusLine]) -> list[dict[str, str]]:
    return [{"layer": x.label, "status": x.status.value, "detail": x.detail} for x in lines]


def facts_data(table: Table) -> list[dict[str, str]]:
    return [{"question": q, "answer": a} for q, a in table.rows]


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def attachments(stem: str, data: dict[str, Any], columns: Sequence[str], rows: Sequence[Sequence[Any]],
                what: str) -> list[Attachment]:
    return [
        Attachment(f"{stem}.json", json.dumps(data, indent=1).encode(), "Everything this run saw (JSON)", "json"),
        Attachment(f"{stem}.csv", csv_text(columns, rows).encode(), f"{what} (CSV)", "csv"),
    ]


def rerun_button(cmd: Command) -> Button:
    return Button("aksdns_rerun", "Re-run", json.dumps(cmd.to_dict(), sort_keys=True), "primary")


def since_previous(previous: dict[str, Any] | None, data: dict[str, Any]) -> list[Section]:
    """What changed since the previous run of this command in the thread (nothing without one)."""
    return diff_sections(diff_runs(previous, data)) if previous else []
