"""Time stamps as the report prints them."""

from __future__ import annotations

import time
from functools import lru_cache


def iso_time(ns: int | None) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC ("" for no time), rounded to the nearest
    microsecond (half to even) from the exact nanoseconds.

    Integer arithmetic, not ``datetime.fromtimestamp(ns / 1e9)``: a float holds a 2024 time
    stamp to about 0.24 µs only, and strftime per row was most of a 1,000-row CSV's time.
    """
    if ns is None:
        return ""
    us, rest = divmod(ns, 1000)
    if rest > 500 or (rest == 500 and us % 2):
        us += 1
    second, fraction = divmod(us, 1_000_000)
    return f"{_second_text(second)}.{fraction:06d}"


@lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    # A capture's rows share few distinct seconds: each is formatted once.
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
