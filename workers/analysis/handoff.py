"""The handoff: a thread's history read back as an incident record for the next on-call engineer.

Pure, from the recorded outcomes alone (``aksdns.results.Outcome``; no cluster access): a timeline of
what ran, by whom, with its verdict and what changed since the run before it; the hypotheses the
latest runs still hold; the hypotheses ruled out, each with the evidence that ruled it out; the
open actions; every attachment. :func:`markdown` writes the same record as a Markdown file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aksdns.keys import rerun_identity
from aksdns.results import Outcome
from workers.report import Markdown, Section, Status

MAX_HYPOTHESES = 3
NONE_OPEN = "None open: the latest run of every command found nothing wrong."
MAX_ACTIONS = 8
FAILED = {"failed", "error"}
QUIET_RULES = {"all_healthy"}  # "nothing wrong" is a verdict, not a hypothesis to hand over
_MENTION = re.compile(r"<@([A-Z0-9]+)>")
MARKS = {"ok": "✅", "warn": "⚠️", "fail": "❌", "info": "ℹ️", "error": "❌", "failed": "💥"}


def clock(epoch: float) -> str:
    return time.strftime("%H:%M", time.gmtime(epoch))


def day_clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    at: float
    user: str
    text: str  # the command as the parent message showed it
    cluster: str
    status: str
    verdict: str
    changes: tuple[str, ...]
    repeat: bool  # a later run of a command that ran before in this thread


@dataclass(frozen=True)
class Held:
    """A hypothesis the latest run of its command still holds."""

    title: str
    confidence: str
    severity: str
    evidence: tuple[str, ...]
    actions: tuple[str, ...]
    seen_by: str  # "check at 14:05"
    score: int


@dataclass(frozen=True)
class Excluded:
    """A hypothesis ruled out, and by what."""

    hypothesis: str
    evidence: str
    by: str  # "check at 14:09 (<@U1>)"


@dataclass
class Handoff:
    channel: str
    thread_ts: str
    steps: list[Step] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    ruled_out: list[Excluded] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (file, "check at 14:01")
    people: list[str] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    latest: list[tuple[str, str, str]] = field(default_factory=list)  # (command, status, summary) per command
    started: float = 0.0
    ended: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.steps


def _by(o: Outcome) -> str:
    return f"`{o.text}` at {clock(o.finished_at)} (<@{o.user}>)"


def build(outcomes: Sequence[Outcome]) -> Handoff:
    """The record, from a thread's outcomes (oldest first)."""
    ordered = sorted(outcomes, key=lambda o: o.finished_at)
    first = ordered[0] if ordered else None
    h = Handoff(channel=first.channel if first else "", thread_ts=first.thread_ts if first else "")
    if not ordered:
        return h
    h.started, h.ended = ordered[0].started_at, ordered[-1].finished_at
    seen: set[str] = set()
    last_of: dict[str, Outcome] = {}
    for o in ordered:
        identity = rerun_identity(o.command)
        h.steps.append(
            Step(o.finished_at, o.user, o.text, o.cluster, o.status, o.summary, o.changes, identity in seen)
        )
        seen.add(identity)
        if o.verb != "handoff":
            last_of[identity] = o
        h.attachments += [(name, f"`{o.text}` at {clock(o.finished_at)}") for name in o.attachments]
        if o.user and o.user not in h.people:
            h.people.append(o.user)
        if o.cluster and o.cluster not in h.clusters:
            h.clusters.append(o.cluster)
    latest = sorted(last_of.values(), key=lambda o: o.finished_at)
    h.latest = [(o.text, o.status, o.summary) for o in latest]
    h.held = _held(latest)
    h.ruled_out = _ruled_out(ordered, last_of, h.held)
    h.actions = _actions(h.held, latest)
    return h


def _held(latest: Sequence[Outcome]) -> list[Held]:
    out: dict[str, Held] = {}
    for o in latest:
        for f in o.findings:
            rule = str(f.get("rule", ""))
            if rule in QUIET_RULES or f.get("severity") == "ok":
                continue
            title = str(f.get("title", ""))
            held = Held(
                title=title,
                confidence=str(f.get("confidence", "low")),
                severity=str(f.get("severity", "info")),
                evidence=tuple(str(e) for e in f.get("evidence", ()))[:3],
                actions=tuple(str(a) for a in f.get("actions", ()))[:3],
                seen_by=_by(o),
                score=int(f.get("score", 0) or 0),
            )
            if title not in out or held.score > out[title].score:
                out[title] = held
    return sorted(out.values(), key=lambda x: -x.score)[:MAX_HYPOTHESES]


def _titles(o: Outcome) -> dict[tuple[str, str], str]:
    return {(str(f.get("rule", "")), str(f.get("title", ""))): str(f.get("title", "")) for f in o.findings}


def _ruled_out(ordered: Sequence[Outcome], last_of: dict[str, Outcome], held: Sequence[Held]) -> list[Excluded]:
    """Hypotheses an earlier run raised and a later run of the same command no longer supports,
    then what the latest runs' healthy evidence speaks against."""
    still = {h.title for h in held}
    out: dict[str, Excluded] = {}
    previous: dict[str, Outcome] = {}
    for o in ordered:
        identity = rerun_identity(o.command)
        before = previous.get(identity)
        if before is not None and o.status not in FAILED:
            gone = set(_titles(before).values()) - set(_titles(o).values())
            for title in sorted(gone):
                rule = next((str(f.get("rule")) for f in before.findings if f.get("title") == title), "")
                if rule in QUIET_RULES or title in still:
                    continue
                why = next((c for c in o.changes if not c.startswith(("no longer:", "new:", "verdict"))), o.summary)
                out[title] = Excluded(title, f"no longer seen: {why}", _by(o))
        if o.status not in FAILED:
            previous[identity] = o
    for o in sorted(last_of.values(), key=lambda x: x.finished_at):
        if o.status in FAILED:
            continue
        for r in o.ruled_out:
            hypothesis = str(r.get("hypothesis", ""))
            if hypothesis and hypothesis not in out and hypothesis not in still:
                out[hypothesis] = Excluded(hypothesis, str(r.get("evidence", "")), _by(o))
    return list(out.values())


def _actions(held: Sequence[Held], latest: Sequence[Outcome]) -> list[str]:
    out: list[str] = []
    for h in held:
        out += [a for a in h.actions if a not in out]
        if not h.actions:
            out.append(f"{h.title}: run {h.seen_by.split(' at ')[0]} again to see whether it still holds")
    for o in latest:
        if o.status in FAILED:
            out.append(f"`{o.text}` did not finish ({o.summary}): run it again")
    if not held:
        out.append("nothing open: if users still see failures, capture while it happens (`capture --coredns`) "
                   "and `analyze` the file")
    return out[:MAX_ACTIONS]


# ---------------------------------------------------------------------------- rendering


def _mark(status: str) -> str:
    return MARKS.get(status, status)


def headline(h: Handoff) -> str:
    if h.empty:
        return "Nothing to hand over: no job has run in this thread yet."
    top = h.held[0].title if h.held else "no open hypothesis"
    return f"{len(h.steps)} jobs since {clock(h.started)} UTC; top hypothesis: {top}"


def status(h: Handoff) -> Status:
    if h.empty:
        return Status.INFO
    worst = {s for _t, s, _ in h.latest}
    if worst & {"fail", "failed", "error"}:
        return Status.FAIL
    return Status.WARN if h.held or "warn" in worst else Status.OK


def sections(h: Handoff) -> list[Section]:
    """The handoff as it reads in the thread."""
    if h.empty:
        return [Markdown(headline(h))]
    people = ", ".join(f"<@{u}>" for u in h.people)
    out: list[Section] = [
        Markdown(
            f"*Incident record* · {day_clock(h.started)} → {clock(h.ended)} UTC · "
            f"cluster{'s' if len(h.clusters) > 1 else ''} {', '.join(f'`{c}`' for c in h.clusters)} · {people}"
        ),
        Markdown("*Where it stands*\n" + "\n".join(f"• {_mark(s)} `{t}`: {v}" for t, s, v in h.latest)),
    ]
    timeline = ["*Timeline* (UTC)"]
    for s in h.steps:
        again = " (again)" if s.repeat else ""
        verdict = f"{_mark(s.status)} {s.verdict}"
        timeline.append(f"• {clock(s.at)} <@{s.user}> `{s.text}`{again} on `{s.cluster}` — {verdict}")
        timeline += [f"    ↳ {c}" for c in s.changes[:4]]
    out.append(Markdown("\n".join(timeline)))
    if h.held:
        lines = ["*Current top hypotheses*"]
        for i, x in enumerate(h.held, 1):
            lines.append(f"{i}. *{x.title}* _(confidence {x.confidence}; {x.seen_by})_")
            lines += [f"    • {e}" for e in x.evidence]
        out.append(Markdown("\n".join(lines)))
    else:
        out.append(Markdown(f"*Current top hypotheses*\n{NONE_OPEN}"))
    if h.ruled_out:
        out.append(Markdown("*Ruled out*\n" + "\n".join(
            f"• ~{x.hypothesis}~ — {x.evidence} ({x.by})" for x in h.ruled_out)))
    out.append(Markdown("*Open actions*\n" + "\n".join(f"{i}. {a}" for i, a in enumerate(h.actions, 1))))
    if h.attachments:
        out.append(Markdown("*Attachments in this thread*\n" + "\n".join(
            f"• `{name}` — {where}" for name, where in h.attachments)))
    return out


def markdown(h: Handoff, *, title: str = "DNS incident handoff") -> str:
    """The same record as a Markdown file (GitHub-flavoured: tables, strikethrough)."""
    lines = [f"# {title}", ""]
    if h.empty:
        return "\n".join([*lines, headline(h), ""])
    lines += [
        f"- Thread: channel `{h.channel}`, thread `{h.thread_ts}`",
        f"- From {day_clock(h.started)} to {day_clock(h.ended)}",
        f"- Clusters: {', '.join(h.clusters)}",
        f"- People: {', '.join(h.people)}",
        "",
        "## Where it stands",
        "",
        *[f"- {_mark(s)} `{t}`: {v}" for t, s, v in h.latest],
        "",
        "## Timeline (UTC)",
        "",
        "| Time | Who | Command | Cluster | Verdict | What changed |",
        "|---|---|---|---|---|---|",
    ]
    for s in h.steps:
        changes = "; ".join(s.changes[:6]) or ("—" if s.repeat else "first run")
        lines.append(
            f"| {clock(s.at)} | {s.user} | `{_cell(s.text)}` | {s.cluster} | {_mark(s.status)} {_cell(s.verdict)} "
            f"| {_cell(changes)} |"
        )
    lines += ["", "## Current top hypotheses", ""]
    if h.held:
        for i, x in enumerate(h.held, 1):
            lines.append(f"{i}. **{x.title}** (confidence {x.confidence}; {_plain(x.seen_by)})")
            lines += [f"   - {e}" for e in x.evidence]
    else:
        lines.append(NONE_OPEN)
    lines += ["", "## Ruled out", ""]
    lines += [f"- ~~{x.hypothesis}~~: {x.evidence} ({_plain(x.by)})" for x in h.ruled_out] or ["Nothing yet."]
    lines += ["", "## Open actions", ""]
    lines += [f"{i}. {a}" for i, a in enumerate(h.actions, 1)]
    lines += ["", "## Attachments", ""]
    lines += [f"- `{name}` ({_plain(where)})" for name, where in h.attachments] or ["None."]
    return "\n".join([*lines, ""])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _plain(text: str) -> str:
    """Slack mentions as plain IDs in the file (``<@U1>`` → ``U1``)."""
    return _MENTION.sub(r"\1", text)


def to_json(h: Handoff) -> dict[str, Any]:
    """`--format json` and tests."""
    return {
        "channel": h.channel,
        "thread_ts": h.thread_ts,
        "timeline": [
            {"at": s.at, "user": s.user, "command": s.text, "cluster": s.cluster, "status": s.status,
             "verdict": s.verdict, "changes": list(s.changes), "again": s.repeat}
            for s in h.steps
        ],
        "hypotheses": [{"title": x.title, "confidence": x.confidence, "seen_by": x.seen_by} for x in h.held],
        "ruled_out": [{"hypothesis": x.hypothesis, "evidence": x.evidence, "by": x.by} for x in h.ruled_out],
        "actions": list(h.actions),
        "attachments": [name for name, _ in h.attachments],
    }
