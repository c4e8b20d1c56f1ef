"""Validators for the values a command carries: DNS names, addresses, ports, references.

Pure functions that either return the normalised value or raise
:class:`aksdns.errors.UsageError` with a short message naming the problem.
"""

from __future__ import annotations

import ipaddress
import re

from aksdns.errors import UsageError

# Characters a shell or a Slack formatter would give meaning to. None of our values
# ever needs them, so one of them anywhere in a token is refused outright.
SHELL_METACHARACTERS = frozenset(";|&$`<>(){}[]\\!*?'\"~#\n\r\t\x00")

_LABEL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_CLUSTER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_FILE_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_./-]{0,254}$")

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63


def reject_metacharacters(token: str, what: str) -> None:
    """Refuse a token that carries shell or formatting metacharacters."""
    bad = sorted({c for c in token if c in SHELL_METACHARACTERS or not c.isprintable()})
    if bad:
        shown = " ".join(repr(c) for c in bad[:3])
        raise UsageError(f"{what} `{clip(token)}` contains forbidden characters ({shown})")


def dns_name(text: str) -> str:
    """A DNS name to query: IDNA-encoded, labels ≤ 63 bytes, name ≤ 253, no empty label.

    Returns the ASCII (A-label) form without a trailing dot.
    """
    reject_metacharacters(text, "name")
    name = text[:-1] if text.endswith(".") else text
    if not name:
        raise UsageError("empty DNS name")
    labels = name.split(".")
    out: list[str] = []
    for label in labels:
        if not label:
            raise UsageError(f"name `{clip(text)}` has an empty label")
        if not label.isascii():
            import idna  # only for non-ASCII labels: most commands never pay for its tables

            try:
                label = idna.alabel(label).decode("ascii")
            except idna.IDNAError as exc:
                raise UsageError(f"name `{clip(text)}` is not a valid IDNA name ({exc})") from None
        if len(label) > MAX_LABEL_LENGTH:
            raise UsageError(f"label `{clip(label)}` is longer than {MAX_LABEL_LENGTH} characters")
        if not _LABEL_RE.match(label):
            raise UsageError(f"name `{clip(text)}` has an invalid label `{clip(label)}`")
        out.append(label.lower())
    ascii_name = ".".join(out)
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise UsageError(f"name is longer than {MAX_NAME_LENGTH} characters")
    return ascii_name


def ip_address(text: str, what: str = "address") -> str:
    """An IPv4 or IPv6 address in its normal form."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{what} `{clip(text)}` is not an IP address") from None


def ip_network(text: str) -> str:
    """A network such as 10.0.0.0/8 (host bits allowed, as tcpdump allows)."""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise UsageError(f"`{clip(text)}` is not a network (like 10.244.0.0/16)") from None


def port(text: str, what: str = "port") -> int:
    """A TCP/UDP port, 1–65535."""
    return integer(text, what, 1, 65535)


_ASCII_INTEGER_RE = re.compile(r"[0-9]{1,9}")


def integer(text: str, what: str, low: int, high: int) -> int:
    """A decimal integer within [low, high], in ASCII digits only.

    ``str.isdigit`` is also true of superscripts such as `²`, which ``int`` refuses.
    """
    if not _ASCII_INTEGER_RE.fullmatch(text):
        raise UsageError(f"{what} must be a whole number, not `{clip(text)}`")
    value = int(text)
    if not low <= value <= high:
        raise UsageError(f"{what} must be between {low} and {high}, not {value}")
    return value


def seconds(text: str, what: str, low: float, high: float) -> float:
    """A number of seconds (decimal allowed) within [low, high]."""
    if not _ASCII_DECIMAL_RE.fullmatch(text):  # float() would also take `٣`, ` 5\n` and `1_0`
        raise UsageError(f"{what} must be a number of seconds, not `{clip(text)}`")
    value = float(text)
    if not low <= value <= high:
        raise UsageError(f"{what} must be between {low:g} and {high:g} seconds, not {clip(text)}")
    return value


_ASCII_DECIMAL_RE = re.compile(r"-?(?:[0-9]{1,6}(?:\.[0-9]{0,6})?|\.[0-9]{1,6})")
_DURATION_RE = re.compile(r"([0-9]{1,5})(s|m)?")


def duration(text: str, what: str, low_s: int, high_s: int) -> int:
    """A duration like `90`, `90s` or `2m`, in whole seconds within [low_s, high_s]."""
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise UsageError(f"{what} must look like 90s or 2m, not `{clip(text)}`")
    value = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
    if not low_s <= value <= high_s:
        raise UsageError(f"{what} must be between {low_s}s and {high_s // 60}m, not {clip(text)}")
    return value


def object_ref(text: str) -> tuple[str, str]:
    """A `namespace/name` reference; namespace a DNS-1123 label, name a DNS-1123 subdomain."""
    reject_metacharacters(text, "reference")
    parts = text.split("/")
    if len(parts) != 2:
        raise UsageError(f"`{clip(text)}` must be NAMESPACE/NAME")
    namespace, name = parts
    if not _DNS1123_LABEL_RE.match(namespace):
        raise UsageError(f"namespace `{clip(namespace)}` is not a valid Kubernetes namespace")
    if len(name) > MAX_NAME_LENGTH or not _DNS1123_SUBDOMAIN_RE.match(name):
        raise UsageError(f"name `{clip(name)}` is not a valid Kubernetes object name")
    return namespace, name


def node_name(text: str) -> str:
    """A node name (DNS-1123 subdomain), e.g. aks-nodepool1-17046773-vmss00000m."""
    reject_metacharacters(text, "node")
    if len(text) > MAX_NAME_LENGTH or not _DNS1123_SUBDOMAIN_RE.match(text):
        raise UsageError(f"node `{clip(text)}` is not a valid node name")
    return text


def cluster_name(text: str) -> str:
    """A cluster name as used in queue names (aksdns:<cluster>)."""
    reject_metacharacters(text, "cluster")
    if not _CLUSTER_RE.match(text):
        raise UsageError(f"cluster `{clip(text)}` is not a valid cluster name")
    return text


def file_name(text: str) -> str:
    """A capture file reference: a plain relative or absolute path without `..`."""
    reject_metacharacters(text, "file")
    if not _FILE_RE.match(text.lstrip("/")) or ".." in text.split("/"):
        raise UsageError(f"file `{clip(text)}` is not an acceptable file name")
    return text


def clip(text: str, limit: int = 40) -> str:
    """Echo user input back short, on one line, without backticks that would break formatting.

    Control and other unprintable characters are shown escaped (`\\n`, `\\x1b`): echoed raw,
    a newline would split the answer and a carriage return or an escape sequence would
    rewrite what a terminal shows.
    """
    text = printable(text.replace("`", "'"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def printable(text: str) -> str:
    """``text`` with every unprintable character escaped as Python would write it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
