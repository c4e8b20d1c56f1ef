"""Typed commands: what the grammar produces and what jobs consume.

Plain frozen dataclasses, JSON-friendly (``to_dict``/``from_dict``) so that a command
travels through Redis as JSON, never pickle.
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
    privileged: ClassVar[bool] = False  # needs AKSDNS_PRIVILEGED_USERS/GROUPS
    available: ClassVar[bool] = True  # False until the job lands

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
    """`dig [@SERVER[:PORT]]... NAME... [--type T]... [--repeat N] [--timeout S] [--tcp]`."""

    verb: ClassVar[Verb] = Verb.DIG
    servers: tuple[DnsServer, ...] = ()  # empty: the worker's resolv.conf nameservers
    names: tuple[str, ...] = ()
    types: tuple[str, ...] = ("A",)
    repeat: int = 1
    timeout: float = 2.0
    tcp: bool = False


@dataclass(frozen=True)
class CheckCommand(Command):
    """`check [NAME...] [--repeat N] [--nodes N|all]`."""

    verb: ClassVar[Verb] = Verb.CHECK
    names: tuple[str, ...] = ()
    repeat: int = 1
    nodes: int | None = None  # None: a default sample; 0 means "all"


@dataclass(frozen=True)
class HealthCommand(Command):
    verb: ClassVar[Verb] = Verb.HEALTH
    available: ClassVar[bool] = False


@dataclass(frozen=True)
class CaptureCommand(Command):
    """`capture [--coredns] [--pod NAMESPACE/NAME]... [--duration D] [--filter EXPR]`."""

    verb: ClassVar[Verb] = Verb.CAPTURE
    privileged: ClassVar[bool] = True
    available: ClassVar[bool] = False
    coredns: bool = False
    pods: tuple[ObjectRef, ...] = ()
    duration_s: int = 120
    filter: str = "port 53"


@dataclass(frozen=True)
class AnalyzeCommand(Command):
    """`analyze [FILE...] [--slow S]`: files uploaded to the thread (Slack) or paths (CLI)."""

    verb: ClassVar[Verb] = Verb.ANALYZE
    files: tuple[str, ...] = ()
    slow_s: float = 5.0


@dataclass(frozen=True)
class ApiserverCommand(Command):
    verb: ClassVar[Verb] = Verb.APISERVER
    available: ClassVar[bool] = False


@dataclass(frozen=True)
class IpamCommand(Command):
    verb: ClassVar[Verb] = Verb.IPAM
    available: ClassVar[bool] = False
    node: str | None = None


@dataclass(frozen=True)
class ServiceCommand(Command):
    verb: ClassVar[Verb] = Verb.SERVICE
    available: ClassVar[bool] = False
    ref: ObjectRef = ObjectRef("default", "kubernetes")
    port: int | None = None


@dataclass(frozen=True)
class HandoffCommand(Command):
    verb: ClassVar[Verb] = Verb.HANDOFF
    available: ClassVar[bool] = False


COMMAND_TYPES: dict[Verb, type[Command]] = {
    c.verb: c
    for c in (
        HelpCommand,
        DigCommand,
        CheckCommand,
        HealthCommand,
        CaptureCommand,
        AnalyzeCommand,
        ApiserverCommand,
        IpamCommand,
        ServiceCommand,
        HandoffCommand,
    )
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def command_from_dict(data: dict[str, Any]) -> Command:
    """Inverse of :meth:`Command.to_dict`; raises ValueError on anything unexpected."""
    try:
        verb = Verb(data["verb"])
        args = dict(data.get("args") or {})
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"not a command: {exc}") from None
    cls = COMMAND_TYPES[verb]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in args.items():
        if key not in fields:
            raise ValueError(f"unknown field {key!r} for {verb.value}")
        if key == "servers":
            value = tuple(DnsServer(str(s["host"]), int(s["port"])) for s in value)
        elif key == "pods":
            value = tuple(ObjectRef(str(p["namespace"]), str(p["name"])) for p in value)
        elif key == "ref":
            value = ObjectRef(str(value["namespace"]), str(value["name"]))
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
