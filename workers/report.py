"""The report model: what a job found, as pure data, before any rendering.

Jobs build a :class:`Report`; ``workers.render`` turns it into Slack blocks, text or
JSON.  Renderers own the destination's limits (Block Kit: 50 blocks, 3,000 characters a
section), so jobs never truncate anything themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # workers.findings builds on Hypothesis below
    from workers.findings import Finding


class Status(StrEnum):
    """Overall verdict of a report or of one line of it."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    INFO = "info"

    @property
    def mark(self) -> str:
        return {"ok": "✅", "warn": "⚠️", "fail": "❌", "info": "ℹ️"}[self.value]


@dataclass(frozen=True)
class Markdown:
    """A paragraph of Slack mrkdwn (also printed as-is in text output)."""

    text: str


@dataclass(frozen=True)
class StatusLine:
    """One line with a status mark, e.g. one layer of `check`."""

    status: Status
    label: str
    detail: str = ""


@dataclass(frozen=True)
class Table:
    """A table; wide or long ones become a file attachment when rendered for Slack."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Hypothesis:
    """A ranked explanation with its evidence and the guide's action plan."""

    title: str
    confidence: str  # "high" | "medium" | "low"
    evidence: tuple[str, ...]
    actions: tuple[str, ...]
    links: tuple[str, ...] = ()


Section = Markdown | StatusLine | Table | Hypothesis


@dataclass(frozen=True)
class Attachment:
    """A file posted to the thread (files_upload_v2) or written next to CLI output."""

    filename: str
    content: bytes
    title: str
    filetype: str = "text"


@dataclass(frozen=True)
class Button:
    """An interactive button; ``value`` is the JSON job request it re-runs."""

    action_id: str
    text: str
    value: str
    style: str | None = None  # "primary" | "danger" | None


@dataclass
class Report:
    """Everything a job wants to say in its thread."""

    title: str
    status: Status
    summary: str
    sections: list[Section] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # the --format json payload
    findings: list[Finding] = field(default_factory=list)  # ranked; the thread's history keeps the top ones
    # Filled by workers.jobs.run: what the thread keeps to compare the next run of this command with
    # (workers.analysis.rerun_diff.Basis as JSON) and what changed since the previous one, a line each.
    basis: dict[str, Any] | None = None
    changes: tuple[str, ...] = ()
    quiet: bool = False  # nothing worth a reply (a `watch` run that saw no change): the parent line says it
