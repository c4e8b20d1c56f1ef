"""The command grammar: text after `/aksdns` (or an @mention) → a typed command.

One pure parser shared by Slack and the CLI.  Anything it does not understand is a
:class:`UsageError` whose message names the problem in one short line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from aksdns import capture_filter, validate
from aksdns.commands import (
    AnalyzeCommand,
    ApiserverCommand,
    CaptureCommand,
    CheckCommand,
    Command,
    DigCommand,
    DnsServer,
    HandoffCommand,
    HealthCommand,
    HelpCommand,
    IpamCommand,
    ObjectRef,
    ServiceCommand,
    Verb,
)
from aksdns.errors import UsageError

MAX_TEXT_LENGTH = 1000
MAX_TOKENS = 64
MAX_DIG_SERVERS = 10
MAX_DIG_NAMES = 20
MAX_DIG_QUERIES = 5000  # servers × names × types × repeat: bounds one job's load
MAX_REPEAT = 50
MAX_CHECK_NAMES = 10
MAX_NODES = 100
CAPTURE_DEFAULT_S = 120
CAPTURE_MIN_S = 5
CAPTURE_MAX_S = 600

# Record types a troubleshooter asks for; zone transfers and meta types are left out.
DIG_TYPES = frozenset(
    {"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA", "DS", "DNSKEY", "HTTPS", "SVCB"}
)

_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})
_SLACK_LINK_RE = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_LEADING_MENTION_RE = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>\s*")


def unescape_slack(text: str) -> str:
    """Undo Slack's message formatting so that `microsoft.com` reads as typed.

    Slack wraps things it recognises: links as ``<http://x.com|x.com>`` or ``<http://x.com>``,
    and escapes ``& < >`` as entities (https://api.slack.com/reference/surfaces/formatting).
    Mentions and channel links are kept as they are, so they fail validation loudly.
    """
    text = _LEADING_MENTION_RE.sub("", text, count=1)

    def link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("@", "#", "!")):
            return match.group(0)
        if label:
            return label
        return re.sub(r"^(?:https?|mailto):(?://)?", "", target)

    text = _SLACK_LINK_RE.sub(link, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.translate(_SMART_QUOTES).replace("\u00a0", " ")


@dataclass
class _Args:
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


# flag name → takes a value?
_COMMON_FLAGS = {"--cluster": True}
_FLAGS: dict[Verb, dict[str, bool]] = {
    Verb.HELP: {},
    Verb.DIG: {"--type": True, "--repeat": True, "--timeout": True, "--tcp": False},
    Verb.CHECK: {"--repeat": True, "--nodes": True},
    Verb.HEALTH: {},
    Verb.CAPTURE: {"--coredns": False, "--pod": True, "--duration": True, "--filter": True},
    Verb.ANALYZE: {"--slow": True},
    Verb.APISERVER: {},
    Verb.IPAM: {"--node": True},
    Verb.SERVICE: {"--port": True},
    Verb.HANDOFF: {},
}


def tokenize(text: str) -> list[str]:
    """Split like a shell would (quotes group words) without ever running one."""
    if len(text) > MAX_TEXT_LENGTH:
        raise UsageError(f"command is longer than {MAX_TEXT_LENGTH} characters")
    try:
        tokens = shlex.split(text, comments=False, posix=True)
    except ValueError as exc:
        raise UsageError(f"cannot read the command: {exc}") from None
    if len(tokens) > MAX_TOKENS:
        raise UsageError(f"too many words (at most {MAX_TOKENS})")
    return tokens


def _split(verb: Verb, tokens: list[str]) -> _Args:
    allowed = {**_FLAGS[verb], **_COMMON_FLAGS}
    args = _Args()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            name, eq, inline = token.partition("=")
            if name not in allowed:
                raise UsageError(f"unknown flag `{validate.clip(name)}` for `{verb.value}`", command=verb.value)
            if allowed[name]:
                if eq:
                    value = inline
                elif i + 1 < len(tokens):
                    i += 1
                    value = tokens[i]
                else:
                    raise UsageError(f"`{name}` needs a value", command=verb.value)
                args.flags.setdefault(name, []).append(value)
            else:
                if eq:
                    raise UsageError(f"`{name}` takes no value", command=verb.value)
                args.flags.setdefault(name, []).append(None)
        elif token.startswith("-") and len(token) > 1:
            raise UsageError(f"unknown flag `{validate.clip(token)}` (flags start with --)", command=verb.value)
        else:
            args.positionals.append(token)
        i += 1
    return args


def _cluster(args: _Args) -> str | None:
    value = args.last("--cluster")
    return None if value is None else validate.cluster_name(value)


def _no_positionals(verb: Verb, args: _Args) -> None:
    if args.positionals:
        raise UsageError(
            f"`{verb.value}` takes no arguments, got `{validate.clip(args.positionals[0])}`", command=verb.value
        )


def _dig_server(token: str) -> DnsServer:
    body = token[1:]
    validate.reject_metacharacters(body.replace("[", "").replace("]", ""), "server")
    host, port = body, 53
    if body.startswith("["):  # [v6]:port
        end = body.find("]")
        if end < 0:
            raise UsageError(f"server `{validate.clip(token)}` is missing `]`")
        host, rest = body[1:end], body[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"server `{validate.clip(token)}` must look like @[::1]:53")
            port = validate.port(rest[1:], "server port")
    elif body.count(":") == 1:  # v4:port
        host, _, port_text = body.partition(":")
        port = validate.port(port_text, "server port")
    return DnsServer(validate.ip_address(host, "server"), port)


def _parse_dig(args: _Args) -> DigCommand:
    servers: list[DnsServer] = []
    names: list[str] = []
    for token in args.positionals:
        if token.startswith("@"):
            servers.append(_dig_server(token))
        else:
            names.append(validate.dns_name(token))
    if not names:
        raise UsageError("dig needs at least one NAME, e.g. `dig kubernetes.default.svc.cluster.local`")
    if len(servers) > MAX_DIG_SERVERS:
        raise UsageError(f"at most {MAX_DIG_SERVERS} servers")
    if len(names) > MAX_DIG_NAMES:
        raise UsageError(f"at most {MAX_DIG_NAMES} names")
    types: list[str] = []
    for value in args.all("--type"):
        rdtype = value.upper()
        if rdtype not in DIG_TYPES:
            raise UsageError(f"type `{validate.clip(value)}` is not one of {', '.join(sorted(DIG_TYPES))}")
        if rdtype not in types:
            types.append(rdtype)
    repeat_text = args.last("--repeat")
    repeat = 1 if repeat_text is None else validate.integer(repeat_text, "--repeat", 1, MAX_REPEAT)
    timeout_text = args.last("--timeout")
    timeout = 2.0 if timeout_text is None else validate.seconds(timeout_text, "--timeout", 0.1, 30)
    total = max(len(servers), 1) * len(names) * max(len(types), 1) * repeat
    if total > MAX_DIG_QUERIES:
        raise UsageError(f"that is {total} queries; at most {MAX_DIG_QUERIES} per dig")
    return DigCommand(
        cluster=_cluster(args),
        servers=tuple(dict.fromkeys(servers)),
        names=tuple(dict.fromkeys(names)),
        types=tuple(types) or ("A",),
        repeat=repeat,
        timeout=timeout,
        tcp=args.has("--tcp"),
    )


def _parse_check(args: _Args) -> CheckCommand:
    names = tuple(dict.fromkeys(validate.dns_name(t) for t in args.positionals))
    if len(names) > MAX_CHECK_NAMES:
        raise UsageError(f"at most {MAX_CHECK_NAMES} names")
    repeat_text = args.last("--repeat")
    repeat = 1 if repeat_text is None else validate.integer(repeat_text, "--repeat", 1, MAX_REPEAT)
    nodes_text = args.last("--nodes")
    nodes: int | None = None
    if nodes_text is not None:
        nodes = 0 if nodes_text == "all" else validate.integer(nodes_text, "--nodes", 1, MAX_NODES)
    return CheckCommand(cluster=_cluster(args), names=names, repeat=repeat, nodes=nodes)


def _parse_capture(args: _Args) -> CaptureCommand:
    _no_positionals(Verb.CAPTURE, args)
    pods = tuple(dict.fromkeys(ObjectRef(*validate.object_ref(v)) for v in args.all("--pod")))
    if len(pods) > 10:
        raise UsageError("at most 10 pods per capture")
    duration_text = args.last("--duration")
    duration = (
        CAPTURE_DEFAULT_S
        if duration_text is None
        else validate.duration(duration_text, "--duration", CAPTURE_MIN_S, CAPTURE_MAX_S)
    )
    filter_text = args.last("--filter")
    expr = "port 53" if filter_text is None else capture_filter.normalize(filter_text)
    # With neither --coredns nor --pod the guide's default applies: every CoreDNS pod.
    coredns = args.has("--coredns") or not pods
    return CaptureCommand(
        cluster=_cluster(args), coredns=coredns, pods=pods, duration_s=duration, filter=expr
    )


def _parse_analyze(args: _Args) -> AnalyzeCommand:
    files = tuple(validate.file_name(t) for t in args.positionals)
    slow_text = args.last("--slow")
    slow = 5.0 if slow_text is None else validate.seconds(slow_text, "--slow", 0.001, 60)
    return AnalyzeCommand(cluster=_cluster(args), files=files, slow_s=slow)


def _parse_ipam(args: _Args) -> IpamCommand:
    _no_positionals(Verb.IPAM, args)
    node = args.last("--node")
    return IpamCommand(cluster=_cluster(args), node=None if node is None else validate.node_name(node))


def _parse_service(args: _Args) -> ServiceCommand:
    if len(args.positionals) != 1:
        raise UsageError("service needs exactly one NAMESPACE/NAME", command="service")
    ref = ObjectRef(*validate.object_ref(args.positionals[0]))
    port_text = args.last("--port")
    port = None if port_text is None else validate.port(port_text, "--port")
    return ServiceCommand(cluster=_cluster(args), ref=ref, port=port)


def _simple(cls: type[HealthCommand | ApiserverCommand | HandoffCommand]) -> Callable[[_Args], Command]:
    def parse(args: _Args) -> Command:
        _no_positionals(cls.verb, args)
        return cls(cluster=_cluster(args))

    return parse


def _parse_help(args: _Args) -> HelpCommand:
    topic = args.positionals[0].lower() if args.positionals else None
    if topic is not None and topic not in {v.value for v in Verb}:
        raise UsageError(f"no help on `{validate.clip(topic)}`; try `help`")
    return HelpCommand(topic=topic)


_PARSERS: dict[Verb, Callable[[_Args], Command]] = {
    Verb.HELP: _parse_help,
    Verb.DIG: _parse_dig,
    Verb.CHECK: _parse_check,
    Verb.HEALTH: _simple(HealthCommand),
    Verb.CAPTURE: _parse_capture,
    Verb.ANALYZE: _parse_analyze,
    Verb.APISERVER: _simple(ApiserverCommand),
    Verb.IPAM: _parse_ipam,
    Verb.SERVICE: _parse_service,
    Verb.HANDOFF: _simple(HandoffCommand),
}


def parse(text: str) -> Command:
    """Parse one command line (Slack text already unescaped, or CLI words joined)."""
    tokens = tokenize(text)
    return parse_tokens(tokens)


def parse_tokens(tokens: list[str]) -> Command:
    """Parse an already-split command line (the CLI passes argv here directly)."""
    if not tokens or tokens[0] in {"-h", "--help"}:
        return HelpCommand()
    word = tokens[0].lower()
    try:
        verb = Verb(word)
    except ValueError:
        raise UsageError(f"unknown command `{validate.clip(tokens[0])}`; try `help`") from None
    rest = tokens[1:]
    if any(t in {"-h", "--help"} for t in rest):
        return HelpCommand(topic=verb.value)
    for token in rest:
        if verb is Verb.CAPTURE and token in {"(", ")"}:
            continue
        # Filter expressions are checked by their own grammar; everything else may not
        # carry shell metacharacters at all.
        if verb is not Verb.CAPTURE or not _is_filter_value(rest, token):
            validate.reject_metacharacters(token.replace("[", "").replace("]", ""), "argument")
    return _PARSERS[verb](_split(verb, rest))


def _is_filter_value(rest: list[str], token: str) -> bool:
    for i, t in enumerate(rest):
        if t is token and i > 0 and rest[i - 1] == "--filter":
            return True
        if t is token and t.startswith("--filter="):
            return True
    return False
