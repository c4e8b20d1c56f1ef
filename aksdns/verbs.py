"""The verb registry: every command of aksdns, once.

One :class:`VerbSpec` per command holds its usage, flags (with bounds; defaults are the command
class's), how its positionals read and write back, its cross-field rules, its emoji and one-line
description, whether it is privileged, the worker's job (a dotted ``module:function`` name, so the
bot imports no worker code) and what a Re-run keeps. The grammar, the help, the parent message,
the CLI and the worker's job table all read it; a command is "available" when it has a job.

Adding a command: a class in ``aksdns/commands.py``, an entry in :data:`REGISTRY`, a job module
``workers/jobs/<verb>.py`` exposing ``execute(cmd, env) -> Report`` (and its RBAC in the chart).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aksdns import capture_filter, spans, validate
from aksdns.commands import (
    AgainCommand,
    AnalyzeCommand,
    ApiserverCommand,
    AuditCommand,
    CaptureCommand,
    CheckCommand,
    ClustersCommand,
    Command,
    CorednsLogCommand,
    DigCommand,
    DnsServer,
    HandoffCommand,
    HealthCommand,
    HelpCommand,
    IpamCommand,
    ObjectRef,
    ServiceCommand,
    UseCommand,
    Verb,
    WatchCommand,
)
from aksdns.errors import UsageError
from aksdns.flags import Choice, Count, Duration, Flag, Seconds, Switch, Text

MAX_DIG_SERVERS = 10
MAX_DIG_NAMES = 20
MAX_DIG_QUERIES = 5000  # servers × names × types × repeat: bounds one job's load
MAX_REPEAT = 50
MAX_CHECK_NAMES = 10
MAX_NODES = 100
MAX_CAPTURE_PODS = 10
CAPTURE_MIN_S = 5
MAX_HEALTH_MINUTES = 180
MAX_HEALTH_PODS = 10
MAX_VERBOSE_LOG_MINUTES = 60
CAPTURE_MAX_S = 600
WATCH_MAX_RUNS = 144  # --for / --every: a day of 10-minute runs, or two hours of one-minute runs
# The Re-run basis of a command that names none of its own: its verdict and findings.
FINDINGS_BASIS = "workers.analysis.rerun_diff:findings_basis"

# Record types a troubleshooter asks for; zone transfers and meta types are left out.
DIG_TYPES = frozenset(
    {"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA", "DS", "DNSKEY", "HTTPS", "SVCB"}
)

Fields = dict[str, Any]


def _none(verb: str) -> Callable[[list[str]], Fields]:
    def read(positionals: list[str]) -> Fields:
        if positionals:
            raise UsageError(f"`{verb}` takes no arguments, got `{validate.clip(positionals[0])}`", command=verb)
        return {}

    return read


def _no_words(_data: Mapping[str, Any]) -> list[str]:
    return []


def _same(fields: Fields) -> Fields:
    return fields


def _words(value: Any, what: str) -> list[Any]:
    """A list field of rebuilt data (names, files, servers): a list, never a bare string."""
    if not isinstance(value, list | tuple):
        raise UsageError(f"{what} must be a list")
    return list(value)


@dataclass(frozen=True)
class VerbSpec:
    """One command: how it is typed, described, authorized and run."""

    verb: Verb
    command: type[Command]
    summary: str  # one line, for help and the CLI
    emoji: str  # the mark of its parent message and progress lines
    positionals: str = ""  # the usage words before the flags, e.g. "NAME..."
    flags: tuple[Flag, ...] = ()
    read_positionals: Callable[[list[str]], Fields] | None = None  # None: takes none
    positional_fields: tuple[str, ...] = ()  # fields the positionals set
    write_positionals: Callable[[Mapping[str, Any]], list[str]] = _no_words  # rebuilt data → words
    finish: Callable[[Fields], Fields] = _same  # rules across fields (dig's query budget)
    describe: Callable[[Any], list[str]] = lambda _c: []  # words after the verb in a parent message
    privileged: bool = False  # needs AKSDNS_PRIVILEGED_USERS / _GROUPS
    confirm: bool = False  # the bot asks for a Start click (re-authorized) before queueing it
    job: str | None = None  # "module:function" the worker runs; None: not available yet
    # "module:function" (report -> dict): what a thread keeps to tell the next run of this command
    # what changed (workers.analysis.rerun_diff); None: the command is not re-run (help, handoff).
    rerun_basis: str | None = FINDINGS_BASIS
    bot: str | None = None  # "module:function" the bot answers with itself (no cluster, no queue)

    @property
    def name(self) -> str:
        return self.verb.value

    @property
    def available(self) -> bool:
        return self.job is not None or self.bot is not None

    @property
    def usage(self) -> str:
        return " ".join(w for w in (self.name, self.positionals, *(f.usage() for f in self.flags)) if w)

    def positional_reader(self) -> Callable[[list[str]], Fields]:
        return self.read_positionals or _none(self.name)

    def default(self, field_name: str) -> Any:
        """A field's default, read off the command class (the one place defaults live)."""
        for f in dataclasses.fields(self.command):
            if f.name == field_name:
                return f.default if f.default is not dataclasses.MISSING else None
        raise KeyError(field_name)


# ---------------------------------------------------------------------------- help


def _read_help(positionals: list[str]) -> Fields:
    topic = positionals[0].lower() if positionals else None
    if topic is not None and topic not in {v.value for v in Verb}:
        raise UsageError(f"no help on `{validate.clip(topic)}`; try `help`")
    return {"topic": topic}


def _write_help(data: Mapping[str, Any]) -> list[str]:
    topic = data.get("topic")
    return [] if topic is None else [str(topic)]


# ---------------------------------------------------------------------------- dig


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


def _read_dig(positionals: list[str]) -> Fields:
    servers: list[DnsServer] = []
    names: list[str] = []
    for token in positionals:
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
    return {"servers": tuple(dict.fromkeys(servers)), "names": tuple(dict.fromkeys(names))}


def _server_word(server: Any) -> str:
    if not isinstance(server, Mapping):
        raise UsageError("a server must be {host, port}")
    host = str(server.get("host", ""))
    port = server.get("port", 53)
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise UsageError("a server's port must be a number")
    host = f"[{host}]" if ":" in host else host
    return f"@{host}:{port}"


def _write_dig(data: Mapping[str, Any]) -> list[str]:
    servers = [_server_word(s) for s in _words(data.get("servers", []), "servers")]
    return servers + [str(n) for n in _words(data.get("names", []), "names")]


def _finish_dig(fields: Fields) -> Fields:
    types = fields.get("types") or ("A",)
    repeat = fields.get("repeat", 1)
    total = max(len(fields["servers"]), 1) * len(fields["names"]) * len(types) * repeat
    if total > MAX_DIG_QUERIES:
        raise UsageError(f"that is {total} queries; at most {MAX_DIG_QUERIES} per dig")
    return {**fields, "types": types}


def _describe_dig(c: DigCommand) -> list[str]:
    words = list(c.names[:3]) + (["…"] if len(c.names) > 3 else [])
    words += [f"@{s}" for s in c.servers[:3]] + (["@…"] if len(c.servers) > 3 else [])
    if c.types != ("A",):
        words.append("(" + ", ".join(c.types) + ")")
    if c.repeat > 1:
        words.append(f"×{c.repeat}")
    if c.tcp:
        words.append("over TCP")
    return words


# ---------------------------------------------------------------------------- check


def _read_names(limit: int) -> Callable[[list[str]], Fields]:
    def read(positionals: list[str]) -> Fields:
        names = tuple(dict.fromkeys(validate.dns_name(t) for t in positionals))
        if len(names) > limit:
            raise UsageError(f"at most {limit} names")
        return {"names": names}

    return read


def _write_names(data: Mapping[str, Any]) -> list[str]:
    return [str(n) for n in _words(data.get("names", []), "names")]


def _describe_check(c: CheckCommand) -> list[str]:
    words = list(c.names[:3])
    if c.repeat > 1:
        words.append(f"×{c.repeat}")
    if c.nodes is not None:
        words.append("all nodes" if c.nodes == 0 else f"{c.nodes} nodes")
    return words


# ---------------------------------------------------------------------------- capture


def _object_ref(text: str) -> ObjectRef:
    return ObjectRef(*validate.object_ref(text))


def _ref_word(value: Any) -> str:
    """A NAMESPACE/NAME from rebuilt data ({namespace, name}) or from a typed ObjectRef."""
    if isinstance(value, ObjectRef):
        return str(value)
    if not isinstance(value, Mapping):
        raise UsageError("a reference must be {namespace, name}")
    return f"{value.get('namespace', '')}/{value.get('name', '')}"


def _finish_capture(fields: Fields) -> Fields:
    pods = fields.get("pods", ())
    if len(pods) > MAX_CAPTURE_PODS:
        raise UsageError(f"at most {MAX_CAPTURE_PODS} pods per capture")
    # With no target the guide's default applies: every CoreDNS pod.
    return {**fields, "coredns": bool(fields.get("coredns")) or not (pods or fields.get("node"))}


def capture_targets(c: CaptureCommand) -> list[str]:
    """The targets in words: every CoreDNS pod, the pods, the node."""
    return (["every CoreDNS pod"] if c.coredns else []) + [str(p) for p in c.pods] + (
        [f"node {c.node}"] if c.node else [])


def _describe_capture(c: CaptureCommand) -> list[str]:
    return [", ".join(capture_targets(c)), f"for {c.duration_s}s", f"filter {c.filter!r}"] + (
        ["(live)"] if c.live else [])


# ---------------------------------------------------------------------------- apiserver


def _describe_apiserver(c: ApiserverCommand) -> list[str]:
    words = [f"as {c.service_account}"] if c.service_account else []
    return words + ([f"client {c.client_ip}"] if c.client_ip else [])


# ---------------------------------------------------------------------------- analyze, ipam, service


def _read_files(positionals: list[str]) -> Fields:
    return {"files": tuple(validate.file_name(t) for t in positionals)}


def _write_files(data: Mapping[str, Any]) -> list[str]:
    return [str(f) for f in _words(data.get("files", []), "files")]


def _describe_analyze(c: AnalyzeCommand) -> list[str]:
    return list(c.files[:3]) or ["the thread's captures"]


def _read_service(positionals: list[str]) -> Fields:
    if len(positionals) != 1:
        raise UsageError("service needs exactly one NAMESPACE/NAME", command="service")
    return {"ref": _object_ref(positionals[0])}


def _write_service(data: Mapping[str, Any]) -> list[str]:
    return [_ref_word(data["ref"])] if "ref" in data else []


def _describe_service(c: ServiceCommand) -> list[str]:
    return [str(c.ref) + (f":{c.port}" if c.port else "")]


# ---------------------------------------------------------------------------- watch, again, use, audit


def _read_watch(positionals: list[str]) -> Fields:
    """The watched command: its words (quoted when it has flags of its own), parsed by the grammar."""
    from aksdns import grammar  # the grammar reads this registry: import it when a watch is parsed

    words = " ".join(positionals).split()
    if not words:
        raise UsageError('watch needs a command, e.g. `watch check --every 5 --for 2` (quote one with flags: '
                         '`watch "check --repeat 3" --every 5`)', command="watch")
    inner = grammar.parse_tokens(words)
    spec = spec_of(inner)
    if spec.privileged:
        raise UsageError(f"only read-only commands can be watched; `{spec.name}` is privileged", command="watch")
    if spec.verb in {Verb.HELP, Verb.WATCH, Verb.HANDOFF} or spec.job is None:
        raise UsageError(f"`{spec.name}` cannot be watched; watch a diagnosis such as `check` or `dig`",
                         command="watch")
    bare = grammar.command_words({**inner.to_dict(), "args": {**inner.to_dict()["args"], "cluster": None}})
    return {"target": " ".join(bare), "target_cluster": inner.cluster}


def _write_watch(data: Mapping[str, Any]) -> list[str]:
    target = data.get("target")
    if not isinstance(target, str) or not target:
        raise UsageError("a watch's target must be a command")
    return [target]


def _finish_watch(fields: Fields) -> Fields:
    inner_cluster = fields.pop("target_cluster", None)
    if inner_cluster and fields.get("cluster") and inner_cluster != fields["cluster"]:
        raise UsageError("give the cluster once: `watch check --cluster C`", command="watch")
    fields["cluster"] = fields.get("cluster") or inner_cluster
    every = fields.get("every_s", WatchCommand.every_s)
    length = fields.get("for_s", WatchCommand.for_s)
    if every > length:
        raise UsageError("--every is longer than --for: nothing would repeat", command="watch")
    if length // every > WATCH_MAX_RUNS:
        raise UsageError(f"that is {length // every} runs; at most {WATCH_MAX_RUNS} per watch", command="watch")
    return fields


def _describe_watch(c: WatchCommand) -> list[str]:
    return [c.target, f"every {spans.span_text(c.every_s)}", f"for {spans.span_text(c.for_s)}"]


def _read_again(positionals: list[str]) -> Fields:
    if len(positionals) > 1:
        raise UsageError("again takes at most one command name, e.g. `again check`", command="again")
    if not positionals:
        return {"what": None}
    word = positionals[0].lower()
    if word not in {v.value for v in Verb}:
        raise UsageError(f"`{validate.clip(word)}` is not a command", command="again")
    return {"what": word}


def _read_use(positionals: list[str]) -> Fields:
    if len(positionals) > 1:
        raise UsageError("use takes one cluster name", command="use")
    return {"target": validate.cluster_name(positionals[0]) if positionals else None}


def _one(field_name: str) -> Callable[[Mapping[str, Any]], list[str]]:
    def write(data: Mapping[str, Any]) -> list[str]:
        value = data.get(field_name)
        return [] if value is None else [str(value)]

    return write
# ---------------------------------------------------------------------------- health, coredns-log


def _finish_health(fields: Fields) -> Fields:
    if len(fields.get("pods", ())) > MAX_HEALTH_PODS:
        raise UsageError(f"at most {MAX_HEALTH_PODS} client pods")
    return fields


def _describe_health(c: HealthCommand) -> list[str]:
    words = [f"logs of the last {c.minutes} min"]
    return words + [f"client {p}" for p in c.pods[:3]]


def _read_switch(positionals: list[str]) -> Fields:
    if len(positionals) != 1 or positionals[0].lower() not in ("on", "off"):
        raise UsageError("coredns-log takes `on` or `off`, e.g. `coredns-log on --minutes 10`", command="coredns-log")
    return {"state": positionals[0].lower()}


def _write_switch(data: Mapping[str, Any]) -> list[str]:
    return [str(data.get("state", "on"))]


def _describe_coredns_log(c: CorednsLogCommand) -> list[str]:
    return [f"on for {c.minutes} min" if c.state == "on" else "off"]


# ---------------------------------------------------------------------------- the registry

NODE = Text("NODE", validate.node_name)

REGISTRY: dict[Verb, VerbSpec] = {
    spec.verb: spec
    for spec in (
        VerbSpec(
            Verb.HELP,
            HelpCommand,
            "this help, or one command's",
            "❔",
            positionals="[COMMAND]",
            read_positionals=_read_help,
            positional_fields=("topic",),
            write_positionals=_write_help,
            rerun_basis=None,
        ),
        VerbSpec(
            Verb.DIG,
            DigCommand,
            "query DNS servers from inside the cluster (default: the worker's resolv.conf servers)",
            "🔎",
            positionals="[@SERVER[:PORT]]... NAME...",
            flags=(
                Flag("--type", "types", Choice(DIG_TYPES), "record type (A unless given)", repeated=True),
                Flag("--repeat", "repeat", Count(1, MAX_REPEAT), "ask each question N times"),
                Flag("--timeout", "timeout", Seconds(0.1, 30), "seconds to wait for each answer"),
                Flag("--tcp", "tcp", Switch(), "ask over TCP"),
            ),
            read_positionals=_read_dig,
            positional_fields=("servers", "names"),
            write_positionals=_write_dig,
            finish=_finish_dig,
            describe=_describe_dig,
            job="workers.jobs.dig:execute",
            rerun_basis="workers.analysis.dig_basis:rerun_basis",
        ),
        VerbSpec(
            Verb.CHECK,
            CheckCommand,
            "layered diagnosis: CoreDNS pods, CoreDNS Service, nodes, virtual network DNS",
            "🩺",
            positionals="[NAME...]",
            flags=(
                Flag("--repeat", "repeat", Count(1, MAX_REPEAT), "ask each question N times per layer"),
                Flag("--nodes", "nodes", Count(1, MAX_NODES, {"all": 0}), "nodes to probe (default: a sample)"),
            ),
            read_positionals=_read_names(MAX_CHECK_NAMES),
            positional_fields=("names",),
            write_positionals=_write_names,
            describe=_describe_check,
            job="workers.jobs.check:execute",
            rerun_basis="workers.analysis.check_diff:rerun_basis",
        ),
        VerbSpec(
            Verb.HEALTH,
            HealthCommand,
            "CoreDNS and node health: pods, usage, metrics, nodes, logs, configuration, LocalDNS",
            "❤️",
            flags=(
                Flag("--minutes", "minutes", Count(1, MAX_HEALTH_MINUTES), "minutes of CoreDNS logs to read"),
                Flag("--pod", "pods", Text("NAMESPACE/NAME", _object_ref, _ref_word),
                     "a client pod whose node is reviewed too", repeated=True),
            ),
            finish=_finish_health,
            describe=_describe_health,
            job="workers.jobs.health:execute",
            rerun_basis="workers.analysis.health_basis:rerun_basis",
        ),
        VerbSpec(
            Verb.COREDNS_LOG,
            CorednsLogCommand,
            "log every CoreDNS query for N minutes, then revert by itself (privileged; asks first)",
            "📝",
            positionals="on|off",
            flags=(
                Flag("--minutes", "minutes", Count(1, MAX_VERBOSE_LOG_MINUTES), "how long the log plugin stays on"),
                Flag("--yes", "confirmed", Switch(), "skip the confirmation (command line)"),
            ),
            read_positionals=_read_switch,
            positional_fields=("state",),
            write_positionals=_write_switch,
            describe=_describe_coredns_log,
            privileged=True,
            job="workers.jobs.coredns_log:execute",
            # A change, not a diagnosis: no Re-run (a re-run of a confirmed `on` would skip the question).
            rerun_basis=None,
        ),
        VerbSpec(
            Verb.CAPTURE,
            CaptureCommand,
            "packet capture on CoreDNS pods, client pods or a node, merged and analysed (privileged; 2m, at most 10m)",
            "🎥",
            flags=(
                Flag("--coredns", "coredns", Switch(), "every CoreDNS pod (the default without --pod)"),
                Flag(
                    "--pod",
                    "pods",
                    Text("NAMESPACE/NAME", _object_ref, _ref_word),
                    "a client pod",
                    repeated=True,
                ),
                Flag("--node", "node", NODE, "a node's host network"),
                Flag("--duration", "duration_s", Duration(CAPTURE_MIN_S, CAPTURE_MAX_S), "how long"),
                Flag("--filter", "filter", Text("EXPR", capture_filter.normalize), "tcpdump filter (a safe subset)"),
                Flag("--live", "live", Switch(), "decoded DNS rows as it runs, attached as CSV, instead of a pcap"),
            ),
            finish=_finish_capture,
            describe=_describe_capture,
            privileged=True,
            confirm=True,
            job="workers.jobs.capture:execute",
        ),
        VerbSpec(
            Verb.ANALYZE,
            AnalyzeCommand,
            "DNS statistics of pcaps uploaded to this thread",
            "🔬",
            positionals="[FILE...]",
            flags=(Flag("--slow", "slow_s", Seconds(0.001, 60), "answers this slow or slower count as slow"),),
            read_positionals=_read_files,
            positional_fields=("files",),
            write_positionals=_write_files,
            describe=_describe_analyze,
            job="workers.jobs.analyze:execute",
        ),
        VerbSpec(
            Verb.APISERVER,
            ApiserverCommand,
            "reach the API server stage by stage from the worker and every node; name the cause",
            "🔐",
            flags=(
                Flag(
                    "--as",
                    "service_account",
                    Text("NAMESPACE/SERVICEACCOUNT", _object_ref, _ref_word),
                    "what this ServiceAccount may and may not do (and the RBAC to fix it)",
                ),
                Flag("--client", "client_ip", Text("IP", lambda t: validate.ip_address(t, "--client")),
                     "is this client address inside the authorized IP ranges (needs Azure)"),
            ),
            describe=_describe_apiserver,
            job="workers.jobs.apiserver:execute",
            rerun_basis="workers.analysis.check_diff:rerun_basis"  # same layers/facts shape as check,
        ),
        VerbSpec(
            Verb.IPAM,
            IpamCommand,
            "pods that cannot get an IP address: allocated vs running per node (kubenet store, Azure CNI)",
            "🧮",
            flags=(Flag("--node", "node", NODE, "one node only"),),
            describe=lambda c: [c.node] if c.node else [],
            job="workers.jobs.ipam:execute",
            rerun_basis="workers.analysis.netcmd_basis:ipam_basis",
        ),
        VerbSpec(
            Verb.SERVICE,
            ServiceCommand,
            "why a Service is not reachable: the first failing rung from its name to its pods",
            "🔌",
            positionals="NAMESPACE/NAME",
            flags=(Flag("--port", "port", Text("P", lambda t: validate.port(t, "--port")), "one port only"),),
            read_positionals=_read_service,
            positional_fields=("ref",),
            write_positionals=_write_service,
            describe=_describe_service,
            job="workers.jobs.service:execute",
            rerun_basis="workers.analysis.netcmd_basis:service_basis",
        ),
        VerbSpec(
            Verb.HANDOFF,
            HandoffCommand,
            "this thread as an incident record for the next engineer (timeline, hypotheses, actions; also Markdown)",
            "🤝",
            job="workers.jobs.handoff:execute",
            rerun_basis=None,
        ),
        VerbSpec(
            Verb.WATCH,
            WatchCommand,
            "repeat a read-only command and post only what changed (stop it with its button)",
            "👀",
            positionals="COMMAND",
            flags=(
                Flag("--every", "every_s", spans.Span("m", 60, 3600), "how often"),
                Flag("--for", "for_s", spans.Span("h", 300, 86400), "for how long"),
            ),
            read_positionals=_read_watch,
            positional_fields=("target",),
            write_positionals=_write_watch,
            finish=_finish_watch,
            describe=_describe_watch,
            job="workers.jobs.watch:execute",
            rerun_basis=None,
        ),
        VerbSpec(
            Verb.AGAIN,
            AgainCommand,
            "run this thread's last command (or its last COMMAND) again and say what changed",
            "🔁",
            positionals="[COMMAND]",
            read_positionals=_read_again,
            positional_fields=("what",),
            write_positionals=_one("what"),
            describe=lambda c: [c.what] if c.what else [],
            bot="bot.incident:again",
            rerun_basis=None,
        ),
        VerbSpec(
            Verb.USE,
            UseCommand,
            "set this channel's default cluster (without CLUSTER: show it)",
            "🎯",
            positionals="[CLUSTER]",
            read_positionals=_read_use,
            positional_fields=("target",),
            write_positionals=_one("target"),
            describe=lambda c: [c.target] if c.target else [],
            bot="bot.incident:use",
            rerun_basis=None,
        ),
        VerbSpec(
            Verb.CLUSTERS,
            ClustersCommand,
            "clusters with a live worker: versions, queue depth, jobs running",
            "🗺️",
            bot="bot.incident:clusters",
            rerun_basis=None,
        ),
        VerbSpec(
            Verb.AUDIT,
            AuditCommand,
            "who ran what, where, and what was allowed (privileged)",
            "📜",
            flags=(
                Flag("--user", "user", Text("U", spans.slack_user), "one member ID only"),
                Flag("--since", "since", Text("T", spans.since), "a span back (2h, 3d) or a UTC date"),
            ),
            describe=lambda c: [w for w in (c.user and f"by {c.user}", f"since {c.since}") if w],
            privileged=True,
            bot="bot.incident:audit",
            rerun_basis=None,
        ),
    )
}


def spec_of(command: Command | Verb) -> VerbSpec:
    """The registry entry of a command (or verb)."""
    return REGISTRY[command if isinstance(command, Verb) else command.verb]
