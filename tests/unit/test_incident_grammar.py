"""The incident workflow's commands in the grammar: watch, again, use, clusters, audit; and watch's schedule."""

from __future__ import annotations

import pytest

from aksdns import grammar
from aksdns.commands import AuditCommand, UseCommand, WatchCommand
from aksdns.errors import UsageError
from aksdns.spans import since_epoch
from aksdns.watches import new_watch, run_job_id, watch_id_of
from workers.jobs.watch import next_run_at


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("watch check microsoft.com --every 5 --for 2",
         WatchCommand(target="check microsoft.com", every_s=300, for_s=7200)),
        ('watch "check --repeat 3 --cluster eu" --every 90s --for 30m',
         WatchCommand(cluster="eu", target="check --repeat 3", every_s=90, for_s=1800)),
        ("use eu", UseCommand(target="eu")),
        ("audit --user u0abc --since 2h", AuditCommand(user="U0ABC", since="2h")),
    ],
)
def test_parse_and_rebuild(text: str, expected: object) -> None:
    command = grammar.parse(text)
    assert command == expected
    assert grammar.command_from_dict(command.to_dict()) == command


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('watch "capture --coredns"', "only read-only commands"),
        ("watch handoff", "cannot be watched"),
        ("watch", "watch needs a command"),
        ("watch check --every 10 --for 5m", "nothing would repeat"),
        ("watch check --every 1 --for 24", "at most 144"),
        ("watch check --every 0", "between 1m and 1h"),
        ('watch "check --cluster a" --cluster b', "give the cluster once"),
        ("audit --user bob", "member ID"),
        ("audit --since yesterday", "--since must be"),
        ("again check dig", "at most one"),
    ],
)
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        grammar.parse(text)


def test_a_forged_watch_target_is_parsed_again() -> None:
    with pytest.raises(UsageError):
        grammar.command_from_dict({"verb": "watch", "args": {"target": "dig x.test --repeat 100000"}})


def test_watch_schedule() -> None:
    w = new_watch("w1", channel="C", thread_ts="1", status_ts="1", cluster="c", user="U", target="check",
                  every_s=300, for_s=900, now=1000.0)
    assert w.total_runs == 4
    assert next_run_at(w, now=1000.0) == 1000.0
    w1 = type(w)(**{**w.__dict__, "runs": 1})
    assert next_run_at(w1, now=1001.0) == 1300.0
    w4 = type(w)(**{**w.__dict__, "runs": 4})
    assert next_run_at(w4, now=1901.0) is None
    assert watch_id_of(run_job_id("w1", 3)) == "w1" and watch_id_of("w1") == "w1"


def test_since() -> None:
    assert since_epoch("2h", now=10_000.0) == 2800.0
    assert since_epoch("2024-05-01") == 1714521600.0
