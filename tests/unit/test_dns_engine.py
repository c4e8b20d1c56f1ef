"""Pure parts of the DNS engine: responses and exceptions -> QueryResult, no sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys

import dns.exception
import dns.message
import dns.rcode
import dns.rrset
import pytest

from aksdns.commands import DnsServer
from workers.evidence.dns import Query, QueryResult
from workers.probes import dns as engine

SERVER = DnsServer("10.0.0.10")


def response(
    name: str = "example.com.",
    rdtype: str = "A",
    rcode: int = dns.rcode.NOERROR,
    records: list[tuple[str, str, str]] | None = None,
) -> dns.message.Message:
    msg = dns.message.make_response(dns.message.make_query(name, rdtype))
    msg.set_rcode(rcode)
    for owner, rtype, text in records or []:
        msg.answer.append(dns.rrset.from_text(owner, 30, "IN", rtype, text))
    return msg


@pytest.mark.parametrize(
    ("rcode", "text"),
    [
        (dns.rcode.NOERROR, "NOERROR"),
        (dns.rcode.NXDOMAIN, "NXDOMAIN"),
        (dns.rcode.SERVFAIL, "SERVFAIL"),
        (dns.rcode.REFUSED, "REFUSED"),
        (dns.rcode.FORMERR, "FORMERR"),
        (dns.rcode.NOTIMP, "NOTIMP"),
    ],
)
def test_status_is_the_rcode_name(rcode: int, text: str) -> None:
    assert engine.status_of(response(rcode=rcode)) == text


def test_answers_bare_for_asked_type_prefixed_for_others() -> None:
    msg = response(
        "www.example.com.",
        records=[("www.example.com.", "CNAME", "edge.example.net."), ("edge.example.net.", "A", "10.1.2.3")],
    )
    assert engine.answers_of(msg, "A") == ("CNAME edge.example.net.", "10.1.2.3")


def test_answers_empty_for_nodata() -> None:
    assert engine.answers_of(response(), "A") == ()


def test_answers_unknown_type_prefixes_everything() -> None:
    msg = response(records=[("example.com.", "A", "10.1.2.3")])
    assert engine.answers_of(msg, "NOSUCHTYPE") == ("A 10.1.2.3",)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset"),
        (EOFError("EOF"), "connection closed before an answer"),
        (OSError(101, "Network is unreachable"), "network is unreachable"),
        (dns.query.BadResponse(), "response does not match the query"),
    ],
)
def test_error_text_is_short(exc: BaseException, expected: str) -> None:
    assert engine.error_text(exc) == expected


def test_error_text_is_one_line_and_bounded() -> None:
    text = engine.error_text(ValueError("first line " + "x" * 500 + "\nsecond line"))
    assert "\n" not in text and len(text) <= 120 and text.startswith("ValueError: first line")


@pytest.mark.parametrize("exc", [dns.exception.Timeout(timeout=2.0), TimeoutError()])
def test_timeouts_give_timeout_status(exc: BaseException) -> None:
    r = engine.result_from_error(Query(SERVER, "example.com"), exc, 2.0, tcp_retry=False)
    assert r.status == "TIMEOUT" and r.latency_ms == 2000.0 and r.answers == () and not r.responded


def test_socket_error_gives_error_status_with_text() -> None:
    r = engine.result_from_error(Query(SERVER, "example.com"), ConnectionRefusedError(), 0.001, tcp_retry=False)
    assert (r.status, r.error, r.tcp_retry) == ("ERROR", "connection refused", False)


def test_failure_after_truncation_names_the_tcp_retry() -> None:
    r = engine.result_from_error(Query(SERVER, "example.com"), ConnectionRefusedError(), 0.001, tcp_retry=True)
    assert (r.status, r.error, r.tcp_retry) == ("ERROR", "TCP retry after truncation: connection refused", True)
    t = engine.result_from_error(Query(SERVER, "example.com"), TimeoutError(), 2.0, tcp_retry=True)
    assert (t.status, t.error) == ("TIMEOUT", "TCP retry after truncation: no answer within the timeout")


def test_result_from_response_carries_query_fields() -> None:
    q = Query(DnsServer("127.0.0.1", 5353), "example.com", "A", attempt=3)
    r = engine.result_from_response(q, response(records=[("example.com.", "A", "10.9.8.7")]), 0.01234, tcp_retry=True)
    assert r == QueryResult(q.server, "example.com", "A", 3, "NOERROR", 12.34, ("10.9.8.7",), tcp_retry=True)
    assert r.answered and r.responded


def test_to_json_keys_are_the_contract() -> None:
    r = QueryResult(DnsServer("127.0.0.1", 5353), "a.example", "AAAA", 2, "NXDOMAIN", 1.5, ())
    assert r.to_json() == {
        "server": "127.0.0.1:5353",
        "name": "a.example",
        "type": "AAAA",
        "status": "NXDOMAIN",
        "latency_ms": 1.5,
        "answers": [],
        "attempt": 2,
    }


def test_make_message_recursion_desired_no_edns() -> None:
    msg = engine.make_message("kubernetes.default.svc.cluster.local", "A")
    assert msg.flags & dns.flags.RD and msg.edns < 0
    assert msg.question[0].name.to_text() == "kubernetes.default.svc.cluster.local."


@pytest.mark.parametrize(("name", "rdtype"), [("a..b", "A"), ("example.com", "NOTATYPE")])
def test_bad_query_is_an_error_result_without_network(name: str, rdtype: str) -> None:
    # Never reaches a socket: the message cannot even be built.
    (r,) = engine.run_queries_sync([Query(DnsServer("192.0.2.1"), name, rdtype)], timeout=1.0)
    assert r.status == "ERROR" and r.error


def test_run_queries_rejects_nonpositive_timeout() -> None:
    with pytest.raises(ValueError):
        asyncio.run(engine.run_queries([], timeout=0))


def test_run_queries_empty() -> None:
    assert engine.run_queries_sync([], timeout=1.0) == []


def test_socket_budget_leaves_a_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _what: (1024, 4096))
    assert engine.socket_budget() == 768
    monkeypatch.setattr(resource, "getrlimit", lambda _what: (100, 4096))
    assert engine.socket_budget() == 64
    monkeypatch.setattr(resource, "getrlimit", lambda _what: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert engine.socket_budget() == 65536


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive stamps are read on Linux only")
def test_arrival_ns_reads_the_kernel_stamp() -> None:
    stamp = struct.pack("@ll", 1_700_000_000, 123_456_789)
    anc = [(socket.SOL_SOCKET, 35, stamp)]
    assert engine.arrival_ns(anc) == 1_700_000_000_123_456_789
    assert engine.arrival_ns([]) is None
    assert engine.arrival_ns([(socket.SOL_SOCKET, 99, stamp)]) is None  # some other message
    assert engine.arrival_ns([(socket.SOL_SOCKET, 35, b"\x00")]) is None  # cut short
