"""Async DNS query engine: many queries at once, one result each, never an exception.

Used by the `dig` job and by `check`.  Every query runs concurrently (bounded by a
semaphore), so the total time is about that of the slowest server, never the sum.  Each
query has one time budget (``timeout``) that covers the UDP attempt *and* the TCP retry
after a truncated (TC) answer, so no query ever outlives its budget.

The socket edge is :func:`_exchange`; everything that turns a response or an exception
into a :class:`QueryResult` (``status_of``, ``answers_of``, ``error_text``) is pure and
tested without network.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from aksdns.commands import DnsServer

TIMEOUT = "TIMEOUT"
ERROR = "ERROR"

# Statuses that mean "the server answered authoritatively about the name": NXDOMAIN is a
# real answer (the name does not exist), not a failure of the server.
ANSWERED_STATUSES = frozenset({"NOERROR", "NXDOMAIN"})

# Slack's outer guard on top of dnspython's own timeouts: if a library path ever failed to
# honour its timeout, the query still ends shortly after its budget.
_GUARD_SLACK_S = 0.25


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


# ---------------------------------------------------------------------------- pure parts


def status_of(response: dns.message.Message) -> str:
    """Rcode name of a response (extended rcodes included), e.g. ``NOERROR``, ``SERVFAIL``."""
    return dns.rcode.to_text(response.rcode())


def answers_of(response: dns.message.Message, rdtype: str) -> tuple[str, ...]:
    """Answer section as text: the asked type bare (``10.0.0.1``), others prefixed (``CNAME x.``).

    The prefix keeps a CNAME chain readable in one column without hiding which line is the
    record that was asked for.
    """
    try:
        wanted: int | None = dns.rdatatype.from_text(rdtype)
    except dns.rdatatype.UnknownRdatatype:
        wanted = None
    out: list[str] = []
    for rrset in response.answer:
        for rdata in rrset:
            text = rdata.to_text()
            if rrset.rdtype != wanted:
                text = f"{dns.rdatatype.to_text(rrset.rdtype)} {text}"
            out.append(text)
    return tuple(out)


def error_text(exc: BaseException) -> str:
    """A short, single-line reason for a failed query (socket errors, malformed replies)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, EOFError):
        return "connection closed before an answer"
    if isinstance(exc, dns.query.BadResponse):
        return "response does not match the query"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:120] if text else name


def make_message(name: str, rdtype: str) -> dns.message.Message:
    """The query message: recursion desired, no EDNS (like a stub resolver in a pod)."""
    return dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def result_from_response(
    query: Query, response: dns.message.Message, elapsed_s: float, *, tcp_retry: bool
) -> QueryResult:
    return QueryResult(
        server=query.server,
        name=query.name,
        rdtype=query.rdtype,
        attempt=query.attempt,
        status=status_of(response),
        latency_ms=_ms(elapsed_s),
        answers=answers_of(response, query.rdtype),
        tcp_retry=tcp_retry,
    )


def result_from_error(query: Query, exc: BaseException, elapsed_s: float, *, tcp_retry: bool) -> QueryResult:
    timed_out = isinstance(exc, dns.exception.Timeout | TimeoutError)
    return QueryResult(
        server=query.server,
        name=query.name,
        rdtype=query.rdtype,
        attempt=query.attempt,
        status=TIMEOUT if timed_out else ERROR,
        latency_ms=_ms(elapsed_s),
        answers=(),
        tcp_retry=tcp_retry,
        error=("no answer within the timeout" if timed_out else error_text(exc)),
    )


# ---------------------------------------------------------------------------- socket edge


class _Outcome:
    """Mutable scratch of one query so the error path still knows whether TCP was tried."""

    __slots__ = ("tcp_retry",)

    def __init__(self) -> None:
        self.tcp_retry = False


async def _udp(message: dns.message.Message, server: DnsServer, timeout: float) -> dns.message.Message:
    # A *connected* UDP socket: the kernel then reports ICMP port-unreachable as
    # ECONNREFUSED (dnspython's own unconnected socket would just wait for the timeout),
    # and it drops datagrams from any other source.
    af = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    backend = dns.asyncbackend.get_default_backend()
    sock = await backend.make_socket(  # type: ignore[no-untyped-call]
        af, socket.SOCK_DGRAM, 0, None, (server.host, server.port)
    )
    async with sock:
        return await dns.asyncquery.udp(
            message,
            server.host,
            timeout=timeout,
            port=server.port,
            raise_on_truncation=True,
            sock=sock,
        )


async def _exchange(query: Query, message: dns.message.Message, deadline: float, out: _Outcome) -> Any:
    """Ask once (UDP, then TCP on TC, or TCP only with ``query.tcp``) within ``deadline``."""
    server = query.server
    if not query.tcp:
        try:
            return await _udp(message, server, max(deadline - time.monotonic(), 0.0))
        except dns.message.Truncated:
            out.tcp_retry = True
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("budget spent before the TCP retry")
    return await dns.asyncquery.tcp(message, server.host, timeout=remaining, port=server.port)


async def run_query(query: Query, *, timeout: float) -> QueryResult:
    """Run one query; every failure becomes a TIMEOUT or ERROR result, never an exception."""
    start = time.monotonic()
    out = _Outcome()
    try:
        message = make_message(query.name, query.rdtype)
    except (dns.exception.DNSException, ValueError) as exc:
        return result_from_error(query, exc, 0.0, tcp_retry=False)
    try:
        async with asyncio.timeout(timeout + _GUARD_SLACK_S):
            response = await _exchange(query, message, start + timeout, out)
    except (dns.exception.DNSException, OSError, EOFError, TimeoutError, ValueError) as exc:
        return result_from_error(query, exc, time.monotonic() - start, tcp_retry=out.tcp_retry)
    return result_from_response(query, response, time.monotonic() - start, tcp_retry=out.tcp_retry)


async def run_queries(
    queries: Sequence[Query], *, timeout: float, concurrency: int = 512
) -> list[QueryResult]:
    """Run all ``queries`` concurrently; results come back in input order.

    ``concurrency`` bounds open sockets (file descriptors); each query's budget starts when
    it gets a slot, so queueing never eats into a query's own timeout.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(query: Query) -> QueryResult:
        async with gate:
            return await run_query(query, timeout=timeout)

    return list(await asyncio.gather(*(one(q) for q in queries)))


def run_queries_sync(
    queries: Sequence[Query], *, timeout: float, concurrency: int = 512
) -> list[QueryResult]:
    """Blocking wrapper for callers outside an event loop (RQ jobs, the CLI)."""
    return asyncio.run(run_queries(queries, timeout=timeout, concurrency=concurrency))
