"""When do failures happen: always, intermittently, in bursts, or every N seconds?

The guide asks whether errors come "always, intermittently, or in a specific pattern".
A *bad second* is one with an unanswered query, a SERVFAIL or a slow answer.  Bad seconds
closer than ``GAP_S`` form one burst; bursts whose starts are evenly spaced (spread of the
intervals at most 20 % of their mean, at least three intervals) are a periodic pattern.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from workers.analysis.traffic.model import Second

GAP_S = 2  # bad seconds at most this far apart belong to one burst
PERIOD_SPREAD = 0.2  # max standard deviation / mean of the intervals between bursts
MIN_INTERVALS = 3


@dataclass(frozen=True)
class Pattern:
    kind: str  # "none" | "constant" | "periodic" | "bursts" | "intermittent"
    text: str
    bad_seconds: int
    bursts: tuple[tuple[int, int], ...]  # (first second, last second) of each burst
    period_s: float | None = None


def bad(s: Second) -> bool:
    return s.unanswered + s.servfail + s.slow > 0


def bursts_of(bad_seconds: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for t in sorted(bad_seconds):
        if out and t - out[-1][1] <= GAP_S:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def classify(timeline: Sequence[Second]) -> Pattern:
    """Name the pattern of the bad seconds over the capture's seconds."""
    if not timeline:
        return Pattern("none", "no DNS traffic", 0, ())
    seconds = [s.second for s in timeline]
    span = max(seconds) - min(seconds) + 1
    bad_seconds = [s.second for s in timeline if bad(s)]
    if not bad_seconds:
        return Pattern("none", "no unanswered, SERVFAIL or slow answers", 0, ())
    bursts = tuple(bursts_of(bad_seconds))
    starts = [b[0] for b in bursts]
    intervals = [b - a for a, b in itertools.pairwise(starts)]
    share = len(bad_seconds) / span
    if len(intervals) >= MIN_INTERVALS:
        mean = statistics.fmean(intervals)
        spread = statistics.pstdev(intervals)
        if mean > GAP_S and spread <= PERIOD_SPREAD * mean:
            return Pattern("periodic", f"periodic: failures every {mean:.0f} s ({len(bursts)} bursts)",
                           len(bad_seconds), bursts, mean)
    if share >= 0.5:
        return Pattern("constant", f"constant: {len(bad_seconds)} of {span} seconds have failures",
                       len(bad_seconds), bursts)
    longest = max(b - a + 1 for a, b in bursts)
    if len(bursts) <= max(3, span // 60) and longest >= 3:
        return Pattern("bursts", f"in bursts: {len(bursts)} burst(s), the longest {longest} s",
                       len(bad_seconds), bursts)
    return Pattern("intermittent", f"intermittent: {len(bad_seconds)} scattered seconds out of {span}",
                   len(bad_seconds), bursts)
