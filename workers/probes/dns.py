"""Async DNS query engine: many queries at once, one result each, never an exception.

Used by the `dig` job and by `check`.  Every query runs concurrently (bounded by a pool
of ``concurrency`` workers), so the total time is about that of the slowest server, never
the sum.  Each query has one time budget (``timeout``) that covers the UDP attempt *and*
the TCP retry after a truncated (TC) answer, so no query ever outlives its budget.

The socket edge is :func:`_udp` / :func:`_exchange`; everything that turns a response or
an exception into a :class:`QueryResult` (``status_of``, ``answers_of``, ``error_text``,
``arrival_ns``) is pure and tested without network.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from aksdns.commands import DnsServer
from workers.evidence.dns import ERROR, TIMEOUT, Query, QueryResult

# Margin of the outer guard on top of the per-step timeouts: if a library path ever failed to
# honour its timeout, the query still ends shortly after its budget.
_GUARD_MARGIN_S = 0.25


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
    # Microsecond resolution: a loopback or node-local answer takes well under 1 ms.
    return round(seconds * 1000.0, 3)


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
        error=_error_reason(timed_out, exc, tcp_retry),
    )


def _error_reason(timed_out: bool, exc: BaseException, tcp_retry: bool) -> str:
    reason = "no answer within the timeout" if timed_out else error_text(exc)
    # After a TC answer, a failure is the TCP retry's: "TCP/53 blocked" is a classic cause
    # of large answers failing while small ones work.
    return f"TCP retry after truncation: {reason}" if tcp_retry else reason


# ---------------------------------------------------------------------------- socket edge


class _Outcome:
    """Mutable scratch of one query, so the error path still knows what happened."""

    __slots__ = ("tcp_retry", "wire_latency_s")

    def __init__(self) -> None:
        self.tcp_retry = False
        self.wire_latency_s: float | None = None  # send -> kernel receive time, UDP only


# Linux's SO_TIMESTAMPNS (asm-generic: x86-64, arm64): the kernel stamps each datagram with
# its arrival time.  Latency is then send -> arrival, not send -> "the event loop got round
# to it": with a thousand queries in flight the loop is busy sending, and a 0.3 ms answer
# would otherwise be reported as 300 ms (and could be marked slow for the loop's sake).
_SO_TIMESTAMPNS = 35 if sys.platform == "linux" else None
_TIMESPEC = struct.Struct("@ll")  # struct timespec { time_t tv_sec; long tv_nsec; }


def arrival_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """Kernel arrival time (ns since the epoch) from recvmsg's ancillary data, if present."""
    if _SO_TIMESTAMPNS is None:
        return None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return int(sec) * 1_000_000_000 + int(nsec)
    return None


def _udp_socket(server: DnsServer) -> socket.socket:
    """A non-blocking UDP socket *connected* to ``server``.

    Connected, because the kernel then reports ICMP port-unreachable as ECONNREFUSED on the
    next recv (an unconnected socket, as dnspython's own ``udp()`` uses, just waits for the
    timeout) and drops datagrams from any other source.  AI_NUMERICHOST: the address is
    never looked up in DNS (an IPv6 zone such as ``fe80::1%eth0`` still resolves).
    """
    family, _, proto, _, sockaddr = socket.getaddrinfo(
        server.host, server.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
    )[0]
    sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    try:
        sock.setblocking(False)
        if _SO_TIMESTAMPNS is not None:
            with contextlib.suppress(OSError):  # no stamps: latency falls back to the clock
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.connect(sockaddr)  # UDP connect sends nothing: it only fixes the peer
    except OSError:
        sock.close()
        raise
    return sock


_ANCBUF = socket.CMSG_SPACE(_TIMESPEC.size)


async def _recvmsg(sock: socket.socket) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """``sock.recvmsg`` on the event loop (3.11 has sock_recv, not sock_recvmsg)."""
    try:
        data, ancdata, _flags, _addr = sock.recvmsg(65535, _ANCBUF)
        return data, ancdata
    except BlockingIOError:
        pass
    loop = asyncio.get_running_loop()
    future: asyncio.Future[tuple[bytes, list[tuple[int, int, bytes]]]] = loop.create_future()

    def readable() -> None:
        if future.done():
            return
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(65535, _ANCBUF)
        except BlockingIOError:
            return
        except OSError as exc:  # ECONNREFUSED from an ICMP port unreachable, and the like
            future.set_exception(exc)
        else:
            future.set_result((data, ancdata))

    loop.add_reader(sock.fileno(), readable)
    try:
        return await future
    finally:
        loop.remove_reader(sock.fileno())


async def _udp(message: dns.message.Message, server: DnsServer, timeout: float, out: _Outcome) -> dns.message.Message:
    """One UDP exchange; raises Truncated on TC, TimeoutError, or the socket's OSError.

    A lean path (raw non-blocking socket on the event loop, dnspython only for the wire
    format) rather than ``dns.asyncquery.udp``: it costs about half the CPU per query, which
    is what decides how soon the last of a thousand fanned-out queries gets on the wire.
    """
    loop = asyncio.get_running_loop()
    wire = message.to_wire()
    with _udp_socket(server) as sock:
        async with asyncio.timeout(timeout):
            sent_ns = time.time_ns()  # same clock as the kernel's arrival stamps
            await loop.sock_sendall(sock, wire)
            while True:
                data, ancdata = await _recvmsg(sock)
                try:
                    response = dns.message.from_wire(data, raise_on_truncation=True)
                except dns.message.Truncated as exc:
                    if message.is_response(exc.message()):  # type: ignore[no-untyped-call]
                        raise
                    continue
                if message.is_response(response):
                    arrived = arrival_ns(ancdata)
                    if arrived is not None and arrived >= sent_ns:
                        out.wire_latency_s = (arrived - sent_ns) / 1e9
                    return response
                # A datagram for some other query (wrong id or question): keep listening,
                # as a stub resolver does, until the real answer or the timeout.


async def _exchange(query: Query, message: dns.message.Message, deadline: float, out: _Outcome) -> Any:
    """Ask once (UDP, then TCP on TC, or TCP only with ``query.tcp``) within ``deadline``."""
    server = query.server
    if not query.tcp:
        try:
            return await _udp(message, server, max(deadline - time.monotonic(), 0.0), out)
        except dns.message.Truncated:
            out.tcp_retry = True
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("budget spent before the TCP retry")
    return await dns.asyncquery.tcp(message, server.host, timeout=remaining, port=server.port)


async def run_query(query: Query, *, timeout: float) -> QueryResult:
    """Run one query; every failure becomes a TIMEOUT or ERROR result, never an exception.

    Latency: for a UDP answer, send -> kernel arrival stamp when the kernel gives one;
    otherwise (TCP, TC retry, no stamps, failures) the monotonic time the query took.
    """
    start = time.monotonic()
    out = _Outcome()
    try:
        message = make_message(query.name, query.rdtype)
    except (dns.exception.DNSException, ValueError) as exc:
        return result_from_error(query, exc, 0.0, tcp_retry=False)
    try:
        async with asyncio.timeout(timeout + _GUARD_MARGIN_S):
            response = await _exchange(query, message, start + timeout, out)
    except (dns.exception.DNSException, OSError, EOFError, TimeoutError, ValueError) as exc:
        return result_from_error(query, exc, time.monotonic() - start, tcp_retry=out.tcp_retry)
    elapsed = time.monotonic() - start
    if out.wire_latency_s is not None and not out.tcp_retry:
        elapsed = min(elapsed, out.wire_latency_s)
    return result_from_response(query, response, elapsed, tcp_retry=out.tcp_retry)


async def run_queries(queries: Sequence[Query], *, timeout: float, concurrency: int = 512) -> list[QueryResult]:
    """Run all ``queries`` concurrently; results come back in input order.

    ``concurrency`` bounds open sockets (file descriptors); each query's budget starts when
    it gets a slot, so queueing never eats into a query's own timeout.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    results: list[QueryResult | None] = [None] * len(queries)
    pending = iter(range(len(queries)))

    # A fixed pool of workers pulling the next index, rather than one task per query behind
    # a semaphore: no thousands of parked tasks, and (on 3.11) no O(n) waiter scan on every
    # release.  Input order is kept by writing each result to its own slot.
    async def worker() -> None:
        for index in pending:
            results[index] = await run_query(queries[index], timeout=timeout)

    workers = min(max(1, concurrency), len(queries))
    await asyncio.gather(*(worker() for _ in range(workers)))
    return [r for r in results if r is not None]


def socket_budget(reserve: int = 256) -> int:
    """How many queries may be in flight at once: one socket each, within RLIMIT_NOFILE.

    ``reserve`` leaves descriptors for everything else the process holds (Redis, logs,
    Slack's HTTP pool).  Callers pass ``min(len(queries), socket_budget())`` as
    ``concurrency`` so that a whole fan-out is in flight at once: with fewer slots than
    queries, queries to a dead server hold slots for the full timeout and the rest wait a
    second round.
    """
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 512
    if soft == resource.RLIM_INFINITY:
        return 65536
    return max(64, soft - reserve)


def run_queries_sync(queries: Sequence[Query], *, timeout: float, concurrency: int = 512) -> list[QueryResult]:
    """Blocking wrapper for callers outside an event loop (RQ jobs, the CLI)."""
    return asyncio.run(run_queries(queries, timeout=timeout, concurrency=concurrency))
