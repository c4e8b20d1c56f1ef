"""Authorization: read-only for anyone in allowed channels, privileged for named users/groups."""

from __future__ import annotations

import json
import logging

import pytest

from aksdns.commands import CaptureCommand, CheckCommand, DigCommand
from bot.authz import GroupDirectory, Policy, authorize, decide

DIG = DigCommand(names=("a.b",))
CAPTURE = CaptureCommand(coredns=True)


@pytest.mark.parametrize(
    ("policy", "user", "channel", "command", "groups", "allowed"),
    [
        (Policy(), "U1", "C1", DIG, frozenset(), True),
        (Policy(), "U1", "C1", CheckCommand(), frozenset(), True),
        (Policy(), "U1", "C1", CAPTURE, frozenset(), False),
        (Policy(privileged_users=frozenset({"U1"})), "U1", "C1", CAPTURE, frozenset(), True),
        (Policy(privileged_users=frozenset({"U2"})), "U1", "C1", CAPTURE, frozenset(), False),
        (Policy(privileged_groups=frozenset({"S1"})), "U1", "C1", CAPTURE, frozenset({"S1"}), True),
        (Policy(privileged_groups=frozenset({"S1"})), "U1", "C1", CAPTURE, frozenset({"S2"}), False),
        (Policy(allowed_channels=frozenset({"C9"})), "U1", "C1", DIG, frozenset(), False),
        (Policy(allowed_channels=frozenset({"C9"})), "U1", "C9", DIG, frozenset(), True),
        # a privileged user outside the allowed channels is still refused there
        (Policy(frozenset({"C9"}), frozenset({"U1"})), "U1", "C1", CAPTURE, frozenset(), False),
    ],
)
def test_decide(policy: Policy, user: str, channel: str, command: object, groups: frozenset[str],
                allowed: bool) -> None:
    decision = decide(policy, user=user, channel=channel, command=command, groups_of_user=groups)  # type: ignore[arg-type]
    assert decision.allowed is allowed
    assert decision.reason


def test_groups_are_looked_up_once_and_only_when_needed() -> None:
    calls: list[str] = []

    def members(group: str) -> list[str]:
        calls.append(group)
        return ["U1"]

    directory = GroupDirectory(members, frozenset({"S1"}))
    policy = Policy(privileged_groups=frozenset({"S1"}))
    assert authorize(policy, directory, user="U2", channel="C", command=DIG).allowed
    assert calls == []  # read-only: no lookup
    assert authorize(policy, directory, user="U1", channel="C", command=CAPTURE).allowed
    assert not authorize(policy, directory, user="U2", channel="C", command=CAPTURE).allowed
    assert calls == ["S1"]  # cached


def test_failed_group_lookup_denies() -> None:
    def broken(_group: str) -> list[str]:
        raise TimeoutError

    directory = GroupDirectory(broken, frozenset({"S1"}))
    assert not authorize(Policy(privileged_groups=frozenset({"S1"})), directory, user="U1", channel="C",
                         command=CAPTURE).allowed


def test_every_decision_is_logged_with_user_channel_command(caplog: pytest.LogCaptureFixture) -> None:
    from aksdns.logs import JsonFormatter

    caplog.set_level(logging.INFO, logger="bot.authz")
    authorize(Policy(), None, user="U7", channel="C7", command=CAPTURE)
    record = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert (record["user"], record["channel"], record["command"], record["allowed"]) == ("U7", "C7", "capture", False)
