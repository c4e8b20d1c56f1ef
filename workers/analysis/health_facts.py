"""Health evidence → figures: per-pod rates from two scrapes, throttling risk, restart reasons.

Pure. Shared by `health`'s tables and rules and by `check`'s performance questions (item 8), so both
commands say the same thing about the same pod.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workers.analysis.health_quantity import Quantity
from workers.evidence.health import HealthEvidence, PodHealth, PodMetrics, Usage

THROTTLE_SHARE = 0.8  # usage at 80 % of the CPU limit: the CFS quota bites on bursts
HOT_SHARE = 0.7  # one pod of several takes this share of the queries
HOT_MIN_REQUESTS = 30  # ... over enough queries to mean something
COLD_CACHE_RATIO = 0.2
COLD_MIN_REQUESTS = 30


@dataclass(frozen=True)
class Rates:
    """One pod's counters between two scrapes, per second and in total."""

    pod: str
    seconds: float
    requests: float
    responses: dict[str, float]
    forward_requests: float
    forward_avg_ms: float | None
    healthcheck_failures: dict[str, float]
    cache_hits: float
    cache_misses: float
    panics_total: float
    panics_new: float
    reload_failures: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cache_ratio(self) -> float | None:
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else None


def rates_of(m: PodMetrics) -> Rates | None:
    a, b = m.first, m.second
    if a is None or b is None:
        return None
    seconds = max(b.at - a.at, 1e-6)
    count = b.forward_duration_count - a.forward_duration_count
    avg = (b.forward_duration_sum - a.forward_duration_sum) / count * 1000 if count > 0 else None

    def delta(x: dict[str, float], y: dict[str, float]) -> dict[str, float]:
        return {k: v - x.get(k, 0.0) for k, v in y.items() if v - x.get(k, 0.0) > 0}

    return Rates(
        pod=m.pod, seconds=seconds, requests=b.requests - a.requests, responses=delta(a.responses, b.responses),
        forward_requests=b.forward_requests - a.forward_requests, forward_avg_ms=avg,
        healthcheck_failures=delta(a.healthcheck_failures, b.healthcheck_failures),
        cache_hits=b.cache_hits - a.cache_hits, cache_misses=b.cache_misses - a.cache_misses,
        panics_total=b.panics, panics_new=b.panics - a.panics, reload_failures=b.reload_failures,
    )


def all_rates(ev: HealthEvidence) -> list[Rates]:
    return [r for r in (rates_of(m) for m in ev.scrapes) if r is not None]


def hot_pod(rates: Sequence[Rates]) -> tuple[Rates, float] | None:
    """The pod taking most of the queries, when one of several takes HOT_SHARE or more."""
    total = sum(r.requests for r in rates)
    if len(rates) < 2 or total < HOT_MIN_REQUESTS:
        return None
    top = max(rates, key=lambda r: r.requests)
    share = top.requests / total
    return (top, share) if share >= HOT_SHARE else None


def cpu_limit_share(p: PodHealth) -> float | None:
    """CPU usage as a share of the pod's CPU limit (None without usage or limit)."""
    limit = Quantity.parse(p.resources.cpu_limit).milli
    if p.usage is None or not limit:
        return None
    return p.usage.cpu_m / limit


def memory_limit_share(p: PodHealth) -> float | None:
    limit = Quantity.parse(p.resources.memory_limit).whole
    if p.usage is None or not limit:
        return None
    return p.usage.memory_mi * 1024 * 1024 / limit


def throttling_risk(p: PodHealth) -> bool:
    share = cpu_limit_share(p)
    return share is not None and share >= THROTTLE_SHARE


def restart_title(p: PodHealth) -> str:
    """Restarts named by their reason: OOMKilled is memory, Error is a crash, CrashLoopBackOff a loop."""
    reason = p.last_reason
    if reason == "OOMKilled":
        what = "OOMKilled (memory limit too low)"
    elif reason == "Error":
        code = f", exit code {p.last_exit_code}" if p.last_exit_code is not None else ""
        what = f"crashed (Error{code})"
    elif reason:
        what = f"last termination {reason}"
    else:
        what = "restarted"
    if p.waiting_reason == "CrashLoopBackOff":
        what += ", now in CrashLoopBackOff"
    return what


def usage_text(u: Usage | None) -> str:
    return "-" if u is None else f"{u.cpu_m}m / {u.memory_mi}Mi"


def rcode_rates(r: Rates) -> str:
    if not r.responses:
        return "-"
    return ", ".join(f"{k} {v / r.seconds:.1f}/s" for k, v in sorted(r.responses.items(), key=lambda kv: -kv[1]))
