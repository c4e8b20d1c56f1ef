"""The DNS engine against real servers on loopback: statuses, TC retry, concurrency."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from aksdns.commands import DnsServer
from tests.dnsservers import free_port
from workers.evidence.dns import Query, QueryResult
from workers.probes.dns import run_queries_sync

if TYPE_CHECKING:  # fixtures come from tests/conftest.py's pytest_plugins
    from tests.dnsservers import FakeDnsServer, RealServer

DEFAULT_A = "10.53.0.1"  # tests.dnsservers.DEFAULT_A

Factory = Callable[..., "FakeDnsServer"]


def ask(
    server: DnsServer, name: str = "x.example", rdtype: str = "A", *, timeout: float = 1.0, tcp: bool = False
) -> QueryResult:
    (result,) = run_queries_sync([Query(server, name, rdtype, tcp=tcp)], timeout=timeout)
    return result


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("answer", "NOERROR"),
        ("servfail", "SERVFAIL"),
        ("nxdomain", "NXDOMAIN"),
        ("refused", "REFUSED"),
        ("silent", "TIMEOUT"),
    ],
)
def test_status_per_behaviour(dns_server_factory: Factory, mode: str, status: str) -> None:
    fake = dns_server_factory(mode)
    r = ask(fake.server, timeout=0.5)
    assert r.status == status
    assert r.answers == ((DEFAULT_A,) if mode == "answer" else ())
    assert fake.udp_queries == 1 and fake.tcp_queries == 0


def test_late_answer_within_timeout_is_an_answer_with_its_latency(dns_server_factory: Factory) -> None:
    fake = dns_server_factory("late", delay=0.3)
    r = ask(fake.server, timeout=2.0)
    assert r.status == "NOERROR" and r.answers == (DEFAULT_A,)
    assert r.latency_ms >= 300.0  # it cannot have come back before the server sent it


def test_answer_later_than_timeout_is_timeout(dns_server_factory: Factory) -> None:
    fake = dns_server_factory("late", delay=1.5)
    r = ask(fake.server, timeout=0.3)
    assert r.status == "TIMEOUT" and r.error == "no answer within the timeout"


def test_truncated_answer_is_retried_over_tcp(truncating_server: FakeDnsServer) -> None:
    r = ask(truncating_server.server)
    assert (r.status, r.answers, r.tcp_retry) == ("NOERROR", (DEFAULT_A,), True)
    assert (truncating_server.udp_queries, truncating_server.tcp_queries) == (1, 1)


def test_tcp_retry_stays_inside_the_same_budget(dns_server_factory: Factory) -> None:
    # UDP's TC answer comes at 0.4 s and TCP's would come at 0.8 s: past the 0.6 s budget.
    fake = dns_server_factory("truncate", delay=0.4)
    r = ask(fake.server, timeout=0.6)
    assert (r.status, r.tcp_retry) == ("TIMEOUT", True)
    assert fake.tcp_queries == 1
    assert r.latency_ms < 0.6 * 1000 * 1.5  # one budget (generous), not UDP's plus TCP's


def test_tcp_flag_skips_udp(answering_server: FakeDnsServer) -> None:
    r = ask(answering_server.server, tcp=True)
    assert r.status == "NOERROR" and not r.tcp_retry
    assert (answering_server.udp_queries, answering_server.tcp_queries) == (0, 1)


def test_closed_port_is_an_error_not_a_timeout(closed_port: DnsServer) -> None:
    udp, tcp = run_queries_sync(
        [Query(closed_port, "x.example"), Query(closed_port, "x.example", tcp=True)], timeout=2.0
    )
    assert (udp.status, udp.error) == ("ERROR", "connection refused")
    assert (tcp.status, tcp.error) == ("ERROR", "connection refused")


def test_total_time_is_the_slowest_server_not_the_sum(
    dns_server_factory: Factory, record_property: Callable[[str, object], None]
) -> None:
    timeout = 1.0
    silent = [dns_server_factory("silent") for _ in range(6)]
    late = dns_server_factory("late", delay=0.3)
    fast = dns_server_factory("answer")
    queries = [Query(s.server, "x.example") for s in (*silent, late, fast)]
    start = time.monotonic()
    results = run_queries_sync(queries, timeout=timeout)
    wall = time.monotonic() - start
    record_property("dig_wall_s", round(wall, 3))
    assert [r.status for r in results] == ["TIMEOUT"] * 6 + ["NOERROR", "NOERROR"]
    sequential = sum(r.latency_ms for r in results) / 1000.0
    record_property("dig_sequential_sum_s", round(sequential, 3))
    # Sequentially these would take > 6 s; concurrently about one timeout.  Generous bound:
    # half the sum the sequential loop would need (3 s) against an expected ~1 s.
    assert wall < sequential / 2
    assert wall >= timeout  # the slowest (silent) servers were really waited for


def test_results_come_back_in_input_order(dns_server_factory: Factory) -> None:
    late = dns_server_factory("late", delay=0.2)
    fast = dns_server_factory("answer")
    servfail = dns_server_factory("servfail")
    queries = [
        Query(late.server, "a.example", attempt=1),
        Query(fast.server, "b.example", attempt=2),
        Query(servfail.server, "c.example", "AAAA", attempt=3),
    ]
    results = run_queries_sync(queries, timeout=1.0)
    assert [(r.server, r.name, r.rdtype, r.attempt) for r in results] == [
        (q.server, q.name, q.rdtype, q.attempt) for q in queries
    ]
    assert [r.status for r in results] == ["NOERROR", "NOERROR", "SERVFAIL"]


def test_concurrency_bound_still_answers_everything(answering_server: FakeDnsServer) -> None:
    queries = [Query(answering_server.server, f"n{i}.example") for i in range(50)]
    results = run_queries_sync(queries, timeout=2.0, concurrency=4)
    assert all(r.status == "NOERROR" for r in results)
    assert answering_server.udp_queries == 50


# ---------------------------------------------------------------- Debian's bind9 and dnsmasq


@pytest.mark.parametrize(
    ("name", "rdtype", "status", "answers"),
    [
        ("www.aksdns.test", "A", "NOERROR", ("10.53.1.10",)),
        ("multi.aksdns.test", "A", "NOERROR", ("10.53.1.11", "10.53.1.12", "10.53.1.13")),
        ("v6.aksdns.test", "AAAA", "NOERROR", ("fd53:1::10",)),
        ("alias.aksdns.test", "A", "NOERROR", ("CNAME www.aksdns.test.", "10.53.1.10")),
        ("www.aksdns.test", "MX", "NOERROR", ()),
        ("nope.aksdns.test", "A", "NXDOMAIN", ()),
        ("outside.example", "A", "REFUSED", ()),  # recursion off: bind9 never leaves its zone
    ],
)
def test_bind9(bind9_server: RealServer, name: str, rdtype: str, status: str, answers: tuple[str, ...]) -> None:
    r = ask(bind9_server.server, name, rdtype, timeout=2.0)
    assert r.status == status
    assert sorted(r.answers) == sorted(answers)


def test_bind9_real_truncation_goes_to_tcp(bind9_server: RealServer) -> None:
    r = ask(bind9_server.server, "big.aksdns.test", "TXT", timeout=2.0)
    assert r.status == "NOERROR" and r.tcp_retry and len(r.answers) == 6


def test_dnsmasq_forwards_to_bind9(dnsmasq_forwarder: RealServer) -> None:
    www = ask(dnsmasq_forwarder.server, "www.aksdns.test", timeout=2.0)
    outside = ask(dnsmasq_forwarder.server, "outside.example", timeout=2.0)
    assert (www.status, www.answers) == ("NOERROR", ("10.53.1.10",))
    assert outside.status == "REFUSED"  # no upstream for anything else: nothing leaves loopback


def test_truncated_answer_with_tcp_blocked_says_so(dns_server_factory: Factory) -> None:
    fake = dns_server_factory("truncate-notcp")
    r = ask(fake.server, timeout=2.0)
    assert (r.status, r.tcp_retry) == ("ERROR", True)
    assert r.error == "TCP retry after truncation: connection refused"


def test_tcp_only_query_to_a_silent_server_times_out(silent_server: FakeDnsServer) -> None:
    r = ask(silent_server.server, tcp=True, timeout=0.5)
    assert (r.status, r.error) == ("TIMEOUT", "no answer within the timeout")
    assert silent_server.tcp_queries == 1 and silent_server.udp_queries == 0


def test_ipv6_loopback_udp_tcp_and_refused(dns_server_factory: Factory) -> None:
    try:
        fake = dns_server_factory("truncate", host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    closed = DnsServer("::1", free_port("::1"))
    good, refused = run_queries_sync([Query(fake.server, "x.example", "AAAA"), Query(closed, "x.example")], timeout=2.0)
    assert (good.status, good.answers, good.tcp_retry) == ("NOERROR", ("fd53::1",), True)
    assert str(good.server) == f"[::1]:{fake.server.port}"
    assert (refused.status, refused.error) == ("ERROR", "connection refused")
