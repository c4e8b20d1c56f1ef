"""Findings derived from an analysis: search-list expansion storms and the overall verdict.

The guide's Part 3 reads the DNS statistics for three things: responses that failed
(SERVFAIL, NXDOMAIN), queries that never got an answer, and answers that took 5 s or
more (the client's time-out).  Names answered NXDOMAIN once per search domain are the
``ndots:5`` effect: a name with fewer than five dots is first tried with every search
suffix (``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``, the VNet's
``*.internal.cloudapp.net``) before it is tried as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.analysis.traffic.model import AnalysisResult
from workers.report import Status

# Search suffixes a pod's resolv.conf adds (Kubernetes, then the Azure VNet's own).
_SEARCH_SUFFIXES = (
    re.compile(r"\.[a-z0-9-]+\.svc\.cluster\.local$"),
    re.compile(r"\.svc\.cluster\.local$"),
    re.compile(r"\.cluster\.local$"),
    re.compile(r"\.[a-z0-9-]+\.[a-z0-9-]+\.internal\.cloudapp\.net$"),
    re.compile(r"\.reddog\.microsoft\.com$"),
)
NXDOMAIN = "No such name"


@dataclass(frozen=True)
class ExpansionStorm:
    """A name tried with several search suffixes, each answered NXDOMAIN."""

    base: str
    expansions: tuple[str, ...]
    nxdomain: int


def search_bases(name: str) -> tuple[str, ...]:
    """Every name ``name`` can be a search-list expansion of (most specific suffix last).

    "a.b.com.svc.cluster.local" is "a.b.com" + "svc.cluster.local" or "a.b" + the
    namespace suffix "com.svc.cluster.local": only the other expansions of the same name
    tell which, so callers pick the candidate shared by most names.
    """
    lowered = name.lower().rstrip(".")
    bases = []
    for pattern in _SEARCH_SUFFIXES:
        m = pattern.search(lowered)
        if m:
            base = lowered[: m.start()]
            # Only a multi-label name is an expansion of something the client asked for:
            # "redis.cache.svc.cluster.local" is a service, "db.contoso.com.cluster.local" is not.
            if "." in base and not base.endswith((".svc", ".cluster")):
                bases.append(base)
    return tuple(dict.fromkeys(bases))


def expansion_storms(result: AnalysisResult, *, min_expansions: int = 2) -> tuple[ExpansionStorm, ...]:
    """Names whose search-list expansions were answered NXDOMAIN, worst first."""
    nx = [f for f in result.failing_names if f.rcode == NXDOMAIN]
    candidates = {f.name: search_bases(f.name) for f in nx}
    support: dict[str, int] = {}
    for bases in candidates.values():
        for base in bases:
            support[base] = support.get(base, 0) + 1
    groups: dict[str, dict[str, int]] = {}
    for f in nx:
        bases = candidates[f.name]
        if not bases:
            continue
        # The candidate most names agree on; ties to the shortest suffix (the latest pattern).
        best = max(enumerate(bases), key=lambda ib: (support[ib[1]], ib[0]))[1]
        names = groups.setdefault(best, {})
        names[f.name] = names.get(f.name, 0) + f.count
    storms = [
        ExpansionStorm(base, tuple(sorted(names)), sum(names.values()))
        for base, names in groups.items()
        if len(names) >= min_expansions
    ]
    storms.sort(key=lambda s: (-s.nxdomain, s.base))
    return tuple(storms)


def servfail_count(result: AnalysisResult) -> int:
    return sum(n for name, n in result.response_rcodes if name == "Server failure")


def verdict(result: AnalysisResult) -> Status:
    """FAIL when queries went unanswered or servers failed, WARN on slow answers."""
    if result.dns_messages == 0:
        return Status.INFO
    if result.unanswered_transactions > 0 or servfail_count(result) > 0:
        return Status.FAIL
    if result.slow_responses > 0 or result.warnings or result.malformed:
        return Status.WARN
    return Status.OK


def headline(result: AnalysisResult) -> str:
    """One sentence for the top of the thread."""
    if result.dns_messages == 0:
        return f"No DNS messages in {result.frames:,} packets."
    parts = [
        f"{result.dns_messages:,} DNS messages ({result.queries:,} queries, {result.responses:,} responses)",
        # Wireshark's unanswered filter also matches every re-sent query (and, with `-i any`,
        # the second copy of each query): lead with the transactions that really got no answer.
        f"{result.unanswered_transactions:,} lookups never answered "
        f"({result.unanswered_queries:,} queries match Wireshark's unanswered filter)",
        f"{result.slow_responses:,} responses ≥ {result.slow_threshold_s:g} s",
    ]
    sf = servfail_count(result)
    if sf:
        parts.append(f"{sf:,} SERVFAIL")
    return ", ".join(parts) + "."
