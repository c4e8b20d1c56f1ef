"""Typed commands: what the grammar produces and what jobs consume.

Plain frozen dataclasses, JSON-friendly (``to_dict``) so that a command travels through Redis
as JSON, never pickle. Everything else about a command (usage, flags and bounds, privilege, its
job) is its entry in ``aksdns.verbs``; data becomes a command again only through the grammar
(``aksdns.grammar.command_from_dict``), with the checks typed text gets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class Verb(StrEnum):
    """The words after `/aksdns`."""

    HELP = "help"
    DIG = "dig"
    CHECK = "check"
    HEALTH = "health"
    CAPTURE = "capture"
    ANALYZE = "analyze"
    APISERVER = "apiserver"
    IPAM = "ipam"
    SERVICE = "service"
    HANDOFF = "handoff"
    WATCH = "watch"
    AGAIN = "again"
    USE = "use"
    CLUSTERS = "clusters"
    AUDIT = "audit"
    COREDNS_LOG = "coredns-log"


@dataclass(frozen=True)
class DnsServer:
    """A DNS server to query: an IP address (v4 or v6) and a port."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 53 else f"{host}:{self.port}"


@dataclass(frozen=True)
class ObjectRef:
    """A `namespace/name` reference in DNS-1123 form."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Command:
    """Base of every command; ``cluster`` is the `--cluster C` target (None: default)."""

    verb: ClassVar[Verb]

    cluster: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"verb": ..., "args": {...}}``."""
        return {"verb": self.verb.value, "args": _jsonable(dataclasses.asdict(self))}

    def canonical(self) -> str:
        """Stable text used to recognise the same command twice (deduplication)."""
        import json

        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class HelpCommand(Command):
    verb: ClassVar[Verb] = Verb.HELP
    topic: str | None = None


@dataclass(frozen=True)
class DigCommand(Command):
    """Ask DNS servers from inside the cluster (usage and bounds: ``aksdns.verbs``)."""

    verb: ClassVar[Verb] = Verb.DIG
    servers: tuple[DnsServer, ...] = ()  # empty: the worker's resolv.conf nameservers
    names: tuple[str, ...] = ()
    types: tuple[str, ...] = ("A",)
    repeat: int = 1
    timeout: float = 2.0
    tcp: bool = False


@dataclass(frozen=True)
class CheckCommand(Command):
    """The guide's layered diagnosis."""

    verb: ClassVar[Verb] = Verb.CHECK
    names: tuple[str, ...] = ()
    repeat: int = 1
    nodes: int | None = None  # None: a default sample; 0 means "all"


@dataclass(frozen=True)
class HealthCommand(Command):
    """CoreDNS and node health, the guide's Part 2."""

    verb: ClassVar[Verb] = Verb.HEALTH
    minutes: int = 15  # the window of CoreDNS logs read
    pods: tuple[ObjectRef, ...] = ()  # client pods whose nodes are reviewed too


@dataclass(frozen=True)
class CorednsLogCommand(Command):
    """Time-boxed verbose CoreDNS logging (the `log` plugin through coredns-custom)."""

    verb: ClassVar[Verb] = Verb.COREDNS_LOG
    state: str = "on"  # "on" | "off"
    minutes: int = 10
    confirmed: bool = False  # set by the Start button (or --yes on the command line)


@dataclass(frozen=True)
class CaptureCommand(Command):
    """Packet captures on CoreDNS pods and client pods."""

    verb: ClassVar[Verb] = Verb.CAPTURE
    coredns: bool = False
    pods: tuple[ObjectRef, ...] = ()
    node: str | None = None  # a node's host network
    duration_s: int = 120
    filter: str = "port 53"
    live: bool = False  # decoded DNS rows as it runs instead of a pcap


@dataclass(frozen=True)
class AnalyzeCommand(Command):
    """DNS statistics of captures: files uploaded to the thread (Slack) or paths (CLI)."""

    verb: ClassVar[Verb] = Verb.ANALYZE
    files: tuple[str, ...] = ()
    slow_s: float = 5.0


@dataclass(frozen=True)
class ApiserverCommand(Command):
    """Reach the API server stage by stage from the worker and every node; name the guide's cause."""

    verb: ClassVar[Verb] = Verb.APISERVER
    service_account: ObjectRef | None = None  # --as: what this ServiceAccount may and may not do
    client_ip: str | None = None  # --client: is this address inside the authorized IP ranges?


@dataclass(frozen=True)
class IpamCommand(Command):
    verb: ClassVar[Verb] = Verb.IPAM
    node: str | None = None


@dataclass(frozen=True)
class ServiceCommand(Command):
    verb: ClassVar[Verb] = Verb.SERVICE
    ref: ObjectRef = ObjectRef("default", "kubernetes")
    port: int | None = None


@dataclass(frozen=True)
class HandoffCommand(Command):
    """The thread's incident record for the next engineer, from its history alone."""

    verb: ClassVar[Verb] = Verb.HANDOFF


@dataclass(frozen=True)
class WatchCommand(Command):
    """Repeat a read-only command every ``every_s`` for ``for_s``; post only what changed."""

    verb: ClassVar[Verb] = Verb.WATCH
    target: str = ""  # the repeated command's words, as the grammar writes them back
    every_s: int = 300
    for_s: int = 3600


@dataclass(frozen=True)
class AgainCommand(Command):
    """Run the thread's last command (or its last ``what``) again."""

    verb: ClassVar[Verb] = Verb.AGAIN
    what: str | None = None


@dataclass(frozen=True)
class UseCommand(Command):
    """Set (or show) this channel's default cluster."""

    verb: ClassVar[Verb] = Verb.USE
    target: str | None = None


@dataclass(frozen=True)
class ClustersCommand(Command):
    """The clusters with a live worker: version, queue depth, jobs running."""

    verb: ClassVar[Verb] = Verb.CLUSTERS


@dataclass(frozen=True)
class AuditCommand(Command):
    """Read the audit stream (privileged)."""

    verb: ClassVar[Verb] = Verb.AUDIT
    user: str | None = None
    since: str = "24h"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
