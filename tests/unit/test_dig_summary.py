from __future__ import annotations

import pytest

from aksdns.commands import DnsServer
from workers.analysis.dig_summary import server_status, summarize, summarize_server
from workers.analysis.figures import SLOW_MS, format_ms, percentile
from workers.evidence.dns import QueryResult
from workers.report import Status

A = DnsServer("10.0.0.10")
B = DnsServer("10.0.0.11", 5353)


def res(server: DnsServer, status: str, ms: float, name: str = "x.example", attempt: int = 1) -> QueryResult:
    answers = ("10.1.1.1",) if status == "NOERROR" else ()
    return QueryResult(server, name, "A", attempt, status, ms, answers)


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 95, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([4.0, 3.0, 2.0, 1.0], 100, 4.0),
        ([float(i) for i in range(1, 101)], 95, 95.0),
        ([float(i) for i in range(1, 21)], 95, 19.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], pct: float, expected: float | None) -> None:
    assert percentile(values, pct) == expected


def test_percentile_rejects_bad_pct() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 0)


@pytest.mark.parametrize(
    ("answered", "failed", "slow", "status"),
    [(5, 0, 0, Status.OK), (4, 1, 0, Status.WARN), (5, 0, 1, Status.WARN), (0, 5, 0, Status.FAIL)],
)
def test_server_status(answered: int, failed: int, slow: int, status: Status) -> None:
    assert server_status(answered, failed, slow) is status


def test_counts_and_latency_ignore_timeouts() -> None:
    s = summarize_server(
        "10.0.0.10",
        [res(A, "NOERROR", 1.0), res(A, "NXDOMAIN", 3.0), res(A, "SERVFAIL", 2.0), res(A, "TIMEOUT", 2000.0)],
    )
    assert (s.queries, s.answered, s.failed) == (4, 2, 2)
    assert s.statuses == {"NOERROR": 1, "NXDOMAIN": 1, "SERVFAIL": 1, "TIMEOUT": 1}
    # The timeout's 2000 ms is how long we waited, not a round trip: it stays out of the percentiles.
    assert (s.p50_ms, s.p95_ms, s.max_ms) == (2.0, 3.0, 3.0)
    assert s.status is Status.WARN
    assert "2/4 answered" in s.line() and "1 SERVFAIL" in s.line() and "1 TIMEOUT" in s.line()


def test_all_timeouts_have_no_latency() -> None:
    s = summarize_server("d", [res(A, "TIMEOUT", 2000.0), res(A, "ERROR", 0.1)])
    assert (s.p50_ms, s.max_ms, s.status) == (None, None, Status.FAIL)
    assert "no response" in s.line()


def test_slow_mark_at_or_above_five_seconds() -> None:
    s = summarize_server("a", [res(A, "NOERROR", SLOW_MS - 0.1), res(A, "NOERROR", SLOW_MS), res(A, "NOERROR", 7000.0)])
    assert s.slow == 2 and s.status is Status.WARN
    assert "⚠️ 2 at or above 5 s" in s.line()
    assert "max 7.00 s" in s.line()


def test_summary_per_server_in_first_seen_order() -> None:
    results = [
        res(B, "NOERROR", 1.0),
        res(A, "TIMEOUT", 2000.0),
        res(B, "NOERROR", 2.0),
        res(A, "TIMEOUT", 2000.0),
    ]
    summary = summarize(results)
    assert [s.server for s in summary.servers] == ["10.0.0.11:5353", "10.0.0.10"]
    assert (summary.queries, summary.answered, summary.failed) == (4, 2, 2)
    assert summary.status is Status.FAIL  # one server gave nothing at all


def test_all_good_is_ok_and_json_shape() -> None:
    summary = summarize([res(A, "NOERROR", 1.0), res(B, "NOERROR", 1.5)])
    assert summary.status is Status.OK
    data = summary.to_json()
    assert set(data) == {"queries", "answered", "failed", "slow", "status", "servers", "disagreements"}
    assert set(data["servers"][0]) == {
        "server",
        "queries",
        "answered",
        "failed",
        "statuses",
        "p50_ms",
        "p95_ms",
        "max_ms",
        "slow",
        "status",
    }
    assert data["status"] == "ok"


def test_disagreement_between_servers_warns() -> None:
    summary = summarize([res(A, "NOERROR", 1.0), res(B, "NXDOMAIN", 1.0)])
    assert summary.status is Status.WARN
    (d,) = summary.disagreements
    assert d.statuses == {"NOERROR": ("10.0.0.10",), "NXDOMAIN": ("10.0.0.11:5353",)}
    assert d.line() == "x.example A: NOERROR from 10.0.0.10; NXDOMAIN from 10.0.0.11:5353"


def test_consistent_nxdomain_is_not_a_disagreement() -> None:
    summary = summarize([res(A, "NXDOMAIN", 1.0), res(B, "NXDOMAIN", 1.0), res(B, "TIMEOUT", 2000.0)])
    assert summary.disagreements == ()


def test_empty() -> None:
    summary = summarize([])
    assert (summary.queries, summary.servers, summary.status) == (0, (), Status.OK)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.047, "0.05 ms"), (9.994, "9.99 ms"), (12.34, "12.3 ms"), (999.9, "999.9 ms"), (5000.0, "5.00 s")],
)
def test_format_ms(value: float, text: str) -> None:
    assert format_ms(value) == text
