"""Per-server summary of `dig` results (pure): counts, latency percentiles, slow marks.

The guide treats a DNS answer that takes five seconds or more as a latency problem: most
clients (glibc's ``options timeout:5``) have already given up and retried by then, so such
an answer is marked even though it arrived.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.analysis.figures import SLOW_MS, format_ms, is_slow, percentile
from workers.evidence.dns import QueryResult
from workers.report import Status


@dataclass(frozen=True)
class ServerSummary:
    """How one server did over all its queries."""

    server: str
    queries: int
    answered: int  # NOERROR or NXDOMAIN
    failed: int  # everything else: SERVFAIL, REFUSED, ..., TIMEOUT, ERROR
    statuses: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None  # over responses only: a timeout has no round-trip time
    p95_ms: float | None = None
    max_ms: float | None = None
    slow: int = 0  # responses at or above SLOW_MS
    status: Status = Status.OK

    def line(self) -> str:
        """One human line, e.g. ``9/10 answered · 1 TIMEOUT · p50 1.2 ms · p95 3.0 ms · max 3.1 ms``."""
        parts = [f"{self.answered}/{self.queries} answered"]
        parts += [f"{n} {s}" for s, n in sorted(self.statuses.items()) if s not in ("NOERROR", "NXDOMAIN")]
        if self.p50_ms is not None:
            parts.append(f"p50 {format_ms(self.p50_ms)} · p95 {format_ms(self.p95_ms)} · max {format_ms(self.max_ms)}")
        else:
            parts.append("no response")
        if self.slow:
            parts.append(f"⚠️ {self.slow} at or above {SLOW_MS / 1000:g} s")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "queries": self.queries,
            "answered": self.answered,
            "failed": self.failed,
            "statuses": dict(sorted(self.statuses.items())),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "max_ms": self.max_ms,
            "slow": self.slow,
            "status": self.status.value,
        }


@dataclass(frozen=True)
class Disagreement:
    """Servers gave different answers' rcodes for the same name and type (e.g. NOERROR vs NXDOMAIN)."""

    name: str
    rdtype: str
    statuses: dict[str, tuple[str, ...]]  # status -> servers that gave it

    def line(self) -> str:
        by = "; ".join(f"{s} from {', '.join(servers)}" for s, servers in sorted(self.statuses.items()))
        return f"{self.name} {self.rdtype}: {by}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.rdtype,
            "statuses": {s: list(v) for s, v in sorted(self.statuses.items())},
        }


@dataclass(frozen=True)
class DigSummary:
    servers: tuple[ServerSummary, ...]
    queries: int
    answered: int
    failed: int
    slow: int
    disagreements: tuple[Disagreement, ...]
    status: Status

    def to_json(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "answered": self.answered,
            "failed": self.failed,
            "slow": self.slow,
            "status": self.status.value,
            "servers": [s.to_json() for s in self.servers],
            "disagreements": [d.to_json() for d in self.disagreements],
        }


def server_status(answered: int, failed: int, slow: int) -> Status:
    """FAIL when nothing usable came back, WARN on any loss or slow answer, else OK."""
    if answered == 0:
        return Status.FAIL
    if failed or slow:
        return Status.WARN
    return Status.OK


def summarize_server(server: str, results: Iterable[QueryResult], slow_ms: float = SLOW_MS) -> ServerSummary:
    rows = list(results)
    statuses = Counter(r.status for r in rows)
    answered = sum(1 for r in rows if r.answered)
    failed = len(rows) - answered
    latencies = [r.latency_ms for r in rows if r.responded]
    slow = sum(1 for v in latencies if is_slow(v, slow_ms))
    return ServerSummary(
        server=server,
        queries=len(rows),
        answered=answered,
        failed=failed,
        statuses=dict(statuses),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        max_ms=max(latencies) if latencies else None,
        slow=slow,
        status=server_status(answered, failed, slow),
    )


def disagreements(results: Iterable[QueryResult]) -> tuple[Disagreement, ...]:
    """Names whose usable answers differ by server: one says NOERROR, another NXDOMAIN.

    That pattern points at one stale or misconfigured server (a custom DNS, a forwarder),
    which is exactly what querying every layer is for.
    """
    seen: dict[tuple[str, str], dict[str, set[str]]] = {}
    for r in results:
        if r.answered:
            seen.setdefault((r.name, r.rdtype), {}).setdefault(r.status, set()).add(str(r.server))
    out = []
    for (name, rdtype), by_status in seen.items():
        if len(by_status) > 1:
            out.append(Disagreement(name, rdtype, {s: tuple(sorted(v)) for s, v in by_status.items()}))
    return tuple(out)


def summarize(results: Sequence[QueryResult], slow_ms: float = SLOW_MS) -> DigSummary:
    """Summary per server (in first-seen order) and overall."""
    by_server: dict[str, list[QueryResult]] = {}
    for r in results:
        by_server.setdefault(str(r.server), []).append(r)
    servers = tuple(summarize_server(s, rows, slow_ms) for s, rows in by_server.items())
    diffs = disagreements(results)
    worst = [s.status for s in servers]
    if Status.FAIL in worst:
        status = Status.FAIL
    elif Status.WARN in worst or diffs:
        status = Status.WARN
    else:
        status = Status.OK
    return DigSummary(
        servers=servers,
        queries=len(results),
        answered=sum(s.answered for s in servers),
        failed=sum(s.failed for s in servers),
        slow=sum(s.slow for s in servers),
        disagreements=diffs,
        status=status,
    )
