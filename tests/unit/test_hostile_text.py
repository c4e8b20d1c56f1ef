"""Issue 10 item 7 in Slack: Unicode digits and control characters get one short, escaped line."""

from __future__ import annotations

import pytest

from aksdns import validate
from bot.app import interpret


@pytest.mark.parametrize(
    "text",
    ["dig x.test --repeat ²", "dig @1.2.3.4:¹ x.test", "check --nodes ²", "service a/b --port ³",
     "dig x.test --timeout ٣", "dig x.test --timeout 1_0", "capture --duration ٣m"],
)
def test_unicode_digits_are_a_usage_error(text: str) -> None:
    step = interpret(text, prefix="/aksdns")
    assert step.command is None
    assert step.reply is not None and step.reply.startswith("⚠️ ")
    assert "must" in step.reply


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("a\nb", "a\\nb"), ("a\rb", "a\\rb"), ("\x1b[2J", "\\x1b[2J"), ("\u202e", "\\u202e"), ("ok", "ok")],
)
def test_clip_escapes_what_would_rewrite_a_line(raw: str, shown: str) -> None:
    assert validate.clip(raw) == shown
    assert validate.clip(raw).isprintable()
