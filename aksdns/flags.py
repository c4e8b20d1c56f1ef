"""Flags of the command grammar: what each takes, its bounds, and how to write it back.

A :class:`Flag` names the command field it sets and its :class:`Kind`. A kind converts the
typed text (raising :class:`UsageError` with one short line), says its bounds for the help, and
writes a value back as words (``render``), so that a command rebuilt from data (a button's
value, a job spec read by the worker) is parsed again from those words with exactly the checks
typed text gets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aksdns import validate
from aksdns.errors import UsageError


class Kind(Protocol):
    """What a flag takes."""

    @property
    def metavar(self) -> str | None:
        """The word the usage line shows (``N``); None for a switch, which takes no value."""

    def convert(self, text: str, flag: str) -> Any:
        """Typed text → value, or UsageError."""

    def bounds(self) -> str:
        """The limits, as the help shows them ("" when there are none)."""

    def render(self, value: Any, flag: str) -> list[str]:
        """A value → the words that give it back (``[]`` for an unset switch)."""


def _scalar(value: Any, flag: str) -> str:
    """One value of rebuilt data as a word; lists, dicts and booleans are not words."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"`{flag}` needs a single value")
    return str(value)


@dataclass(frozen=True)
class Count:
    """A whole number within [low, high]; ``words`` are spelled values such as ``all`` → 0."""

    low: int
    high: int
    words: Mapping[str, int] = field(default_factory=dict)

    @property
    def metavar(self) -> str:
        return "|".join(["N", *self.words])

    def convert(self, text: str, flag: str) -> int:
        if text in self.words:
            return self.words[text]
        return validate.integer(text, flag, self.low, self.high)

    def bounds(self) -> str:
        return f"{self.low}–{self.high}"

    def render(self, value: Any, flag: str) -> list[str]:
        spelled = next((w for w, v in self.words.items() if v == value and not isinstance(value, bool)), None)
        return [flag, spelled or _scalar(value, flag)]


@dataclass(frozen=True)
class Seconds:
    """A number of seconds (decimals allowed) within [low, high]."""

    low: float
    high: float

    metavar = "S"

    def convert(self, text: str, flag: str) -> float:
        return validate.seconds(text, flag, self.low, self.high)

    def bounds(self) -> str:
        return f"{self.low:g}–{self.high:g} s"

    def render(self, value: Any, flag: str) -> list[str]:
        return [flag, _scalar(value, flag)]


@dataclass(frozen=True)
class Duration:
    """A duration such as ``90s`` or ``2m``, in whole seconds within [low_s, high_s]."""

    low_s: int
    high_s: int

    metavar = "D"

    def convert(self, text: str, flag: str) -> int:
        return validate.duration(text, flag, self.low_s, self.high_s)

    def bounds(self) -> str:
        return f"{self.low_s}s–{self.high_s // 60}m"

    def render(self, value: Any, flag: str) -> list[str]:
        return [flag, _scalar(value, flag)]


@dataclass(frozen=True)
class Switch:
    """Present or not; takes no value."""

    metavar = None

    def convert(self, text: str, flag: str) -> bool:
        return True

    def bounds(self) -> str:
        return ""

    def render(self, value: Any, flag: str) -> list[str]:
        if not isinstance(value, bool):
            raise UsageError(f"`{flag}` is a switch: true or false")
        return [flag] if value else []


@dataclass(frozen=True)
class Choice:
    """One word of a fixed set, compared without case (record types)."""

    choices: frozenset[str]
    metavar: str = "T"

    def convert(self, text: str, flag: str) -> str:
        word = text.upper()
        if word not in self.choices:
            raise UsageError(f"{flag} `{validate.clip(text)}` is not one of {', '.join(sorted(self.choices))}")
        return word

    def bounds(self) -> str:
        return ", ".join(sorted(self.choices))

    def render(self, value: Any, flag: str) -> list[str]:
        return [flag, _scalar(value, flag)]


@dataclass(frozen=True)
class Text:
    """A word checked by a validator (a node name, a NAMESPACE/NAME, a capture filter)."""

    metavar: str
    check: Callable[[str], Any]
    write: Callable[[Any], str] = str  # value → the word that gives it back

    def convert(self, text: str, flag: str) -> Any:
        return self.check(text)

    def bounds(self) -> str:
        return ""

    def render(self, value: Any, flag: str) -> list[str]:
        return [flag, self.write(value)]


@dataclass(frozen=True)
class Flag:
    """``--name VALUE``: sets ``field`` of the command; ``repeated`` flags collect a tuple."""

    name: str
    field: str
    kind: Kind
    help: str
    repeated: bool = False

    @property
    def takes_value(self) -> bool:
        return self.kind.metavar is not None

    @property
    def synopsis(self) -> str:
        """``--repeat N``, or ``--tcp`` for a switch."""
        return self.name if self.kind.metavar is None else f"{self.name} {self.kind.metavar}"

    def usage(self) -> str:
        return f"[{self.synopsis}]" + ("..." if self.repeated else "")


CLUSTER_FLAG = Flag("--cluster", "cluster", Text("C", validate.cluster_name), "the cluster to run on")


@dataclass
class Args:
    """Flags and positionals of one command line, split but not yet interpreted."""

    positionals: list[str] = field(default_factory=list)
    flags: dict[str, list[str | None]] = field(default_factory=dict)

    def last(self, flag: str) -> str | None:
        values = self.flags.get(flag)
        return values[-1] if values else None

    def all(self, flag: str) -> list[str]:
        return [v for v in self.flags.get(flag, []) if v is not None]

    def has(self, flag: str) -> bool:
        return flag in self.flags


def split(verb: str, tokens: list[str], flags: tuple[Flag, ...]) -> Args:
    """Tokens → positionals and raw flag values; unknown flags and missing values are refused."""
    allowed = {f.name: f.takes_value for f in (*flags, CLUSTER_FLAG)}
    args = Args()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            name, eq, inline = token.partition("=")
            if name not in allowed:
                raise UsageError(f"unknown flag `{validate.clip(name)}` for `{verb}`", command=verb)
            if allowed[name]:
                if eq:
                    value = inline
                elif i + 1 < len(tokens):
                    i += 1
                    value = tokens[i]
                else:
                    raise UsageError(f"`{name}` needs a value", command=verb)
                args.flags.setdefault(name, []).append(value)
            else:
                if eq:
                    raise UsageError(f"`{name}` takes no value", command=verb)
                args.flags.setdefault(name, []).append(None)
        elif token.startswith("-") and len(token) > 1:
            raise UsageError(f"unknown flag `{validate.clip(token)}` (flags start with --)", command=verb)
        else:
            args.positionals.append(token)
        i += 1
    return args


def values(args: Args, flags: tuple[Flag, ...]) -> dict[str, Any]:
    """The command fields the flags set: the last value wins; repeated flags keep each value once."""
    out: dict[str, Any] = {}
    for f in (*flags, CLUSTER_FLAG):
        if not args.has(f.name):
            continue
        if f.repeated:
            out[f.field] = tuple(dict.fromkeys(f.kind.convert(v, f.name) for v in args.all(f.name)))
        elif f.takes_value:
            out[f.field] = f.kind.convert(args.last(f.name) or "", f.name)
        else:
            out[f.field] = True
    return out
