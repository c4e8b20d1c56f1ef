"""The dig policy: which servers `dig` asks for a channel member (issue 10, item 8).

Every refused address below was once queued as a job; the worker was a port scanner for anyone in
an allowed channel.
"""

from __future__ import annotations

import pytest

from aksdns import grammar
from aksdns.commands import DigCommand, DnsServer
from aksdns.dig_policy import DigPolicy
from aksdns.errors import AksDnsError, PolicyRefused
from aksdns.settings import Settings
from bot.authz import Policy, decide
from workers.jobenv import JobEnv
from workers.jobs import dig

DEFAULT = DigPolicy()


@pytest.mark.parametrize(
    "server",
    [
        DnsServer("10.0.0.10"),  # the kube-dns Service
        DnsServer("10.244.1.7"),  # a CoreDNS pod
        DnsServer("168.63.129.16"),  # Azure DNS
        DnsServer("169.254.10.10"),  # AKS LocalDNS (link-local, port 53)
        DnsServer("169.254.20.10"),  # NodeLocal DNSCache
        DnsServer("fd00::10"),
        DnsServer("fe80::1%eth0"),
        DnsServer("8.8.8.8"),  # any address on port 53 (a VNet's custom DNS may be anywhere)
    ],
)
def test_dns_servers_on_port_53_are_asked(server: DnsServer) -> None:
    assert DEFAULT.refusal(server) is None
    assert DEFAULT.refusal(server, known=()) is None


@pytest.mark.parametrize(
    ("server", "words"),
    [
        (DnsServer("169.254.169.254"), "metadata"),
        (DnsServer("fd00:ec2::254"), "metadata"),
        (DnsServer("127.0.0.1"), "loopback"),
        (DnsServer("127.0.0.1", 6379), "loopback"),
        (DnsServer("::1"), "loopback"),
        (DnsServer("0.0.0.0"), "unspecified"),
        (DnsServer("255.255.255.255"), "broadcast"),
        (DnsServer("224.0.0.251"), "multicast"),
        (DnsServer("ff02::fb"), "multicast"),
        (DnsServer("240.0.0.1"), "reserved"),
        (DnsServer("fe80::1%" + "a" * 900), "interface scope"),
        (DnsServer("fe80::1%eth0;x"), "interface scope"),
    ],
)
def test_what_is_not_a_dns_server_is_refused(server: DnsServer, words: str) -> None:
    reason = DEFAULT.refusal(server)
    assert reason is not None and words in reason
    assert "\n" not in reason and len(reason) < 300


def test_other_ports_only_on_the_clusters_own_dns_servers() -> None:
    redis_port = DnsServer("10.0.0.5", 6379)
    assert DEFAULT.refusal(redis_port) is None  # the bot cannot know: the worker decides
    reason = DEFAULT.refusal(redis_port, known=())
    assert reason is not None and "port 6379 is not a DNS server of this cluster" in reason
    forwarder = DnsServer("10.50.0.4", 5353)
    assert DEFAULT.refusal(forwarder, known={forwarder}) is None


def test_the_allowlist_widens_the_policy() -> None:
    policy = DigPolicy.from_setting("127.0.0.0/8, 10.50.0.0/16:5353-5354, [fd00::/8]:8053, fd01::/16")
    assert policy.refusal(DnsServer("127.0.0.1", 6379), known=()) is None
    assert policy.refusal(DnsServer("10.50.1.1", 5354), known=()) is None
    assert policy.refusal(DnsServer("10.50.1.1", 5355), known=()) is not None
    assert policy.refusal(DnsServer("fd00::1", 8053), known=()) is None
    assert policy.refusal(DnsServer("fd01::1", 1), known=()) is None
    assert policy.refusal(DnsServer("169.254.169.254")) is not None


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "nonsense", "10.0.0.0/8:0", "10.0.0.0/8:9-1", "[fd00::/8]x",
                                 "10.0.0.0/8:²", "10.0.0.0/8:" + "9" * 5000])
def test_a_bad_allowlist_stops_the_process_with_one_line(bad: str) -> None:
    with pytest.raises(AksDnsError) as info:
        Settings.from_env({"AKSDNS_DIG_ALLOW": bad})
    assert "AKSDNS_DIG_ALLOW" in info.value.message and "\n" not in info.value.message


def test_the_bot_refuses_before_queueing() -> None:
    refused = decide(Policy(), user="U1", channel="C1", command=grammar.parse("dig @169.254.169.254 x.y"),
                     groups_of_user=frozenset())
    assert not refused.allowed and "metadata" in refused.reason
    deferred = decide(Policy(), user="U1", channel="C1", command=grammar.parse("dig @10.0.0.5:6379 x.y --tcp"),
                      groups_of_user=frozenset())
    assert deferred.allowed  # the worker knows the cluster's servers and decides on the port


def _never(*_args: object, **_kwargs: object) -> list[object]:
    raise AssertionError("a refused dig must not send a single query")


def test_the_worker_refuses_a_port_that_is_no_clusters_dns_server() -> None:
    env = JobEnv(cluster="c", source="slack")
    cmd = DigCommand(servers=(DnsServer("10.0.0.5", 6379),), names=("x.y",), tcp=True)
    with pytest.raises(PolicyRefused, match="port 6379"):
        dig.execute(cmd, env, runner=_never, known=frozenset)


def test_the_worker_asks_the_clusters_own_servers_and_cli_users_anything() -> None:
    forwarder = DnsServer("10.50.0.4", 5353)
    cmd = DigCommand(servers=(forwarder,), names=("x.y",))
    asked: list[object] = []

    def runner(queries: list[object], **_kwargs: object) -> list[object]:
        asked.extend(queries)
        return []

    dig.execute(cmd, JobEnv(cluster="c", source="slack"), runner=runner, known=lambda: frozenset({forwarder}))
    assert len(asked) == 1
    loopback = DigCommand(servers=(DnsServer("127.0.0.1", 6379),), names=("x.y",))
    dig.execute(loopback, JobEnv(cluster="c", source="cli"), runner=runner, known=frozenset)
    assert len(asked) == 2  # the CLI runs as its user, on their machine: no policy
