"""What changed between two runs of one command in a thread: the guide's steps 4 and 5 (observe, repeat).

Every command reduces its report to a :class:`Basis` (its ``rerun_basis`` in the verb registry; the
default, :func:`findings_basis`, keeps the findings alone): the findings (rule, title, severity,
subjects), figures (numbers: failed queries, p95), states (a label and a short value compared as
text: a layer's verdict, a fact's answer) and the hypotheses its evidence rules out. A thread keeps
the basis of each command's last run; the next run of the same command is compared with it by
:func:`diff`, shown by :func:`sections` at the head of the reply, and kept in the thread's history
as :func:`lines` (the handoff's timeline and `watch` read those).

Pure: bases are plain JSON, so they come from Redis, a file or a test alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.report import Markdown, Report, Section, Status, Table

# A latency figure (name ending in "(ms)") moves when it changes by this much and by this factor:
# 1.2 ms → 2.4 ms is noise on a loaded node, 2 ms → 5,000 ms is the incident.
MS_MIN_DELTA = 10.0
MS_MIN_RATIO = 1.5
PCT_MIN_DELTA = 1.0  # percentage points, for figures ending in "(%)"
MAX_LINES = 12  # one-line changes kept per run in the thread's history


@dataclass(frozen=True)
class Mark:
    """What a basis keeps of one finding: enough to tell "same finding" and to name it."""

    rule: str
    title: str
    severity: str = "info"
    subjects: tuple[str, ...] = ()
    evidence: str = ""  # its first evidence line (why a handoff says it was seen)

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """The same rule about another pod or server is another finding."""
        return self.rule, self.subjects

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "subjects": list(self.subjects),
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mark:
        return cls(
            rule=str(data.get("rule", "")),
            title=str(data.get("title", "")),
            severity=str(data.get("severity", "info")),
            subjects=tuple(str(s) for s in data.get("subjects", ())),
            evidence=str(data.get("evidence", "")),
        )


@dataclass(frozen=True)
class RuledOut:
    """A hypothesis this run's evidence speaks against, and that evidence."""

    hypothesis: str
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return {"hypothesis": self.hypothesis, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuledOut:
        return cls(str(data.get("hypothesis", "")), str(data.get("evidence", "")))


@dataclass(frozen=True)
class Basis:
    """One run reduced to what the next run of the same command compares against."""

    status: str = ""
    findings: tuple[Mark, ...] = ()
    figures: dict[str, float] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)  # shown next to a changed state, never compared
    ruled_out: tuple[RuledOut, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "findings": [m.to_dict() for m in self.findings],
            "figures": dict(self.figures),
            "states": dict(self.states),
            "details": dict(self.details),
            "ruled_out": [r.to_dict() for r in self.ruled_out],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Basis:
        data = data or {}
        figures: dict[str, float] = {}
        for name, value in dict(data.get("figures") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                figures[str(name)] = float(value)
        return cls(
            status=str(data.get("status", "")),
            findings=tuple(Mark.from_dict(m) for m in data.get("findings") or () if isinstance(m, Mapping)),
            figures=figures,
            states={str(k): str(v) for k, v in dict(data.get("states") or {}).items()},
            details={str(k): str(v) for k, v in dict(data.get("details") or {}).items()},
            ruled_out=tuple(RuledOut.from_dict(r) for r in data.get("ruled_out") or () if isinstance(r, Mapping)),
        )


def marks(findings: Iterable[Any]) -> tuple[Mark, ...]:
    """Marks of ``workers.findings.Finding`` objects (or their ``to_dict`` form)."""
    out = []
    for f in findings:
        d = f if isinstance(f, Mapping) else f.to_dict()
        subjects = tuple(
            (f"{s.get('kind', '')} {s.get('namespace')}/{s.get('name', '')}" if s.get("namespace")
             else f"{s.get('kind', '')} {s.get('name', '')}").strip()
            for s in d.get("subjects", ())
            if isinstance(s, Mapping)
        )
        evidence = [str(e) for e in d.get("evidence", ())]
        out.append(
            Mark(
                rule=str(d.get("rule", "")),
                title=str(d.get("title", "")),
                severity=str(d.get("severity", "info")),
                subjects=subjects,
                evidence=evidence[0] if evidence else "",
            )
        )
    return tuple(out)


def findings_basis(report: Report) -> dict[str, Any]:
    """The default Re-run basis: the report's verdict and findings (commands add figures of their own)."""
    return Basis(status=report.status.value, findings=marks(report.findings)).to_dict()


# ---------------------------------------------------------------------------- the diff


@dataclass(frozen=True)
class Moved:
    name: str
    before: float | None  # None: not measured before (a new server, a new layer)
    after: float | None


@dataclass(frozen=True)
class Changed:
    name: str
    before: str
    after: str
    detail: str = ""


@dataclass(frozen=True)
class RerunDiff:
    status_before: str
    status_after: str
    appeared: tuple[Mark, ...]
    resolved: tuple[Mark, ...]
    moved: tuple[Moved, ...]
    changed: tuple[Changed, ...]
    top_before: str
    top_after: str

    @property
    def unchanged(self) -> bool:
        return not (self.appeared or self.resolved or self.moved or self.changed) and (
            self.status_before == self.status_after
        )


def figure_moved(name: str, before: float | None, after: float | None) -> bool:
    """Whether a figure moved enough to say so (latencies and shares have a noise floor)."""
    if before is None or after is None:
        return before != after
    delta = abs(after - before)
    if name.endswith("(ms)"):
        low, high = sorted((before, after))
        return delta >= MS_MIN_DELTA and (low <= 0 or high / low >= MS_MIN_RATIO)
    if name.endswith("(%)"):
        return delta >= PCT_MIN_DELTA
    return delta > 0


def diff(before: Basis, after: Basis) -> RerunDiff:
    """Compare two runs of the same command (oldest first)."""
    kb = {m.key: m for m in before.findings}
    ka = {m.key: m for m in after.findings}
    names = [*after.figures, *(n for n in before.figures if n not in after.figures)]
    moved = tuple(
        Moved(n, before.figures.get(n), after.figures.get(n))
        for n in names
        if figure_moved(n, before.figures.get(n), after.figures.get(n))
    )
    states = [*after.states, *(n for n in before.states if n not in after.states)]
    changed = tuple(
        Changed(n, before.states.get(n, "—"), after.states.get(n, "—"), after.details.get(n, ""))
        for n in states
        if before.states.get(n) != after.states.get(n)
    )
    return RerunDiff(
        status_before=before.status,
        status_after=after.status,
        appeared=tuple(m for k, m in ka.items() if k not in kb),
        resolved=tuple(m for k, m in kb.items() if k not in ka),
        moved=moved,
        changed=changed,
        top_before=before.findings[0].title if before.findings else "—",
        top_after=after.findings[0].title if after.findings else "—",
    )


def _mark(value: str) -> str:
    try:
        return Status(value).mark
    except ValueError:
        return value


def _is_status(value: str) -> bool:
    return value in {s.value for s in Status} or value == "—"


def number(value: float | None) -> str:
    """A figure as a person reads it: whole numbers without a decimal point."""
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def lines(d: RerunDiff) -> list[str]:
    """The changes in one line each (the history, the handoff's timeline, `watch`)."""
    if d.unchanged:
        return []
    out: list[str] = []
    if d.status_before != d.status_after and d.status_before:
        out.append(f"verdict {_mark(d.status_before)} → {_mark(d.status_after)}")
    out += [f"no longer: {m.title}" for m in d.resolved]
    out += [f"new: {m.title}" for m in d.appeared]
    for c in d.changed:
        if _is_status(c.before) and _is_status(c.after):
            out.append(f"{c.name}: {_mark(c.before)} → {_mark(c.after)}")
        else:
            out.append(f"{c.name}: {c.before} → {c.after}")
    out += [f"{m.name}: {number(m.before)} → {number(m.after)}" for m in d.moved]
    return out[:MAX_LINES] + ([f"… and {len(out) - MAX_LINES} more"] if len(out) > MAX_LINES else [])


def sections(d: RerunDiff) -> list[Section]:
    """The head of a Re-run's reply: what changed since the previous run of this command here."""
    if d.unchanged:
        return [Markdown("*Since the previous run:* nothing changed — same verdict, same findings, same figures.")]
    head = ["*Since the previous run:*"]
    if d.status_before != d.status_after and d.status_before:
        head.append(f"• verdict {_mark(d.status_before)} → {_mark(d.status_after)}")
    verdicts = [c for c in d.changed if _is_status(c.before) and _is_status(c.after)]
    for c in verdicts:
        head.append(f"• {c.name}: {_mark(c.before)} → {_mark(c.after)} {c.detail}".rstrip())
    head += [f"• no longer: {m.title}" for m in d.resolved]
    head += [f"• new: {m.title}" for m in d.appeared]
    if d.top_before != d.top_after:
        head.append(f"• top hypothesis was “{d.top_before}”, now “{d.top_after}”")
    out: list[Section] = [Markdown("\n".join(head))]
    if d.moved:
        out.append(
            Table(
                title="Figures that moved",
                columns=("Figure", "Before", "Now"),
                rows=tuple((m.name, number(m.before), number(m.after)) for m in d.moved),
            )
        )
    answers = [c for c in d.changed if c not in verdicts]
    if answers:
        out.append(Table(title="What changed", columns=("What", "Before", "Now"), rows=tuple(
            (c.name, c.before, c.after) for c in answers)))
    return out
