"""`capture --live`: decoded DNS rows as they happen, like Inspektor Gadget's trace_dns.

Each target's messages are paired as they arrive (query, then its answer); a row is final when the
answer comes or when the query has waited ``unanswered_after_s`` (then it is *unanswered*). Rows go to a
sink (the CSV file) one by one; the tracker keeps counters and a bounded list of the worst rows, so
memory stays flat however long the capture runs. Names of both ends come from the cluster: pod names
for pod IPs, CoreDNS pod names, ``upstream`` otherwise.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from workers.analysis.capture_wire import DnsMessage, rcode_name, type_name

COLUMNS = ("time", "target", "client", "server", "name", "type", "id", "rcode", "latency_ms")
KEEP_WORST = 20
MAX_OPEN = 200_000  # queries waiting for an answer per tracker; the oldest are closed as unanswered


@dataclass(frozen=True)
class Row:
    ts_ns: int
    target: str
    client: str
    server: str
    name: str
    qtype: str
    id: int
    rcode: str  # "" while unanswered
    latency_ms: float | None

    def cells(self) -> tuple[str, ...]:
        stamp = time.strftime("%H:%M:%S", time.gmtime(self.ts_ns / 1e9)) + f".{self.ts_ns // 1_000_000 % 1000:03d}"
        latency = "" if self.latency_ms is None else f"{self.latency_ms:.2f}"
        return (stamp, self.target, self.client, self.server, self.name, self.qtype, str(self.id),
                self.rcode or "UNANSWERED", latency)


@dataclass
class LiveSummary:
    answered: int = 0
    unanswered: int = 0
    slow: int = 0
    by_rcode: dict[str, int] = field(default_factory=dict)
    unanswered_rows: list[Row] = field(default_factory=list)  # the first ones
    slowest: list[tuple[float, int, Row]] = field(default_factory=list)  # a min-heap of the slowest

    @property
    def rows(self) -> int:
        return self.answered + self.unanswered

    def worst_slow(self) -> list[Row]:
        return [r for _ms, _n, r in sorted(self.slowest, key=lambda t: -t[0])]


@dataclass
class LiveTracker:
    """Pairs one capture's messages into rows."""

    names: Mapping[str, str]  # IP -> "namespace/pod" (CoreDNS pods, client pods)
    sink: Callable[[Row], None]
    coredns_ips: frozenset[str] = frozenset()  # what these ask is an upstream
    slow_ms: float = 100.0
    unanswered_after_s: float = 5.0
    summary: LiveSummary = field(default_factory=LiveSummary)
    _open: OrderedDict[tuple[object, ...], tuple[DnsMessage, str]] = field(default_factory=OrderedDict)
    _seq: int = 0

    def who(self, address: str) -> str:
        return self.names.get(address, address)

    def feed(self, target: str, m: DnsMessage) -> None:
        if not m.qname:
            return
        key = (m.client, m.server, m.id, m.qname, m.qtype)
        if not m.response:
            if key not in self._open:
                self._open[key] = (m, target)
                if len(self._open) > MAX_OPEN:
                    _key, (old, old_target) = self._open.popitem(last=False)
                    self._close(old, old_target, None)
        else:
            opened = self._open.pop(key, None)
            if opened is not None:
                self._close(opened[0], opened[1], m)
        self.expire(m.ts_ns)

    def expire(self, now_ns: int) -> None:
        """Close queries that waited too long (they are unanswered)."""
        limit = now_ns - int(self.unanswered_after_s * 1e9)
        while self._open:
            key, (q, target) = next(iter(self._open.items()))
            if q.ts_ns > limit:
                break
            del self._open[key]
            self._close(q, target, None)

    def finish(self) -> None:
        for q, target in list(self._open.values()):
            self._close(q, target, None)
        self._open.clear()

    def _close(self, q: DnsMessage, target: str, answer: DnsMessage | None) -> None:
        latency = None if answer is None else (answer.ts_ns - q.ts_ns) / 1e6
        rcode = "" if answer is None else rcode_name(answer.rcode)
        server = self.who(q.dst)
        if q.src in self.coredns_ips and q.dst not in self.names:
            server = f"upstream {q.dst}"
        row = Row(q.ts_ns, target, self.who(q.src), server, q.qname, type_name(q.qtype), q.id, rcode, latency)
        s = self.summary
        if answer is None:
            s.unanswered += 1
            if len(s.unanswered_rows) < KEEP_WORST:
                s.unanswered_rows.append(row)
        else:
            s.answered += 1
            s.by_rcode[rcode] = s.by_rcode.get(rcode, 0) + 1
            assert latency is not None
            if latency >= self.slow_ms:
                s.slow += 1
            self._seq += 1
            item = (latency, self._seq, row)
            if len(s.slowest) < KEEP_WORST:
                heapq.heappush(s.slowest, item)
            elif latency > s.slowest[0][0]:
                heapq.heapreplace(s.slowest, item)
        self.sink(row)


def progress_line(s: LiveSummary, slow_ms: float) -> str:
    """One line for the parent message: the bad news first."""
    parts = [f"{s.unanswered:,} unanswered", f"{s.slow:,} slow (≥ {slow_ms:g} ms)", f"{s.answered:,} answered"]
    worst = s.worst_slow()
    if worst:
        parts.append(f"slowest {worst[0].name} {worst[0].latency_ms:.0f} ms")
    return " · ".join(parts)
