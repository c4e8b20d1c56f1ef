"""Spans of time as on-call engineers type them (`5m`, `2h`, `1d`), and Slack user IDs.

`watch --every 5 --for 2` reads as "every 5 minutes for 2 hours": a bare number takes the flag's
unit. `audit --since 2h` (a span back from now) or `--since 2024-05-01T10:00` (UTC). Pure; a bad
value is a :class:`UsageError` with one short line.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aksdns.errors import UsageError
from aksdns.validate import clip

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPAN_RE = re.compile(r"^([0-9]{1,6})([smhd]?)$")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2})?$")
_USER_RE = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def span_text(seconds: int) -> str:
    """``300`` → ``5m``; ``7200`` → ``2h``; ``90`` → ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def span(text: str, what: str, *, unit: str, low_s: int, high_s: int) -> int:
    """A span in whole seconds within [low_s, high_s]; a bare number counts in ``unit``."""
    match = _SPAN_RE.match(text.strip().lower())
    if not match:
        raise UsageError(f"{what} must look like 90s, 5m, 2h or 1d, not `{clip(text)}`")
    value = int(match.group(1)) * UNITS[match.group(2) or unit]
    if not low_s <= value <= high_s:
        raise UsageError(f"{what} must be between {span_text(low_s)} and {span_text(high_s)}, not {clip(text)}")
    return value


@dataclass(frozen=True)
class Span:
    """A flag kind: a span such as ``5m``; bare numbers count in ``unit`` (see ``aksdns.flags.Kind``)."""

    unit: str
    low_s: int
    high_s: int

    @property
    def metavar(self) -> str:
        return {"s": "S", "m": "M", "h": "H", "d": "D"}[self.unit]

    def convert(self, text: str, flag: str) -> int:
        return span(text, flag, unit=self.unit, low_s=self.low_s, high_s=self.high_s)

    def bounds(self) -> str:
        return f"{span_text(self.low_s)}–{span_text(self.high_s)}; a bare number counts in {_UNIT_WORDS[self.unit]}"

    def render(self, value: Any, flag: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"`{flag}` needs a whole number of seconds")
        return [flag, f"{value}s"]


_UNIT_WORDS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since(text: str) -> str:
    """`--since`: a span back (``2h``) or a UTC date (``2024-05-01`` or ``2024-05-01T10:00``), kept as typed."""
    word = text.strip()
    if _SPAN_RE.match(word.lower()):
        span(word, "--since", unit="h", low_s=1, high_s=400 * 86400)
        return word.lower()
    if _DATE_RE.match(word):
        since_epoch(word)
        return word
    raise UsageError(f"--since must be a span such as 2h or a date such as 2024-05-01, not `{clip(text)}`")


def since_epoch(text: str, now: float | None = None) -> float:
    """The epoch seconds a `--since` value stands for."""
    now = time.time() if now is None else now
    if _SPAN_RE.match(text.lower()):
        return now - span(text, "--since", unit="h", low_s=1, high_s=400 * 86400)
    try:
        fmt = "%Y-%m-%dT%H:%M" if "T" in text else "%Y-%m-%d"
        return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise UsageError(f"--since `{clip(text)}` is not a date") from None


def slack_user(text: str) -> str:
    """A Slack member ID such as ``U0123ABCD`` (mentions are refused by the grammar's character check)."""
    word = text.strip().upper()
    if not _USER_RE.match(word):
        raise UsageError(f"--user takes a member ID such as U0123ABCD, not `{clip(text)}`")
    return word
