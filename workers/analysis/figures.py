"""Numbers as on-call engineers read them: percentiles, milliseconds, shares, counts.

Shared by every command's analysis, so that "p95" or "5 s" means the same in every thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from workers.evidence.dns import SLOW_MS as SLOW_MS  # re-exported: the threshold every figure uses

E = TypeVar("E")


def percentile(values: Sequence[float], pct: float, *, empty: E = None) -> float | E:  # type: ignore[assignment]
    """Nearest-rank percentile, so a value that was really observed; ``empty`` when there are none."""
    if not 0 < pct <= 100:
        raise ValueError("pct must be in (0, 100]")
    if not values:
        return empty
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def is_slow(latency_ms: float, slow_ms: float = SLOW_MS) -> bool:
    return latency_ms >= slow_ms


def ms_number(value: float) -> str:
    """``0.05``, ``12.3``, ``5000.0``: a table cell under an "ms" header."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def format_ms(value: float | None, *, fine: bool = True, missing: str = "-") -> str:
    """A latency with its unit.

    ``fine`` (dig, where a local answer must be told from a remote one): ``0.05 ms``, ``12.3 ms``,
    ``5.00 s``; coarse (check's layer lines): ``12 ms``, ``1.2 s``.
    """
    if value is None:
        return missing
    if fine:
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{ms_number(value)} ms"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def pct(part: int, whole: int) -> str:
    """``42%`` of a whole (``0%`` of nothing)."""
    return f"{100 * part / whole:.0f}%" if whole else "0%"


def plural(n: int, word: str) -> str:
    """``1 restart``, ``3 restarts``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


# (below this many seconds, divide by, unit): an age's unit is the first whose bound it is under.
_KUBECTL_AGE = ((120, 1, "s"), (7200, 60, "m"), (172800, 3600, "h"), (math.inf, 86400, "d"))
_PROSE_AGE = ((90, 1, " s"), (5400, 60, " min"), (172800, 3600, " h"), (math.inf, 86400, " d"))


def _age(seconds: float | None, units: tuple[tuple[float, int, str], ...]) -> str:
    if seconds is None:
        return "?"
    _, per, unit = next(u for u in units if seconds < u[0])
    return f"{seconds / per:.0f}{unit}"


def ago(seconds: float | None) -> str:
    """An age as ``kubectl get`` shows it, for tables: ``45s``, ``12m``, ``5h``, ``3d`` (``?`` when unknown)."""
    return _age(seconds, _KUBECTL_AGE)


def age_text(seconds: float | None) -> str:
    """An age in a sentence: ``45 s``, ``8 min``, ``3 h``, ``2 d`` (``?`` when unknown)."""
    return _age(seconds, _PROSE_AGE)
