"""What changed between two `check` runs: the guide's steps 4 and 5 (observe, repeat).

Pure: both inputs are the ``report.data`` of a check run (``--format json``), so the
previous run can come from the thread, from Redis or from a file.  The Re-run button
posts :func:`diff_sections` of the previous and the new run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.report import Markdown, Section, Status, Table

# The parts of ``report.data`` a later Re-run compares against: what to keep per thread
# (a few kB, unlike the whole evidence).
DIFF_KEYS = ("layers", "facts", "hypotheses", "rates")


def diff_basis(data: dict[str, Any]) -> dict[str, Any]:
    """The part of a check result worth storing for the next Re-run in the same thread."""
    return {k: data[k] for k in DIFF_KEYS if k in data}


@dataclass(frozen=True)
class LayerChange:
    layer: str
    before: str  # Status value
    after: str
    before_detail: str
    after_detail: str


@dataclass(frozen=True)
class RateChange:
    layer: str
    before_failed: int
    before_total: int
    after_failed: int
    after_total: int


@dataclass(frozen=True)
class CheckDiff:
    layers: tuple[LayerChange, ...]  # only layers whose status changed
    rates: tuple[RateChange, ...]  # failure counts per layer, every layer seen in either run
    facts: tuple[tuple[str, str, str], ...]  # (question, before, after) for changed answers
    new_hypotheses: tuple[str, ...]
    gone_hypotheses: tuple[str, ...]
    top_before: str
    top_after: str

    @property
    def unchanged(self) -> bool:
        return not (self.layers or self.facts or self.new_hypotheses or self.gone_hypotheses) and all(
            r.before_failed == r.after_failed for r in self.rates
        )


def _layers(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {str(x["layer"]): x for x in data.get("layers", [])}


def _facts(data: dict[str, Any]) -> dict[str, str]:
    return {str(x["question"]): str(x["answer"]) for x in data.get("facts", [])}


def _hypotheses(data: dict[str, Any]) -> dict[str, str]:
    return {str(h["rule"]): str(h["title"]) for h in data.get("hypotheses", [])}


def _rates(data: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {str(k): (int(v["failed"]), int(v["total"])) for k, v in (data.get("rates") or {}).items()}


def diff_runs(before: dict[str, Any], after: dict[str, Any]) -> CheckDiff:
    """Compare two check results (``report.data``)."""
    lb, la = _layers(before), _layers(after)
    layers = tuple(
        LayerChange(
            name,
            lb.get(name, {}).get("status", "info"),
            la.get(name, {}).get("status", "info"),
            lb.get(name, {}).get("detail", ""),
            la.get(name, {}).get("detail", ""),
        )
        for name in [*la, *(n for n in lb if n not in la)]
        if lb.get(name, {}).get("status") != la.get(name, {}).get("status")
    )
    rb, ra = _rates(before), _rates(after)
    rates = tuple(
        RateChange(name, *rb.get(name, (0, 0)), *ra.get(name, (0, 0)))
        for name in [*ra, *(n for n in rb if n not in ra)]
    )
    fb, fa = _facts(before), _facts(after)
    facts = tuple((q, fb.get(q, "—"), fa[q]) for q in fa if fb.get(q) != fa[q])
    hb, ha = _hypotheses(before), _hypotheses(after)
    return CheckDiff(
        layers=layers,
        rates=rates,
        facts=facts,
        new_hypotheses=tuple(t for r, t in ha.items() if r not in hb),
        gone_hypotheses=tuple(t for r, t in hb.items() if r not in ha),
        top_before=next(iter(hb.values()), "—"),
        top_after=next(iter(ha.values()), "—"),
    )


def _mark(status: str) -> str:
    try:
        return Status(status).mark
    except ValueError:
        return status


def diff_sections(diff: CheckDiff) -> list[Section]:
    """The Re-run reply: what changed since the previous run in this thread."""
    if diff.unchanged:
        return [Markdown("*Since the previous run:* nothing changed — same layers, same facts, same hypotheses.")]
    out: list[Section] = []
    lines = ["*Since the previous run:*"]
    for c in diff.layers:
        lines.append(f"• {c.layer}: {_mark(c.before)} → {_mark(c.after)} {c.after_detail}")
    for title in diff.gone_hypotheses:
        lines.append(f"• no longer: {title}")
    for title in diff.new_hypotheses:
        lines.append(f"• new: {title}")
    if diff.top_before != diff.top_after:
        lines.append(f"• top hypothesis was “{diff.top_before}”, now “{diff.top_after}”")
    out.append(Markdown("\n".join(lines)))
    changed_rates = [r for r in diff.rates if (r.before_failed, r.before_total) != (r.after_failed, r.after_total)]
    if changed_rates:
        out.append(
            Table(
                title="Failed queries per layer",
                columns=("Layer", "Before", "Now"),
                rows=tuple(
                    (r.layer, f"{r.before_failed}/{r.before_total}", f"{r.after_failed}/{r.after_total}")
                    for r in changed_rates
                ),
            )
        )
    if diff.facts:
        out.append(
            Table(title="Facts that changed", columns=("Question", "Before", "Now"), rows=diff.facts)
        )
    return out
