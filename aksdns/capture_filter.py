"""A safe subset of tcpdump's filter language (pcap-filter(7)), checked token by token.

The filter reaches tcpdump as one argv element, never through a shell; this check is
what keeps it to expressions that only select packets.  Grammar::

    expr      := term (("and" | "or") term)*
    term      := "not" term | "(" expr ")" | primitive
    primitive := [proto] [dir] qualifier value | proto
    proto     := "ip" | "ip6" | "udp" | "tcp"
    dir       := "src" | "dst"
    qualifier := "host" ADDRESS | "net" NETWORK | "port" NUMBER | "portrange" NUMBER-NUMBER
"""

from __future__ import annotations

import re

from aksdns import validate
from aksdns.errors import UsageError

MAX_FILTER_LENGTH = 256
PROTOCOLS = frozenset({"ip", "ip6", "udp", "tcp"})
DIRECTIONS = frozenset({"src", "dst"})
QUALIFIERS = frozenset({"host", "net", "port", "portrange"})
CONNECTIVES = frozenset({"and", "or"})
_TOKEN_RE = re.compile(r"\(|\)|[^\s()]+")


def tokenize(text: str) -> list[str]:
    """Split on white space and parentheses; refuse anything outside the subset's alphabet."""
    if len(text) > MAX_FILTER_LENGTH:
        raise UsageError(f"capture filter is longer than {MAX_FILTER_LENGTH} characters")
    for char in text:
        if not (char.isascii() and (char.isalnum() or char in " .:/-()")):
            raise UsageError(f"capture filter contains a forbidden character {char!r}")
    return _TOKEN_RE.findall(text)


def normalize(text: str) -> str:
    """Validate a filter expression and return it with single spaces between tokens."""
    tokens = tokenize(text)
    if not tokens:
        raise UsageError("capture filter is empty")
    parser = _Parser(tokens)
    parser.expr(depth=0)
    if parser.pos != len(tokens):
        raise UsageError(f"capture filter: unexpected `{tokens[parser.pos]}`")
    return " ".join(tokens).replace("( ", "(").replace(" )", ")")


class _Parser:
    """Recursive descent over the token list; only validates, builds nothing."""

    MAX_DEPTH = 16

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise UsageError("capture filter ends too early")
        self.pos += 1
        return token

    def expr(self, depth: int) -> None:
        self.term(depth)
        while self.peek() in CONNECTIVES:
            self.take()
            self.term(depth)

    def term(self, depth: int) -> None:
        if depth > self.MAX_DEPTH:
            raise UsageError("capture filter is nested too deeply")
        token = self.peek()
        if token == "not":
            self.take()
            self.term(depth + 1)
        elif token == "(":
            self.take()
            self.expr(depth + 1)
            if self.take() != ")":
                raise UsageError("capture filter: missing `)`")
        else:
            self.primitive()

    def primitive(self) -> None:
        token = self.take()
        if token in PROTOCOLS:
            nxt = self.peek()
            if nxt in PROTOCOLS:
                raise UsageError(f"capture filter: write `and` between `{token}` and `{nxt}`")
            if nxt not in DIRECTIONS and nxt not in QUALIFIERS:
                return  # a bare protocol such as `udp`
            token = self.take()
        if token in DIRECTIONS:
            token = self.take()
        if token not in QUALIFIERS:
            raise UsageError(f"capture filter: `{token}` is not allowed (host, net, port, portrange…)")
        value = self.take()
        if token == "host":
            validate.ip_address(value, "capture filter host")
        elif token == "net":
            validate.ip_network(value)
        elif token == "port":
            validate.port(value, "capture filter port")
        else:
            low, sep, high = value.partition("-")
            if not sep:
                raise UsageError("capture filter: portrange must look like 53-60")
            if validate.port(low) > validate.port(high):
                raise UsageError("capture filter: portrange must go from low to high")
