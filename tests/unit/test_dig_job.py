"""The dig job with a stand-in engine: queries built, report shaped, JSON contract kept."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from aksdns.commands import DigCommand, DnsServer
from aksdns.errors import AksDnsError, UsageError
from workers.evidence.dns import Query, QueryResult
from workers.jobenv import JobEnv
from workers.jobs import dig
from workers.report import Status, StatusLine, Table

A = DnsServer("10.0.0.10")
B = DnsServer("127.0.0.1", 5353)


class FakeEngine:
    """Answers per server from a script, records what it was asked."""

    def __init__(self, script: dict[DnsServer, list[str]] | None = None) -> None:
        self.script = script or {}
        self.asked: list[Query] = []
        self.timeout: float | None = None

    def __call__(self, queries: Sequence[Query], *, timeout: float, concurrency: int = 512) -> list[QueryResult]:
        self.asked = list(queries)
        self.timeout = timeout
        self.concurrency = concurrency
        out = []
        for q in queries:
            statuses = self.script.get(q.server, ["NOERROR"])
            status = statuses[(q.attempt - 1) % len(statuses)]
            answers = ("10.1.2.3",) if status == "NOERROR" else ()
            ms = timeout * 1000 if status == "TIMEOUT" else 1.0
            out.append(
                QueryResult(
                    q.server,
                    q.name,
                    q.rdtype,
                    q.attempt,
                    status,
                    ms,
                    answers,
                    error="no answer within the timeout" if status == "TIMEOUT" else None,
                )
            )
        return out


def env(tmp_path: Path, text: str | None = "nameserver 10.0.0.10\nnameserver 10.0.0.11\n") -> JobEnv:
    path = tmp_path / "resolv.conf"
    if text is not None:
        path.write_text(text)
    return JobEnv(cluster="test", resolv_conf=path)


def test_every_server_name_type_repeat(tmp_path: Path) -> None:
    engine = FakeEngine()
    cmd = DigCommand(
        servers=(A, B), names=("a.example", "b.example"), types=("A", "AAAA"), repeat=3, timeout=1.5, tcp=True
    )
    dig.execute(cmd, env(tmp_path), runner=engine)
    assert len(engine.asked) == 2 * 2 * 2 * 3
    assert engine.timeout == 1.5
    assert engine.concurrency == 24  # all in flight: fewer queries than the socket budget
    assert all(q.tcp for q in engine.asked)
    assert {q.attempt for q in engine.asked} == {1, 2, 3}
    assert engine.asked[0] == Query(A, "a.example", "A", 1, True)


def test_no_server_means_resolv_conf(tmp_path: Path) -> None:
    engine = FakeEngine()
    dig.execute(DigCommand(names=("x.example",)), env(tmp_path), runner=engine)
    assert [q.server for q in engine.asked] == [DnsServer("10.0.0.10"), DnsServer("10.0.0.11")]


def test_resolv_conf_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(AksDnsError, match="cannot read"):
        dig.execute(DigCommand(names=("x.example",)), env(tmp_path, None), runner=FakeEngine())
    with pytest.raises(AksDnsError, match="no nameserver"):
        dig.execute(DigCommand(names=("x.example",)), env(tmp_path, "search x\n"), runner=FakeEngine())


def test_no_name_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        dig.execute(DigCommand(servers=(A,)), env(tmp_path), runner=FakeEngine())


def test_report_shape_and_json_contract(tmp_path: Path) -> None:
    progress: list[str] = []
    e = env(tmp_path)
    e.progress = progress.append
    report = dig.execute(DigCommand(servers=(A, B), names=("x.example",)), e, runner=FakeEngine({B: ["TIMEOUT"]}))
    assert progress and "2 server(s)" in progress[0]
    assert report.title == "dig x.example A"
    assert report.status is Status.FAIL
    assert report.summary.startswith("2 queries to 2 servers in ") and "1 answered, 1 failed" in report.summary
    lines = [s for s in report.sections if isinstance(s, StatusLine)]
    assert [(s.label, s.status) for s in lines] == [("10.0.0.10", Status.OK), ("127.0.0.1:5353", Status.FAIL)]
    (table,) = [s for s in report.sections if isinstance(s, Table)]
    assert table.columns == ("server", "name", "type", "status", "ms", "answers")
    assert table.rows[1][3] == "TIMEOUT" and table.rows[1][5] == "no answer within the timeout"
    data = json.loads(json.dumps(report.data))
    assert set(data) == {"results", "summary"}
    assert data["results"][0] == {
        "server": "10.0.0.10",
        "name": "x.example",
        "type": "A",
        "status": "NOERROR",
        "latency_ms": 1.0,
        "answers": ["10.1.2.3"],
        "attempt": 1,
    }
    assert data["summary"]["servers"][1]["statuses"] == {"TIMEOUT": 1}
    assert "elapsed_ms" in data["summary"]
    assert report.attachments == []


def test_repeat_shows_attempts_and_intermittent_loss(tmp_path: Path) -> None:
    report = dig.execute(
        DigCommand(servers=(A,), names=("x.example",), repeat=4),
        env(tmp_path),
        runner=FakeEngine({A: ["NOERROR", "TIMEOUT"]}),
    )
    (table,) = [s for s in report.sections if isinstance(s, Table)]
    assert "#" in table.columns
    assert [row[3] for row in table.rows] == ["1", "2", "3", "4"]
    assert [r["status"] for r in report.data["results"]] == ["NOERROR", "TIMEOUT", "NOERROR", "TIMEOUT"]
    assert [r["attempt"] for r in report.data["results"]] == [1, 2, 3, 4]
    assert report.status is Status.WARN
    assert any("Intermittent: 10.0.0.10" in getattr(s, "text", "") for s in report.sections)


def test_a_dead_server_is_not_called_intermittent(tmp_path: Path) -> None:
    report = dig.execute(
        DigCommand(servers=(A, B), names=("x.example",), repeat=2),
        env(tmp_path),
        runner=FakeEngine({B: ["TIMEOUT"]}),
    )
    assert not any("Intermittent" in getattr(s, "text", "") for s in report.sections)


def test_long_lists_get_a_csv_with_every_result(tmp_path: Path) -> None:
    names = tuple(f"n{i}.example" for i in range(dig.CSV_AFTER_ROWS + 1))
    report = dig.execute(DigCommand(servers=(A,), names=names), env(tmp_path), runner=FakeEngine())
    (att,) = report.attachments
    assert att.filename.endswith(".csv") and att.filetype == "csv"
    rows = list(csv.DictReader(io.StringIO(att.content.decode())))
    assert len(rows) == len(names) == len(report.data["results"])
    assert rows[0]["answers"] == "10.1.2.3" and rows[0]["attempt"] == "1"


def test_slow_answers_are_marked() -> None:
    slow = QueryResult(A, "x.example", "A", 1, "NOERROR", 5000.0, ("10.1.2.3",))
    late_timeout = QueryResult(A, "x.example", "A", 2, "TIMEOUT", 6000.0, ())
    tc = QueryResult(A, "x.example", "A", 3, "NOERROR", 3.0, ("10.1.2.3",), tcp_retry=True)
    report = dig.build_report(DigCommand(servers=(A,), names=("x.example",), repeat=3), [slow, late_timeout, tc], 6.0)
    (table,) = [s for s in report.sections if isinstance(s, Table)]
    assert table.rows[0][5] == "5000.0 ⚠️"
    assert table.rows[1][5] == "6000.0"  # a TIMEOUT is a failure, not a slow answer
    assert table.rows[2][4] == "NOERROR (TC→TCP)"
    assert "1 slow (≥ 5 s)" in report.summary


def test_disagreeing_servers_get_a_line(tmp_path: Path) -> None:
    report = dig.execute(
        DigCommand(servers=(A, B), names=("x.example",)), env(tmp_path), runner=FakeEngine({B: ["NXDOMAIN"]})
    )
    assert report.status is Status.WARN
    assert any(isinstance(s, StatusLine) and s.label == "servers disagree" for s in report.sections)


def test_resolv_conf_source_is_said_and_ignored_nameservers_flagged(tmp_path: Path) -> None:
    text = "".join(f"nameserver 10.0.0.{i}\n" for i in range(1, 5))
    report = dig.execute(DigCommand(names=("x.example",)), env(tmp_path, text), runner=FakeEngine())
    assert "resolv.conf" in getattr(report.sections[0], "text", "")
    flagged = [s for s in report.sections if isinstance(s, StatusLine) and s.label == "resolv.conf"]
    assert len(flagged) == 1 and "10.0.0.4" in flagged[0].detail and flagged[0].status is Status.WARN
    assert len(report.data["results"]) == 3


def test_title_stays_short() -> None:
    cmd = DigCommand(servers=(A,), names=tuple(f"n{i}.example" for i in range(5)), types=("A", "AAAA"))
    assert dig.report_title(cmd) == "dig n0.example n1.example n2.example (+2 more) A AAAA"
