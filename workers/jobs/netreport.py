"""What `ipam` and `service` share: optional reads, their probe pods' owner, and the report's frame —
the overall status from findings, the JSON and CSV attachments.

Both put their per-node or per-rung lines under ``layers``, their facts under ``facts`` and their
findings under ``hypotheses`` in ``report.data``; their Re-run bases (``workers.analysis.netcmd_basis``)
read those, and the runner puts what changed at the head of the reply and adds the Re-run and Hand
off buttons (``workers.jobs.run``, ``workers.thread_actions``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from aksdns.errors import ClusterError
from workers.findings import Finding, Severity
from workers.jobenv import JobEnv
from workers.probes import node_pods, pods
from workers.report import Attachment, Markdown, Report, Section, Status, StatusLine, Table


def optional(future: Future[Any], notes: list[str], default: Any) -> Any:
    """A read the report can do without: a refusal (403) becomes one line in ``notes``, not the end."""
    try:
        return future.result()
    except ClusterError as err:
        notes.append(err.user_message)
        return default


def pod_job(env: JobEnv) -> node_pods.PodJob:
    """The owner of this job's probe pods: a fresh run id, the release namespace, the aksdns job and user."""
    return node_pods.PodJob(pods.new_run_id(), env.namespace, env.probe_image, env.probe_command, env.job_id,
                            env.requested_by)


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


def report(title: str, findings: Sequence[Finding], data: dict[str, Any], sections: list[Section],
           foot: str, stem: str, table: tuple[Sequence[str], Sequence[Sequence[Any]], str]) -> Report:
    """The report: ``sections`` (status lines, tables), then the findings, a foot line, the JSON and a CSV
    (``table``: columns, rows, what they are); the summary is the top finding."""
    columns, rows, what = table
    return Report(
        title=title,
        status=Status(data["status"]),
        summary=findings[0].title,
        sections=[*sections, *(f.hypothesis for f in findings), Markdown(f"_{foot}_")],
        attachments=attachments(stem, data, columns, rows, what),
        data=data,
        findings=list(findings),
    )
