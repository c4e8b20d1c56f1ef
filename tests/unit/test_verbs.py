"""The verb registry and commands rebuilt from data (button values, job specs).

Data passes exactly the checks typed text passes: each forged value below once went straight into a
queued job (issue 10, item 1) and must now be refused with one short line, or mean what it would
mean typed.
"""

from __future__ import annotations

from typing import Any

import pytest

from aksdns import grammar
from aksdns.commands import CaptureCommand, CheckCommand, DigCommand, DnsServer, Verb
from aksdns.errors import UsageError
from aksdns.grammar import command_from_dict, command_words
from aksdns.help import help_text
from aksdns.verbs import REGISTRY, spec_of


def test_every_verb_has_one_entry() -> None:
    assert set(REGISTRY) == set(Verb)
    for verb, spec in REGISTRY.items():
        assert spec.verb is verb and spec.command.verb is verb
        assert spec.usage.startswith(verb.value) and spec.summary and spec.emoji
        for flag in spec.flags:  # every flag sets a real field of its command
            spec.default(flag.field)


def test_available_means_has_a_job() -> None:
    assert {v.value for v, s in REGISTRY.items() if s.available} >= {"dig", "check", "analyze"}
    assert all(s.job is None for s in REGISTRY.values() if not s.available)
    assert spec_of(Verb.CAPTURE).privileged and not spec_of(Verb.DIG).privileged


def test_usage_and_help_come_from_the_registry() -> None:
    assert spec_of(Verb.DIG).usage == "dig [@SERVER[:PORT]]... NAME... [--type T]... [--repeat N] [--timeout S] [--tcp]"
    assert spec_of(Verb.CHECK).usage == "check [NAME...] [--repeat N] [--nodes N|all]"
    text = help_text("dig")
    assert "`--repeat N` — ask each question N times (1–50; default 1)" in text
    assert "`--timeout S`" in text and "default 2.0" in text


@pytest.mark.parametrize(
    "text",
    [
        "dig @[::1]:5353 a.b --type AAAA --type MX --repeat 3 --timeout 0.5 --tcp --cluster eu",
        "check microsoft.com --repeat 5 --nodes all",
        "check --nodes 3",
        "capture --pod default/aks-test --pod kube-system/x --duration 90s --filter 'udp port 53 and (host 10.0.0.1)'",
        "capture",
        "analyze a.pcap b.pcapng --slow 2",
        "ipam --node aks-nodepool1-1-vmss000000",
        "service default/web --port 8080",
        "help dig",
        "handoff --cluster eu",
    ],
)
def test_commands_round_trip_through_their_words(text: str) -> None:
    command = grammar.parse(text)
    assert command_from_dict(command.to_dict()) == command
    assert grammar.parse_tokens(command_words(command.to_dict())) == command


def _dig(**args: Any) -> dict[str, Any]:
    return {"verb": "dig", "args": {"servers": [{"host": "127.0.0.1", "port": 16354}], "names": ["x.test"], **args}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_dig(repeat=100000, timeout=0.2), "between 1 and 50"),
        (_dig(names=["$(id);rm -rf /"]), "forbidden characters"),
        (_dig(names=[f"n{i}.example" for i in range(5000)]), "longer than"),
        (_dig(names=[f"n{i}.example" for i in range(30)]), "at most 20 names"),
        (_dig(types=["AXFR"]), "is not one of"),
        (_dig(types=["ANY"]), "is not one of"),
        (_dig(types="A"), "takes a list"),
        (_dig(repeat=True), "single value"),
        (_dig(repeat={"x": 1}), "single value"),
        (_dig(tcp="yes"), "switch"),
        (_dig(timeout=float("nan")), "number of seconds"),
        (_dig(names=["--help"]), "may not start with"),
        (_dig(names=["a.b", "--repeat", "50"]), "may not start with"),
        (_dig(servers=[{"host": "127.0.0.1;reboot", "port": 53}]), "forbidden characters"),
        (_dig(servers=[{"host": "127.0.0.1", "port": 99999}]), "between 1 and 65535"),
        (_dig(servers="10.0.0.1"), "must be a list"),
        (_dig(evil=1), "unknown field"),
        ({"verb": "check", "args": {"repeat": 1000000}}, "between 1 and 50"),
        ({"verb": "check", "args": {"nodes": -1}}, "whole number"),
        ({"verb": "analyze", "args": {"slow_s": -1}}, "between"),
        ({"verb": "analyze", "args": {"files": ["../../etc/passwd"]}}, "not an acceptable file name"),
        ({"verb": "capture", "args": {"duration_s": 86400}}, "between 5s and 10m"),
        ({"verb": "capture", "args": {"filter": "port 53; reboot"}}, "forbidden character"),
        ({"verb": "capture", "args": {"pods": [{"namespace": "Default", "name": "x"}]}}, "namespace"),
        ({"verb": "service", "args": {"ref": "default/web"}}, "must be {namespace, name}"),
        ({"verb": "rm", "args": {}}, "unknown command"),
        ({"verb": "dig", "args": "x"}, "must be an object"),
        (_dig(cluster="x y"), "not a valid cluster"),
    ],
)
def test_forged_data_is_refused_like_typed_text(data: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as info:
        command_from_dict(data)
    assert message in info.value.message
    assert "\n" not in info.value.message and len(info.value.message) < 200


def test_data_means_what_the_same_words_typed_mean() -> None:
    # A string "5" typed is 5: it no longer crashes the bot (TypeError) with no answer.
    assert command_from_dict(_dig(repeat="5")) == DigCommand(
        servers=(DnsServer("127.0.0.1", 16354),), names=("x.test",), repeat=5
    )
    assert command_from_dict({"verb": "check", "args": {"nodes": 0}}) == CheckCommand(nodes=0)
    # Defaults need not be spelled out, and a capture with no target is every CoreDNS pod.
    assert command_from_dict({"verb": "capture", "args": {}}) == CaptureCommand(coredns=True)
    assert command_from_dict(CaptureCommand(cluster="eu", coredns=True, duration_s=120).to_dict()).cluster == "eu"
