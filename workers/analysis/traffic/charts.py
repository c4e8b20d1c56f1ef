"""The report's pictures: the response-time histogram and the failure timeline (PNG).

Laid out here, drawn by the compiled core (:mod:`workers.analysis.traffic.canvas`): the two
pictures take a few milliseconds, where importing matplotlib and laying out one figure took
about half a second, and Pillow 35-45 ms (docs/analyze.md, "Benchmark").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from workers.analysis.traffic.canvas import Canvas, Colour
from workers.analysis.traffic.model import AnalysisResult, Second
from workers.analysis.traffic.pattern import Pattern

W, H = 900, 420
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 20, 34, 44
BLUE: Colour = (0x2B, 0x6C, 0xB0)
RED: Colour = (0xC5, 0x30, 0x30)
ORANGE: Colour = (0xDD, 0x6B, 0x20)
PURPLE: Colour = (0x6B, 0x46, 0xC1)
INK: Colour = (0x1A, 0x20, 0x2C)
BURST: Colour = (0xFF, 0xF5, 0xF5)  # the background of a burst of failures
MAX_SERVER_PANELS = 4


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * exp >= v:
            return m * exp
    return 10.0 * exp


def histogram_png(result: AnalysisResult) -> bytes:
    """Response times on log-spaced bins (10 a decade), the slow threshold marked."""
    d = Canvas(W, H)
    lat = result.latency
    d.text((MARGIN_L, 8), f"DNS response times: p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms, "
           f"max {lat.max_ms:.0f} ms ({lat.count:,} answered)", fill=INK, font=14)
    x0, y0, x1, y1 = MARGIN_L, MARGIN_T, W - MARGIN_R, H - MARGIN_B
    d.rectangle((x0, y0, x1, y1), outline=INK)
    hist = result.latency.histogram
    if not hist:
        d.text(((x0 + x1) // 2 - 80, (y0 + y1) // 2), "no answered transactions", fill=INK, font=12)
        return d.png()
    lo = math.floor(math.log10(max(min(b[0] for b in hist), 0.001)) * 10)
    hi = math.ceil(math.log10(max(max(b[1] for b in hist), 10 ** ((lo + 1) / 10))) * 10)
    hi = max(hi, lo + 1)
    counts = [0] * (hi - lo)
    for low, _high, n in hist:
        k = math.floor(math.log10(max(low, 0.001)) * 10) - lo
        counts[min(max(k, 0), len(counts) - 1)] += n
    top = _nice_max(max(counts))
    width = (x1 - x0) / len(counts)
    for i, c in enumerate(counts):
        if c:
            h = (y1 - y0) * c / top
            d.rectangle((x0 + i * width + 1, y1 - h, x0 + (i + 1) * width - 1, y1), fill=BLUE)
    small = 11
    for k in range(lo, hi + 1):
        if k % 10 == 0:
            x = x0 + (k - lo) * width
            d.line((x, y1, x, y1 + 4), fill=INK)
            d.text((x - 12, y1 + 6), f"{10 ** (k / 10):g}", fill=INK, font=small)
    d.text(((x0 + x1) // 2 - 60, H - 18), "response time (ms, log scale)", fill=INK, font=small)
    d.text((4, y0), f"{int(top):,}", fill=INK, font=small)
    d.text((4, y1 - 12), "0", fill=INK, font=small)
    slow_ms = result.slow_threshold_s * 1000.0
    ks = math.log10(slow_ms) * 10 - lo
    if 0 <= ks <= len(counts):
        x = x0 + ks * width
        for y in range(y0, y1, 8):
            d.line((x, y, x, min(y + 4, y1)), fill=RED, width=2)
        label = f"slow >= {result.slow_threshold_s:g} s"  # the bundled font has no ≥
        d.text((x + 4 if x < x1 - 90 else x - 90, y0 + 4), label, fill=RED, font=small)
    return d.png()


def _bucketed(seconds: Sequence[Second], first: int, n_cols: int, per: int, field: str) -> list[int]:
    out = [0] * n_cols
    for s in seconds:
        i = (s.second - first) // per
        if 0 <= i < n_cols:
            out[i] += getattr(s, field)
    return out


def timeline_png(result: AnalysisResult, pattern: Pattern) -> bytes:
    """Queries, unanswered, SERVFAIL and slow answers per second; one failure panel per
    server when there are a few."""
    timeline = result.timeline
    servers = [t for t in result.server_timelines if t.seconds]
    per_server = servers if 1 < len(servers) <= MAX_SERVER_PANELS else []
    panels = 2 + len(per_server)
    panel_h = 120
    height = MARGIN_T + panels * (panel_h + 26) + MARGIN_B
    d = Canvas(W, height)
    d.text((MARGIN_L, 8), f"DNS over time: {pattern.text}", fill=INK, font=14)
    small = 11
    if not timeline:
        d.text((MARGIN_L, MARGIN_T + 20), "no DNS traffic", fill=INK, font=small)
        return d.png()
    first, last = timeline[0].second, timeline[-1].second
    span = last - first + 1
    x0, x1 = MARGIN_L, W - MARGIN_R
    per = max(1, math.ceil(span / (x1 - x0)))
    n_cols = math.ceil(span / per)
    unit = "per second" if per == 1 else f"per {per} s"

    def panel(k: int, title: str, series: list[tuple[str, Colour, list[int]]]) -> None:
        top_y = MARGIN_T + k * (panel_h + 26) + 16
        y0, y1 = top_y, top_y + panel_h
        d.text((x0, y0 - 15), f"{title} ({unit})", fill=INK, font=small)
        top = _nice_max(max((max(v) for _, _, v in series if v), default=0))
        d.text((4, y0), f"{int(top):,}", fill=INK, font=small)
        d.text((4, y1 - 12), "0", fill=INK, font=small)
        for a, b in pattern.bursts:
            xa = x0 + (a - first) // per * (x1 - x0) / n_cols
            xb = x0 + ((b - first) // per + 1) * (x1 - x0) / n_cols
            d.rectangle((xa, y0 + 1, xb, y1 - 1), fill=BURST)
        d.rectangle((x0, y0, x1, y1), outline=INK)  # over the bursts' background, which reaches its sides
        lx = x1 - 10
        for label, color, values in reversed(series):
            pts = [(x0 + (i + 0.5) * (x1 - x0) / n_cols, y1 - (y1 - y0) * v / top) for i, v in enumerate(values)]
            if len(pts) == 1:
                d.ellipse((pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2), fill=color)
            else:
                d.line([v for p in pts for v in p], fill=color, width=1)
            lx -= 8 * len(label) + 16
            d.rectangle((lx, y0 - 11, lx + 8, y0 - 3), fill=color)
            d.text((lx + 11, y0 - 15), label, fill=color, font=small)

    panel(0, "queries", [("queries", BLUE, _bucketed(timeline, first, n_cols, per, "queries"))])
    failures = [("unanswered", RED, "unanswered"), ("SERVFAIL", ORANGE, "servfail"), ("slow", PURPLE, "slow")]
    panel(1, "failures, all servers",
          [(label, color, _bucketed(timeline, first, n_cols, per, f)) for label, color, f in failures])
    for k, t in enumerate(per_server, start=2):
        panel(k, f"failures at {t.address}",
              [(label, color, _bucketed(t.seconds, first, n_cols, per, f)) for label, color, f in failures])
    bottom = MARGIN_T + (panels - 1) * (panel_h + 26) + 16 + panel_h
    for k in range(5):
        offset = round(k * span / 4)
        x = x0 + (x1 - x0) * offset / span
        d.line((x, bottom, x, bottom + 4), fill=INK)
        d.text((max(x0, min(x - 10, x1 - 40)), bottom + 6), f"{offset:,}", fill=INK, font=small)
    d.text(((x0 + x1) // 2 - 100, height - 18),
           f"seconds since {_clock(first)} UTC (capture span {span:,} s)", fill=INK, font=small)
    return d.png()


def _clock(second: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
