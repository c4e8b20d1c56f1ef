"""DNS questions and what they gave: the data every DNS-asking command and its analysis share.

No sockets here: ``workers.probes.dns`` (the driver) asks; analysis reads these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aksdns.commands import DnsServer

# The guide: an answer at or after 5 s is a latency problem (glibc's `options timeout:5` has
# already given up and retried by then), so it is marked even though it arrived.
SLOW_MS = 5000.0

TIMEOUT = "TIMEOUT"
ERROR = "ERROR"

# Statuses that are a usable answer about the name: NXDOMAIN is a real answer (the name
# does not exist), not a failure of the server.
ANSWERED_STATUSES = frozenset({"NOERROR", "NXDOMAIN"})

@dataclass(frozen=True)
class Query:
    """One question to one server; ``attempt`` numbers the repeats of `--repeat N`."""

    server: DnsServer
    name: str
    rdtype: str = "A"
    attempt: int = 1
    tcp: bool = False  # True: ask over TCP from the start (`--tcp`)


@dataclass(frozen=True)
class QueryResult:
    """What one query gave: an rcode name, TIMEOUT or ERROR, with its latency."""

    server: DnsServer
    name: str
    rdtype: str
    attempt: int
    status: str  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... or TIMEOUT or ERROR
    latency_ms: float
    answers: tuple[str, ...]
    tcp_retry: bool = False  # the UDP answer was truncated and TCP was asked
    error: str | None = None  # short text for ERROR (and the reason for TIMEOUT)

    @property
    def answered(self) -> bool:
        """True for a usable answer (NOERROR or NXDOMAIN)."""
        return self.status in ANSWERED_STATUSES

    @property
    def responded(self) -> bool:
        """True when the server sent any response (so the latency is a real round trip)."""
        return self.status not in (TIMEOUT, ERROR)

    def to_json(self) -> dict[str, Any]:
        """The `--format json` shape of one result (keys are a public contract)."""
        return {
            "server": str(self.server),
            "name": self.name,
            "type": self.rdtype,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "answers": list(self.answers),
            "attempt": self.attempt,
        }
