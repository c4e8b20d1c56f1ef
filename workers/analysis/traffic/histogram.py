"""The response-time histogram as a PNG (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import io
import itertools
import math

from workers.analysis.traffic.model import AnalysisResult


def histogram_png(result: AnalysisResult) -> bytes:
    """Counts of response times on log-spaced bins, the slow threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    hist = result.latency.histogram
    if hist:
        lo = max(min(b[0] for b in hist), 0.001)
        hi = max(b[1] for b in hist)
        edges = _log_edges(lo, hi)
        counts = [0] * (len(edges) - 1)
        for low, _high, n in hist:
            i = _bin(edges, max(low, lo))
            counts[i] += n
        ax.bar(edges[:-1], counts, width=[b - a for a, b in itertools.pairwise(edges)],
               align="edge", color="#2b6cb0", edgecolor="white", linewidth=0.3)
        ax.set_xscale("log")
        ax.axvline(result.slow_threshold_s * 1000.0, color="#c53030", linestyle="--",
                   label=f"slow ≥ {result.slow_threshold_s:g} s")
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no answered transactions", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("response time (ms)")
    ax.set_ylabel("responses")
    lat = result.latency
    ax.set_title(f"DNS response times: p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms, max {lat.max_ms:.0f} ms")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _log_edges(lo: float, hi: float, per_decade: int = 10) -> list[float]:
    start = math.floor(math.log10(lo) * per_decade)
    stop = math.ceil(math.log10(max(hi, lo * 1.01)) * per_decade)
    return [10 ** (k / per_decade) for k in range(start, stop + 1)]


def _bin(edges: list[float], v: float) -> int:
    for i in range(len(edges) - 1):
        if v < edges[i + 1]:
            return i
    return len(edges) - 2
