"""resolv.conf as the glibc stub resolver reads it, and the names a pod's lookup tries.

Pure: :func:`parse_resolv_conf` takes text, :func:`search_list_expansion` takes a name and
a parsed file.  Only :func:`read_resolv_conf` touches the file system.

glibc rules followed here (resolv.conf(5)): at most three ``nameserver`` lines are used
(MAXNS); ``search`` and ``domain`` are exclusive and the last one wins; ``options`` values
are clamped (ndots ≤ 15, timeout ≤ 30, attempts ≤ 5); ``#`` and ``;`` start comments.
musl differs (it never tries search domains for a name with ≥ ndots dots), but AKS pods
and nodes are mostly glibc, and CoreDNS-driven search expansion is the glibc behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAXNS = 3  # glibc uses only the first three nameservers
NDOTS_MAX = 15
TIMEOUT_MAX = 30
ATTEMPTS_MAX = 5


@dataclass(frozen=True)
class ResolvConf:
    """The parts of resolv.conf a DNS investigation needs."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    ndots: int = 1
    timeout: int = 5  # seconds per try (glibc RES_TIMEOUT)
    attempts: int = 2  # tries per nameserver (glibc RES_DFLRETRY)
    rotate: bool = False
    single_request: bool = False
    single_request_reopen: bool = False
    use_vc: bool = False  # always TCP
    edns0: bool = False
    ignored_nameservers: tuple[str, ...] = ()  # beyond MAXNS: present but never used
    unknown_options: tuple[str, ...] = ()


def _int_option(value: str, default: int, maximum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        return default
    return max(0, min(number, maximum))


def parse_resolv_conf(text: str) -> ResolvConf:
    """Parse resolv.conf text; unknown lines are ignored, like the stub resolver does."""
    nameservers: list[str] = []
    search: list[str] = []
    ndots, timeout, attempts = 1, 5, 2
    flags: dict[str, bool] = {}
    unknown: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        keyword, *args = line.split()
        if keyword == "nameserver" and args:
            nameservers.append(args[0])
        elif keyword == "search":
            search = [d.rstrip(".") for d in args if d.rstrip(".")]
        elif keyword == "domain" and args:
            search = [args[0].rstrip(".")] if args[0].rstrip(".") else []
        elif keyword == "options":
            for opt in args:
                name, _, value = opt.partition(":")
                if name == "ndots":
                    ndots = _int_option(value, ndots, NDOTS_MAX)
                elif name == "timeout":
                    timeout = max(1, _int_option(value, timeout, TIMEOUT_MAX))
                elif name == "attempts":
                    attempts = max(1, _int_option(value, attempts, ATTEMPTS_MAX))
                elif name in ("rotate", "single-request", "single-request-reopen", "use-vc", "edns0"):
                    flags[name] = True
                else:
                    unknown.append(opt)
    return ResolvConf(
        nameservers=tuple(nameservers[:MAXNS]),
        search=tuple(search),
        ndots=ndots,
        timeout=timeout,
        attempts=attempts,
        rotate=flags.get("rotate", False),
        single_request=flags.get("single-request", False),
        single_request_reopen=flags.get("single-request-reopen", False),
        use_vc=flags.get("use-vc", False),
        edns0=flags.get("edns0", False),
        ignored_nameservers=tuple(nameservers[MAXNS:]),
        unknown_options=tuple(unknown),
    )


def read_resolv_conf(path: Path | str) -> ResolvConf:
    """Read and parse a resolv.conf file (OSError propagates: the caller words it)."""
    return parse_resolv_conf(Path(path).read_text(encoding="utf-8", errors="replace"))


def search_list_expansion(name: str, conf: ResolvConf) -> list[str]:
    """Fully qualified names (trailing dot) a glibc lookup of ``name`` tries, in order.

    - a trailing dot: the name alone;
    - at least ``ndots`` dots: the name as given first, then each search domain;
    - fewer dots: each search domain first, then the name as given last.

    This is why ``microsoft.com`` in a pod (ndots:5) costs four wasted NXDOMAIN lookups
    through ``<ns>.svc.cluster.local`` … before the real one.
    """
    if not name or name == ".":
        return ["."]
    if name.endswith("."):
        return [name]
    as_is = f"{name}."
    searched = [f"{name}.{domain}." for domain in conf.search]
    # Duplicated search domains are kept: glibc asks again, and `check` counts real queries.
    if name.count(".") >= conf.ndots:
        return [as_is, *searched]
    return [*searched, as_is]
