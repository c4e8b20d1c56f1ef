"""Configuration review: the coredns Corefile and coredns-custom keys against the known mistakes.

AKS imports ``coredns-custom`` keys ending in ``.override`` into the default ``.:53`` block and keys
ending in ``.server`` as server blocks of their own (docs: coredns-custom). The mistakes below are the
ones AKS users keep hitting (shared notes, aks-dns-facts.md): each issue names the key, the line and
the fix. Also the coredns-autoscaler's ladder against the cluster's size.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workers.evidence.health import Autoscaler, ConfigIssue

COREDNS_CUSTOM_DOC = "https://learn.microsoft.com/azure/aks/coredns-custom"
# Plugins CoreDNS refuses twice in one server block; the default block already has each of them.
ONCE_PER_BLOCK = ("forward", "cache", "kubernetes", "prometheus", "health", "ready", "loop", "reload")


@dataclass(frozen=True)
class Directive:
    plugin: str
    args: tuple[str, ...]
    line: int  # 1-based, in its own text
    depth: int  # 0: top level of the key (an override's plugins, a .server's block headers)
    block: str = ""  # the server block header it sits in ("" at top level)
    sub: tuple[str, ...] = ()  # first words of the lines inside its own { } (forward's policy ...)


def parse(text: str) -> tuple[list[Directive], str]:
    """Directives of a Corefile fragment with their depth; the second value is a parse error or ""."""
    out: list[Directive] = []
    depth = 0
    block = ""
    stack: list[int] = []  # index in out of the directive whose { } we are in (-1: a server block)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.replace("{", " { ").replace("}", " } ").split()
        opens, closes = words.count("{"), words.count("}")
        content = [w for w in words if w not in ("{", "}")]
        if content and closes and not opens and words[0] == "}":
            pass
        if content:
            if depth == 0 and opens and not _is_plugin_name(content[0]):
                block = " ".join(content)
                stack.append(-1)
                depth += 1
                depth -= closes
                continue
            if stack and stack[-1] >= 0 and depth > 0:
                owner = out[stack[-1]]
                out[stack[-1]] = Directive(owner.plugin, owner.args, owner.line, owner.depth, owner.block,
                                           (*owner.sub, " ".join(content)))
            else:
                out.append(Directive(content[0], tuple(content[1:]), number, depth, block))
                if opens > closes:
                    stack.append(len(out) - 1)
                    depth += opens - closes
                    continue
        for _ in range(opens):
            stack.append(-2)
            depth += 1
        for _ in range(closes):
            if not stack:
                return out, f"line {number}: a `}}` closes nothing"
            stack.pop()
            depth -= 1
            if depth == 0:
                block = ""
    if depth:
        return out, "a `{` is never closed"
    return out, ""


def _is_plugin_name(word: str) -> bool:
    # Server block headers are zones (`.:53`, `example.com`, `dns://...`); plugins are lowercase words.
    return bool(re.fullmatch(r"[a-z_][a-z0-9_]*", word)) and word not in ("dns", "tls", "https", "grpc")


def _default_block(corefile: str) -> list[Directive]:
    directives, _ = parse(corefile)
    return [d for d in directives if d.block.split()[0:1] in ([".:53"], ["."]) or d.block.startswith(".:53")]


def _reach(server: str) -> str:
    """A coarse 'where is it' for a forward target: its /16, or 'file' / 'name'."""
    host = server.removeprefix("dns://")
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "file" if "/" in host else "name"
    if ip.version == 4:
        return str(ipaddress.ip_network(f"{ip}/16", strict=False))
    return str(ipaddress.ip_network(f"{ip}/48", strict=False))


def _forward_servers(d: Directive) -> list[str]:
    return list(d.args[1:])


def lint(corefile: str, custom: Mapping[str, str]) -> tuple[ConfigIssue, ...]:
    """Every known mistake in the Corefile and the coredns-custom keys, with its line and fix."""
    issues: list[ConfigIssue] = []
    default = _default_block(corefile)
    default_plugins = {d.plugin for d in default if d.depth == 1}
    if corefile and "log" in default_plugins:
        line = next(d.line for d in default if d.plugin == "log")
        issues.append(ConfigIssue("log_on", f"coredns Corefile, line {line}", "the `log` plugin logs every query",
                                  "remove `log` (for a while only: `/aksdns coredns-log on --minutes N`)"))
    if corefile and "cache" not in default_plugins:
        issues.append(ConfigIssue("no_cache", "coredns Corefile", "the default server block has no `cache`",
                                  "put back `cache 30`: without it every query goes upstream"))
    for key in sorted(custom):
        text = custom[key] or ""
        where = f"coredns-custom key {key}"
        if not key.endswith((".override", ".server")):
            issues.append(ConfigIssue("ignored_key", where, "AKS imports only keys ending in .override or .server",
                                      f"rename it to `{key.rsplit('.', 1)[0]}.server` (a zone block) or "
                                      f"`{key.rsplit('.', 1)[0]}.override` (plugins for the default block)", "warning"))
            continue
        directives, error = parse(text)
        if error:
            issues.append(ConfigIssue("unparsable", where, f"does not parse: {error}",
                                      "fix the braces; CoreDNS keeps its old configuration and logs the error",
                                      "critical"))
            continue
        if key.endswith(".override"):
            issues += _lint_override(key, directives, default_plugins)
        else:
            issues += _lint_server(key, directives)
        issues += _lint_forwards(key, directives)
    return tuple(issues)


def _lint_override(key: str, directives: Sequence[Directive], default_plugins: set[str]) -> list[ConfigIssue]:
    issues = []
    for d in directives:
        if d.depth != 0:
            continue
        where = f"coredns-custom key {key}, line {d.line}"
        if d.plugin == "forward":
            issues.append(ConfigIssue(
                "override_forward", where,
                "a second `forward` in the default block: older CoreDNS refuses the reload (\"plugin can only be "
                "used once per Server Block\"); CoreDNS 1.9+ accepts it, but the default `forward . /etc/resolv.conf`"
                " answers first, so this one never takes effect",
                _forward_fix(key, d),
                "critical"))
        elif d.plugin in ONCE_PER_BLOCK and d.plugin in default_plugins:
            issues.append(ConfigIssue(
                "override_duplicate", where,
                f"`{d.plugin}` is already in the default block: the reload fails and the old configuration stays",
                f"remove `{d.plugin}` from {key}", "critical"))
        elif d.plugin == "log":
            issues.append(ConfigIssue("log_on", where, "the `log` plugin logs every query (CPU and log volume)",
                                      f"remove `log` from {key} when the investigation is over"))
    return issues


def _forward_fix(key: str, d: Directive) -> str:
    zone = d.args[0] if d.args else "."
    servers = " ".join(d.args[1:]) or "SERVER"
    stem = key.removesuffix(".override")
    if zone in (".", ".:53"):
        return (f"forward only the zones that need it, in a key `{stem}.server`: `corp.example.com:53 {{ forward . "
                f"{servers} }}`; to change every external name's upstream, set the virtual network's DNS servers")
    return f"move it to a server block of its own: key `{stem}.server` with `{zone}:53 {{ forward . {servers} }}`"


def _lint_server(key: str, directives: Sequence[Directive]) -> list[ConfigIssue]:
    issues = []
    blocks: dict[str, list[Directive]] = {}
    for d in directives:
        if d.block:
            blocks.setdefault(d.block, []).append(d)
    if not blocks and directives:
        return [ConfigIssue("server_without_block", f"coredns-custom key {key}, line {directives[0].line}",
                            "a .server key needs a server block (`ZONE:53 { ... }`)",
                            f"wrap it: `example.com:53 {{ {directives[0].plugin} ... }}`", "critical")]
    for header, inside in blocks.items():
        zones = header.split()
        where = f"coredns-custom key {key}, line {max(1, inside[0].line - 1)}"
        if any(z.removeprefix("dns://") in (".", ".:53", ":53") for z in zones):
            issues.append(ConfigIssue(
                "server_redefines_default", where,
                "redefines `.:53`, the default server block: CoreDNS refuses it (\"already defined\") and keeps the "
                "old configuration",
                "use a .override key for plugins in the default block, or a specific zone (`example.com:53`)",
                "critical"))
        plugins = {d.plugin for d in inside if d.depth == 1}
        if "forward" in plugins and "cache" not in plugins:
            issues.append(ConfigIssue("no_cache", where, f"server block `{header}` has no `cache`",
                                      "add `cache 30` so repeated names are not forwarded every time", "info"))
        if "log" in plugins:
            issues.append(ConfigIssue("log_on", where, f"server block `{header}` logs every query",
                                      "remove `log` when the investigation is over"))
    return issues


def _lint_forwards(key: str, directives: Sequence[Directive]) -> list[ConfigIssue]:
    issues = []
    for d in directives:
        if d.plugin != "forward":
            continue
        servers = _forward_servers(d)
        policy = next((s.split()[1] for s in d.sub if s.startswith("policy ") and len(s.split()) > 1), "random")
        reaches = {_reach(s) for s in servers}
        if len(servers) > 1 and policy == "random" and len(reaches) > 1:
            issues.append(ConfigIssue(
                "policy_random", f"coredns-custom key {key}, line {d.line}",
                f"`forward` picks at random among {', '.join(servers)}, which sit in different networks: a server "
                "that cannot resolve the zone answers a share of the queries",
                "add `policy sequential` inside the forward block (the first server first, the next on failure)"))
    return issues


# ---------------------------------------------------------------------------- the autoscaler ladder


def expected_replicas(params: Mapping[str, str], nodes: int, cores: int) -> tuple[str, str, int | None, str]:
    """(mode, parameters, replicas the cluster-proportional-autoscaler aims at, error)."""
    for mode in ("ladder", "linear"):
        if mode in params:
            raw = params[mode]
            try:
                conf = json.loads(raw)
                return mode, raw, (_ladder(conf, nodes, cores) if mode == "ladder" else _linear(conf, nodes, cores)), ""
            except (ValueError, TypeError, KeyError) as exc:
                return mode, raw, None, f"unreadable {mode} parameters: {type(exc).__name__}"
    return "", "", None, "neither ladder nor linear parameters"


def _step(table: Sequence[Sequence[int]], value: int) -> int:
    replicas = 0
    for threshold, count in sorted((int(a), int(b)) for a, b in table):
        if value >= threshold:
            replicas = count
    return replicas


def _ladder(conf: Mapping[str, object], nodes: int, cores: int) -> int:
    by_cores = _step(conf.get("coresToReplicas") or [], cores)  # type: ignore[arg-type]
    by_nodes = _step(conf.get("nodesToReplicas") or [], nodes)  # type: ignore[arg-type]
    return int(max(by_cores, by_nodes))


def _linear(conf: Mapping[str, Any], nodes: int, cores: int) -> int:
    per_core = float(conf.get("coresPerReplica") or 0)
    per_node = float(conf.get("nodesPerReplica") or 0)
    replicas = max(math.ceil(cores / per_core) if per_core else 0, math.ceil(nodes / per_node) if per_node else 0)
    if conf.get("preventSinglePointFailure") and nodes > 1:
        replicas = max(replicas, 2)
    replicas = max(replicas, int(conf.get("min") or 1))
    if conf.get("max"):
        replicas = min(replicas, int(conf["max"]))
    return int(replicas)


def autoscaler(params: Mapping[str, str] | None, nodes: int, cores: int, replicas: int | None,
               ready: int | None) -> Autoscaler:
    if params is None:
        return Autoscaler(present=False, nodes=nodes, cores=cores, replicas=replicas, ready_replicas=ready)
    mode, raw, expected, error = expected_replicas(params, nodes, cores)
    return Autoscaler(present=True, mode=mode, params=raw, expected_replicas=expected, nodes=nodes, cores=cores,
                      replicas=replicas, ready_replicas=ready, error=error)
