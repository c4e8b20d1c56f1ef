"""The shared Re-run diff: findings appeared and resolved, figures past their noise floor, states, lines."""

from __future__ import annotations

import pytest

from workers.analysis.rerun_diff import Basis, Mark, diff, figure_moved, lines, sections
from workers.report import Markdown, Table


@pytest.mark.parametrize(
    ("name", "before", "after", "moved"),
    [
        ("CoreDNS pods · p95 (ms)", 1.2, 2.5, False),  # noise on a loaded node
        ("CoreDNS pods · p95 (ms)", 3.0, 5000.0, True),  # the incident
        ("CoreDNS pods · p95 (ms)", 100.0, 120.0, False),  # +20 ms but only 1.2×
        ("CoreDNS pods · p95 (ms)", None, 3.0, True),  # measured for the first time
        ("loss (%)", 10.0, 10.5, False),
        ("loss (%)", 10.0, 12.0, True),
        ("failed queries", 0.0, 1.0, True),
        ("failed queries", 2.0, 2.0, False),
    ],
)
def test_figures_move_past_their_noise_floor(name: str, before: float | None, after: float | None,
                                             moved: bool) -> None:
    assert figure_moved(name, before, after) is moved


def test_findings_are_matched_by_rule_and_subject() -> None:
    pod_a = Mark("one_pod", "One CoreDNS pod misbehaves: a", subjects=("pod kube-system/a",))
    pod_b = Mark("one_pod", "One CoreDNS pod misbehaves: b", subjects=("pod kube-system/b",))
    d = diff(Basis("fail", (pod_a,)), Basis("fail", (pod_b,)))
    assert d.resolved == (pod_a,) and d.appeared == (pod_b,)
    assert lines(d) == ["no longer: One CoreDNS pod misbehaves: a", "new: One CoreDNS pod misbehaves: b"]


def test_states_and_figures_render_as_the_reply_head() -> None:
    before = Basis("fail", states={"CoreDNS pods": "fail", "Which records?": "Any"},
                   figures={"CoreDNS pods · failed queries": 12})
    after = Basis("ok", states={"CoreDNS pods": "ok", "Which records?": "None"},
                  details={"CoreDNS pods": "2/2 Ready"}, figures={"CoreDNS pods · failed queries": 0})
    d = diff(before, after)
    head, figures, answers = sections(d)
    assert isinstance(head, Markdown) and "• CoreDNS pods: ❌ → ✅ 2/2 Ready" in head.text
    assert isinstance(figures, Table) and figures.rows == (("CoreDNS pods · failed queries", "12", "0"),)
    assert isinstance(answers, Table) and answers.rows == (("Which records?", "Any", "None"),)
    assert lines(d)[:2] == ["verdict ❌ → ✅", "CoreDNS pods: ❌ → ✅"]
    assert Basis.from_dict(after.to_dict()) == after


def test_garbage_bases_read_as_empty() -> None:
    assert Basis.from_dict({"figures": {"x": "not a number", "y": True, "z": 2}, "findings": ["?"]}) == Basis(
        figures={"z": 2.0})
    assert diff(Basis(), Basis()).unchanged
