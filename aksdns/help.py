"""Help text for every command, shown ephemerally in Slack and by the CLI."""

from __future__ import annotations

from aksdns.commands import COMMAND_TYPES, Verb

USAGE: dict[Verb, tuple[str, str]] = {
    Verb.HELP: ("help [COMMAND]", "this help, or one command's"),
    Verb.DIG: (
        "dig [@SERVER[:PORT]]... NAME... [--type T]... [--repeat N] [--timeout S] [--tcp]",
        "query DNS servers from inside the cluster (default: the worker's resolv.conf servers)",
    ),
    Verb.CHECK: (
        "check [NAME...] [--repeat N] [--nodes N|all]",
        "layered diagnosis: CoreDNS pods, CoreDNS Service, nodes, virtual network DNS",
    ),
    Verb.HEALTH: ("health", "CoreDNS and node health: restarts, usage, logs, over-commit"),
    Verb.CAPTURE: (
        "capture [--coredns] [--pod NAMESPACE/NAME]... [--duration D] [--filter EXPR]",
        "tcpdump on CoreDNS pods and client pods (privileged; default 2m, at most 10m)",
    ),
    Verb.ANALYZE: ("analyze [FILE...] [--slow S]", "DNS statistics of pcaps uploaded to this thread"),
    Verb.APISERVER: ("apiserver", "is the API server reachable (authorized IP ranges, RBAC, endpoints)"),
    Verb.IPAM: ("ipam [--node NODE]", "pod IP exhaustion (kubenet IPAM store, Azure CNI)"),
    Verb.SERVICE: ("service NAMESPACE/NAME [--port P]", "why a Service is not reachable"),
    Verb.HANDOFF: ("handoff", "a summary of this incident thread for the next engineer"),
}

FLAG_NOTE = "Every command takes `--cluster C` to target another cluster."


def help_text(topic: str | None = None, *, prefix: str = "/aksdns") -> str:
    """Markdown help: all commands, or one."""
    if topic:
        verb = Verb(topic)
        usage, what = USAGE[verb]
        state = "" if COMMAND_TYPES[verb].available else " _(not available yet)_"
        return f"`{prefix} {usage}`{state}\n{what}.\n{FLAG_NOTE}"
    lines = ["*aksdns* — AKS DNS troubleshooting, step by step, in this thread."]
    for verb, (usage, what) in USAGE.items():
        state = "" if COMMAND_TYPES[verb].available else " _(not available yet)_"
        lines.append(f"• `{prefix} {usage}` — {what}{state}")
    lines.append(FLAG_NOTE)
    lines.append("Inside a thread, mention the bot instead: `@aksdns check`.")
    return "\n".join(lines)
