"""Report → Slack Block Kit, within Slack's limits.

Limits (https://api.slack.com/reference/block-kit/blocks): at most 50 blocks a message,
3,000 characters in a section's text, 150 in a header, 25 elements in an actions block.
The renderer owns them: what does not fit goes to a file attachment, never truncated
silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.render.text import hypothesis_text, render_text, table_text
from workers.report import Attachment, Hypothesis, Markdown, Report, StatusLine, Table

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_TABLE_ROWS_INLINE = 25
FALLBACK_TEXT_CHARS = 3000


@dataclass
class SlackMessage:
    """What the worker posts: blocks, the notification text, and files for the thread."""

    text: str
    blocks: list[dict[str, Any]]
    files: list[Attachment] = field(default_factory=list)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION_CHARS)}}


def _code(text: str) -> str:
    return "```" + text.replace("```", "'''") + "```"


def _table_blocks(table: Table, files: list[Attachment]) -> list[dict[str, Any]]:
    """A table inline when it fits, else its first rows inline and all of it as a file."""
    inline = table_text(table, max_rows=MAX_TABLE_ROWS_INLINE)
    body = f"*{table.title}*\n{_code(inline)}"
    if len(table.rows) > MAX_TABLE_ROWS_INLINE or len(body) > MAX_SECTION_CHARS:
        name = "".join(c if c.isalnum() else "-" for c in table.title.lower()).strip("-") or "table"
        files.append(Attachment(f"{name}.txt", table_text(table).encode(), table.title, "text"))
        if len(body) > MAX_SECTION_CHARS:
            first = table_text(Table(table.title, table.columns, table.rows[:5]), max_rows=5)
            body = f"*{table.title}* (all {len(table.rows)} rows in `{name}.txt`)\n{_code(first)}"
    return [_section(body)]


def _hypothesis_block(h: Hypothesis, rank: int) -> dict[str, Any]:
    lines = [f"*{rank}. {h.title}*  _(confidence: {h.confidence})_"]
    lines += [f"• {e}" for e in h.evidence]
    if h.actions:
        lines.append("*Action plan*")
        lines += [f"{i}. {a}" for i, a in enumerate(h.actions, 1)]
    lines += [f"<{link}|docs>" for link in h.links]
    text = "\n".join(lines)
    if len(text) > MAX_SECTION_CHARS:
        text = _clip(hypothesis_text(h, rank), MAX_SECTION_CHARS - 8)
    return _section(text)


def render_blocks(report: Report) -> SlackMessage:
    """The report as one threaded message plus files."""
    files = list(report.attachments)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(report.title, MAX_HEADER_CHARS)}},
        _section(f"{report.status.mark} {report.summary}"),
    ]
    status_lines: list[str] = []
    rank = 0

    def flush_status() -> None:
        if status_lines:
            blocks.append(_section("\n".join(status_lines)))
            status_lines.clear()

    for section in report.sections:
        if isinstance(section, StatusLine):
            detail = f" — {section.detail}" if section.detail else ""
            status_lines.append(f"{section.status.mark} *{section.label}*{detail}")
            continue
        flush_status()
        if isinstance(section, Markdown):
            blocks.append(_section(section.text))
        elif isinstance(section, Table):
            blocks.extend(_table_blocks(section, files))
        else:
            rank += 1
            blocks.append(_hypothesis_block(section, rank))
    flush_status()

    if report.buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": b.action_id,
                        "text": {"type": "plain_text", "text": _clip(b.text, 75)},
                        "value": _clip(b.value, 2000),
                        **({"style": b.style} if b.style else {}),
                    }
                    for b in report.buttons[:25]
                ],
            }
        )
    reserve = 1 if report.buttons else 0
    if len(blocks) > MAX_BLOCKS:
        # Keep the head of the report, move the whole of it to a file.
        keep = blocks[: MAX_BLOCKS - 1 - reserve]
        note = _section("_The full report did not fit in one message: see `report.txt`._")
        blocks = [*keep, note, *blocks[len(blocks) - reserve :]]
        files.append(Attachment("report.txt", render_text(report).encode(), report.title, "text"))
    fallback = _clip(f"{report.status.mark} {report.title}: {report.summary}", FALLBACK_TEXT_CHARS)
    return SlackMessage(text=fallback, blocks=blocks, files=files)
