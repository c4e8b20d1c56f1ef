"""Time stamps as the report prints them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_time(ns: int | None) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC ("" for no time)."""
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
