"""Report → plain text for the terminal (and the thread transcript of the demo)."""

from __future__ import annotations

from workers.report import Hypothesis, Markdown, Report, Section, StatusLine, Table


def table_text(table: Table, *, max_rows: int | None = None) -> str:
    """A fixed-width table; ``max_rows`` cuts long ones with a note of how many remain."""
    rows = list(table.rows)
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        hidden = len(rows) - max_rows
        rows = rows[:max_rows]
    widths = [len(c) for c in table.columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(table.columns)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    if hidden:
        lines.append(f"… {hidden} more rows in the attachment")
    return "\n".join(lines)


def hypothesis_text(h: Hypothesis, rank: int) -> str:
    lines = [f"{rank}. {h.title} (confidence: {h.confidence})"]
    lines += [f"   evidence: {e}" for e in h.evidence]
    lines += [f"   action:   {a}" for a in h.actions]
    lines += [f"   see:      {link}" for link in h.links]
    return "\n".join(lines)


def section_text(section: Section, rank: int = 1) -> str:
    if isinstance(section, Markdown):
        return section.text
    if isinstance(section, StatusLine):
        detail = f" — {section.detail}" if section.detail else ""
        return f"{section.status.mark} {section.label}{detail}"
    if isinstance(section, Table):
        return f"{section.title}\n{table_text(section)}"
    return hypothesis_text(section, rank)


def render_text(report: Report) -> str:
    """The whole report as text, hypotheses numbered in rank order."""
    out = [f"{report.status.mark} {report.title}", report.summary, ""]
    rank = 0
    previous_status_line = False
    for section in report.sections:
        if isinstance(section, Hypothesis):
            rank += 1
        is_status = isinstance(section, StatusLine)
        if out and out[-1] != "" and not (is_status and previous_status_line):
            out.append("")
        out.append(section_text(section, rank))
        previous_status_line = is_status
    if report.attachments:
        out += ["", "Attachments: " + ", ".join(a.filename for a in report.attachments)]
    return "\n".join(out).rstrip() + "\n"
