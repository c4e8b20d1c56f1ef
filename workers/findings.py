"""One findings model and one rules engine for every command (the guide's steps 2 and 3).

A rule is a pure function ``(evidence) -> Finding | None``; :func:`diagnose` runs a command's rule
set and ranks what fired. Each command owns its evidence type and its rules (`check`:
``workers.analysis.check_rules``); the shape of a finding, its ranking and its JSON form are
shared, so threads, Re-run differences and the hand-off read every command's findings alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from workers.report import Hypothesis

HIGH, MEDIUM, LOW = "high", "medium", "low"  # confidence: how sure the evidence makes us


class Severity(StrEnum):
    """How bad it is if true: a component down, degraded, worth knowing, or all well."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"
    OK = "ok"

    @classmethod
    def of_score(cls, score: int) -> Severity:
        """Rules rank by score; a score this high means something is down, this low a smell."""
        if score >= 80:
            return cls.CRITICAL
        if score >= 40:
            return cls.WARNING
        return cls.INFO if score > 0 else cls.OK


@dataclass(frozen=True)
class Subject:
    """What a finding is about: a pod, node, Service, DNS server, layer or configuration."""

    kind: str  # "pod" | "node" | "service" | "server" | "layer" | "configmap" | "cluster"
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Finding:
    """A ranked hypothesis: the rule that made it, its score, severity and subject.

    ``hypothesis`` is what the thread shows: title, confidence, evidence lines, actions (exact
    commands to paste) and links.
    """

    rule: str
    score: int
    hypothesis: Hypothesis
    severity: Severity = field(default=Severity.INFO)
    subjects: tuple[Subject, ...] = ()

    @classmethod
    def of(
        cls,
        rule: str,
        score: int,
        hypothesis: Hypothesis,
        *,
        severity: Severity | None = None,
        subjects: Iterable[Subject] = (),
    ) -> Finding:
        """A finding whose severity follows its score unless given."""
        return cls(rule, score, hypothesis, severity or Severity.of_score(score), tuple(subjects))

    @property
    def title(self) -> str:
        return self.hypothesis.title

    def to_dict(self) -> dict[str, Any]:
        h = self.hypothesis
        return {
            "rule": self.rule,
            "score": self.score,
            "severity": self.severity.value,
            "subjects": [{"kind": s.kind, "name": s.name, "namespace": s.namespace} for s in self.subjects],
            "title": h.title,
            "confidence": h.confidence,
            "evidence": list(h.evidence),
            "actions": list(h.actions),
            "links": list(h.links),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict` (a thread's history, a previous run)."""
        return cls(
            rule=str(data["rule"]),
            score=int(data.get("score", 0)),
            hypothesis=Hypothesis(
                title=str(data.get("title", "")),
                confidence=str(data.get("confidence", LOW)),
                evidence=tuple(str(e) for e in data.get("evidence", ())),
                actions=tuple(str(a) for a in data.get("actions", ())),
                links=tuple(str(u) for u in data.get("links", ())),
            ),
            severity=Severity(data.get("severity", Severity.INFO.value)),
            subjects=tuple(
                Subject(str(s.get("kind", "")), str(s.get("name", "")), str(s.get("namespace", "")))
                for s in data.get("subjects", ())
            ),
        )


E = TypeVar("E")
Rule = Callable[[E], "Finding | None"]


def diagnose(
    evidence: E,
    rules: Sequence[Rule[E]],
    *,
    when_none: Callable[[E], Finding],
    background: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Every finding of ``rules``, highest score first.

    When nothing but ``background`` rules (notes about the probing itself) fired, ``when_none``
    says what that means — "all healthy", or "failures no rule recognises" — and leads.
    """
    found = [f for f in (rule(evidence) for rule in rules) if f is not None]
    found.sort(key=lambda f: -f.score)
    if any(f.rule not in background for f in found):
        return found
    return [when_none(evidence), *found]
