"""Block Kit rendering stays within Slack's limits and moves what does not fit to files."""

from __future__ import annotations

from workers.render.blocks import MAX_BLOCKS, MAX_SECTION_CHARS, render_blocks
from workers.render.text import render_text
from workers.report import Button, Hypothesis, Markdown, Report, Status, StatusLine, Table


def _sections(report: Report) -> list[dict[str, object]]:
    return render_blocks(report).blocks


def test_small_report_is_inline() -> None:
    report = Report("dig", Status.OK, "2/2 answered", [StatusLine(Status.OK, "10.0.0.10", "p50 1 ms")])
    message = render_blocks(report)
    assert message.files == []
    assert message.blocks[0]["type"] == "header"
    assert "10.0.0.10" in str(message.blocks)
    assert message.text.startswith("✅ dig")


def test_long_table_goes_to_a_file_with_its_head_inline() -> None:
    rows = tuple((f"name{i}.example", "NOERROR", f"{i} ms") for i in range(500))
    report = Report("dig", Status.OK, "500 answered", [Table("Results", ("name", "status", "latency"), rows)])
    message = render_blocks(report)
    assert [f.filename for f in message.files] == ["results.txt"]
    assert b"name499.example" in message.files[0].content
    for block in message.blocks:
        text = block.get("text")
        if isinstance(text, dict):
            assert len(str(text["text"])) <= MAX_SECTION_CHARS


def test_wide_cells_never_exceed_a_section() -> None:
    rows = tuple((("x" * 400), "y" * 400) for _ in range(20))
    message = render_blocks(Report("t", Status.WARN, "s", [Table("Wide", ("a", "b"), rows)]))
    assert all(len(str(b["text"]["text"])) <= MAX_SECTION_CHARS for b in message.blocks if "text" in b)
    assert message.files


def test_too_many_sections_keep_50_blocks_and_attach_the_whole_report() -> None:
    sections = [Markdown(f"paragraph {i}") for i in range(120)]
    report = Report("big", Status.INFO, "many", list(sections), buttons=[Button("aksdns_rerun", "Re-run", "{}")])
    message = render_blocks(report)
    assert len(message.blocks) == MAX_BLOCKS
    assert message.blocks[-1]["type"] == "actions"  # buttons survive the cut
    assert any(f.filename == "report.txt" for f in message.files)
    assert b"paragraph 119" in next(f for f in message.files if f.filename == "report.txt").content


def test_hypotheses_are_ranked_in_blocks_and_text() -> None:
    hypotheses = [Hypothesis(f"H{i}", "high", ("e",), ("kubectl get pods -n kube-system",)) for i in range(1, 3)]
    report = Report("check", Status.FAIL, "2 hypotheses", list(hypotheses))
    assert "*1. H1*" in str(_sections(report)) and "*2. H2*" in str(_sections(report))
    text = render_text(report)
    assert "1. H1" in text and "2. H2" in text and "action:   kubectl get pods" in text
