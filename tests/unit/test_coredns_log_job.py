"""`coredns-log`: the grammar, the confirmation, the order of the revert and the change, Slack's typed `--yes`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aksdns import grammar
from aksdns.commands import CorednsLogCommand, HealthCommand, ObjectRef
from aksdns.errors import AksDnsError, UsageError
from aksdns.verbs import spec_of
from bot.app import interpret
from workers.jobenv import JobEnv
from workers.jobs import coredns_log
from workers.probes import coredns_custom, kube


def test_grammar() -> None:
    assert grammar.parse("health") == HealthCommand()
    assert grammar.parse("health --minutes 30 --pod default/web-0") == HealthCommand(
        minutes=30, pods=(ObjectRef("default", "web-0"),))
    assert grammar.parse("coredns-log on --minutes 5") == CorednsLogCommand(state="on", minutes=5)
    assert grammar.parse("coredns-log off") == CorednsLogCommand(state="off")
    for bad in ("coredns-log", "coredns-log maybe", "coredns-log on --minutes 61", "health --minutes 0",
                "health --minutes 181"):
        with pytest.raises(UsageError):
            grammar.parse(bad)
    assert spec_of(CorednsLogCommand()).privileged and not spec_of(HealthCommand()).privileged
    cmd = CorednsLogCommand(state="on", minutes=7, confirmed=True)
    assert grammar.command_from_dict(cmd.to_dict()) == cmd  # what the Start button carries survives the grammar


def test_typed_yes_is_ignored_in_slack() -> None:
    step = interpret("coredns-log on --minutes 3 --yes", prefix="/aksdns")
    assert step.command == CorednsLogCommand(state="on", minutes=3, confirmed=False)


def test_unconfirmed_on_asks_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "connect", lambda *_a: pytest.fail("no cluster call before Start"))
    report = coredns_log.execute(CorednsLogCommand(state="on", minutes=4), JobEnv(cluster="c"))
    ids = {b.action_id: b for b in report.buttons}
    assert set(ids) == {"aksdns_confirm", "aksdns_cancel"}
    assert json.loads(ids["aksdns_confirm"].value)["args"]["confirmed"] is True


def test_the_revert_is_scheduled_before_the_change(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(kube, "connect", lambda *_a: object())
    monkeypatch.setattr(coredns_custom, "other_keys", lambda _c: {"hosts.override": "hosts {\n}\n"})
    monkeypatch.setattr(coredns_custom, "read_key", lambda _c: None)
    monkeypatch.setattr(coredns_custom, "put_key", lambda _c, text: calls.append(f"put {text!r}"))
    audits: list[tuple[str, bool, str]] = []

    def schedule(command: Any, delay_s: float) -> str:
        calls.append(f"schedule {command.state} in {delay_s:g}")
        return "job-1"

    env = JobEnv(cluster="c", schedule=schedule, audit=lambda *a: audits.append(a), requested_by="U1", job_id="j")
    report = coredns_log.execute(CorednsLogCommand(state="on", minutes=2, confirmed=True), env)
    assert calls[0] == "schedule off in 120" and calls[1].startswith("put '# added by aksdns coredns-log for U1")
    assert "\\nlog\\n" in calls[1]
    assert audits == [("coredns-log", True, "log plugin on for 2 min; revert job job-1")]
    assert report.data["revert_job"] == "job-1"


def test_on_refuses_without_a_scheduler_or_when_log_is_already_on(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AksDnsError, match="needs a worker"):
        coredns_log.execute(CorednsLogCommand(state="on", confirmed=True), JobEnv(cluster="c"))
    monkeypatch.setattr(kube, "connect", lambda *_a: object())
    monkeypatch.setattr(coredns_custom, "other_keys", lambda _c: {"mine.override": "log\n"})
    env = JobEnv(cluster="c", schedule=lambda *_a: pytest.fail("nothing scheduled"))
    with pytest.raises(AksDnsError, match="already turns `log` on"):
        coredns_log.execute(CorednsLogCommand(state="on", confirmed=True), env)
