"""The command grammar, table-driven, hostile input included."""

from __future__ import annotations

import pytest

from aksdns import grammar
from aksdns.commands import (
    AnalyzeCommand,
    CaptureCommand,
    CheckCommand,
    DigCommand,
    DnsServer,
    HelpCommand,
    IpamCommand,
    ObjectRef,
    ServiceCommand,
)
from aksdns.errors import UsageError
from aksdns.grammar import command_from_dict


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", HelpCommand()),
        ("help", HelpCommand()),
        ("help dig", HelpCommand(topic="dig")),
        ("dig --help", HelpCommand(topic="dig")),
        ("dig microsoft.com", DigCommand(names=("microsoft.com",))),
        ("DIG Microsoft.COM.", DigCommand(names=("microsoft.com",))),
        (
            "dig @10.0.0.10 @127.0.0.1:5353 kubernetes.default.svc.cluster.local --type A --type aaaa",
            DigCommand(
                servers=(DnsServer("10.0.0.10"), DnsServer("127.0.0.1", 5353)),
                names=("kubernetes.default.svc.cluster.local",),
                types=("A", "AAAA"),
            ),
        ),
        ("dig @[::1]:53 a.b", DigCommand(servers=(DnsServer("::1"),), names=("a.b",))),
        ("dig @::1 a.b", DigCommand(servers=(DnsServer("::1"),), names=("a.b",))),
        (
            "dig x.y --repeat 5 --timeout=0.5 --tcp --cluster prod-eu",
            DigCommand(names=("x.y",), repeat=5, timeout=0.5, tcp=True, cluster="prod-eu"),
        ),
        (
            "dig _http._tcp.svc.cluster.local --type SRV",
            DigCommand(names=("_http._tcp.svc.cluster.local",), types=("SRV",)),
        ),
        ("dig bücher.example", DigCommand(names=("xn--bcher-kva.example",))),
        ("check", CheckCommand()),
        (
            "check microsoft.com --repeat 5 --nodes all",
            CheckCommand(names=("microsoft.com",), repeat=5, nodes=0),
        ),
        ("check --nodes 3", CheckCommand(nodes=3)),
        ("capture", CaptureCommand(coredns=True)),
        (
            "capture --pod default/aks-test --duration 90s",
            CaptureCommand(coredns=False, pods=(ObjectRef("default", "aks-test"),), duration_s=90),
        ),
        (
            'capture --coredns --duration 10m --filter "udp port 53 and (host 10.0.0.1 or net 10.0.0.0/8)"',
            CaptureCommand(
                coredns=True, duration_s=600, filter="udp port 53 and (host 10.0.0.1 or net 10.0.0.0/8)"
            ),
        ),
        (
            "capture --filter 'not tcp and src portrange 53-60'",
            CaptureCommand(coredns=True, filter="not tcp and src portrange 53-60"),
        ),
        ("analyze", AnalyzeCommand()),
        ("analyze dns-cap1.pcap --slow 2", AnalyzeCommand(files=("dns-cap1.pcap",), slow_s=2.0)),
        (
            "ipam --node aks-nodepool1-17046773-vmss00000m",
            IpamCommand(node="aks-nodepool1-17046773-vmss00000m"),
        ),
        ("service default/web --port 8080", ServiceCommand(ref=ObjectRef("default", "web"), port=8080)),
    ],
)
def test_parses(text: str, expected: object) -> None:
    assert grammar.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frobnicate", "unknown command"),
        ("dig", "at least one NAME"),
        ("dig a..b", "empty label"),
        ("dig " + "a" * 64 + ".com", "longer than 63"),
        ("dig " + ".".join(["abcdefghi"] * 26), "longer than 253"),
        ("dig a.b; rm -rf /", "forbidden characters"),
        ("dig $(reboot)", "forbidden characters"),
        ("dig `id`.x", "forbidden characters"),
        ("dig a.b | nc evil 1", "forbidden characters"),
        ("dig a.b && ls", "forbidden characters"),
        ("dig @999.1.1.1 a.b", "not an IP address"),
        ("dig @evil.example a.b", "not an IP address"),
        ("dig @127.0.0.1:0 a.b", "between 1 and 65535"),
        ("dig @127.0.0.1:99999 a.b", "between 1 and 65535"),
        ("dig a.b --type AXFR", "is not one of"),
        ("dig a.b --repeat 0", "between 1 and 50"),
        ("dig a.b --repeat 1e9", "whole number"),
        ("dig a.b --timeout nan", "number of seconds"),
        ("dig a.b --timeout 999", "between"),
        ("dig a.b --bogus", "unknown flag"),
        ("dig a.b -t A", "unknown flag"),
        ("dig a.b --tcp=yes", "takes no value"),
        ("dig a.b --repeat", "needs a value"),
        ('dig "a.b', "cannot read"),
        ("dig a_.-b", "invalid label"),
        ("check --nodes some", "whole number"),
        ("capture --duration 11m", "between 5s and 10m"),
        ("capture --duration forever", "look like 90s"),
        ("capture --pod web", "NAMESPACE/NAME"),
        ("capture --pod Default/Web", "not a valid Kubernetes namespace"),
        ("capture --filter 'port 53; reboot'", "forbidden character"),
        ("capture --filter 'port 53 and'", "ends too early"),
        ("capture --filter 'ether host 1'", "not allowed"),
        ("capture --filter '((port 53)'", "ends too early"),
        ("capture --filter '(port 53))'", "unexpected"),
        ("capture --filter 'host 10.0.0.1 port 53'", "unexpected"),
        ("capture --filter 'port 53 -w /tmp/x'", "unexpected"),
        ("capture extra", "takes no arguments"),
        ("analyze ../../etc/passwd", "not an acceptable file name"),
        ("service web", "NAMESPACE/NAME"),
        ("service a/b c/d", "exactly one"),
        ("health now", "takes no arguments"),
        ("dig a.b --cluster 'x y'", "not a valid cluster"),
        ("dig <@U123> a.b", "forbidden characters"),
        ("x" * 1001, "longer than 1000"),
        ("help nothing", "no help"),
    ],
)
def test_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        grammar.parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200


def test_too_many_queries_refused() -> None:
    names = " ".join(f"n{i}.example" for i in range(20))
    servers = " ".join(f"@127.0.0.{i}" for i in range(1, 11))
    with pytest.raises(UsageError, match="queries"):
        grammar.parse(f"dig {servers} {names} --type A --type AAAA --type TXT --repeat 50")


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        ("dig <http://microsoft.com|microsoft.com>", "dig microsoft.com"),
        ("dig <http://microsoft.com>", "dig microsoft.com"),
        ("<@U0BOT> check", "check"),
        ("<@U0BOT|aksdns> dig a.b", "dig a.b"),
        ("capture --filter “port 53”", 'capture --filter "port 53"'),
        ("dig a.b &amp;&amp; ls", "dig a.b && ls"),
    ],
)
def test_unescape_slack(slack: str, plain: str) -> None:
    assert grammar.unescape_slack(slack) == plain


def test_commands_round_trip_through_json() -> None:
    for text in [
        "dig @[::1]:5353 a.b --type AAAA --repeat 3",
        "capture --pod a/b --duration 1m",
        "service a/b",
    ]:
        command = grammar.parse(text)
        assert command_from_dict(command.to_dict()) == command
