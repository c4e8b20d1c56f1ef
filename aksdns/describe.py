"""Short, safe one-line descriptions of commands for parent messages and logs.

Built from the parsed command, never from the user's raw text, so nothing a user typed
(a `<!channel>`, a link) is echoed into the channel.
"""

from __future__ import annotations

from aksdns.commands import (
    AnalyzeCommand,
    CaptureCommand,
    CheckCommand,
    Command,
    DigCommand,
    IpamCommand,
    ServiceCommand,
)

VERB_EMOJI = {"dig": "🔎", "check": "🩺", "analyze": "🔬", "capture": "🎥"}


def emoji(command: Command) -> str:
    """The mark a command's parent message and progress lines carry."""
    return VERB_EMOJI.get(command.verb.value, "⚙️")


def describe(command: Command) -> str:
    """E.g. `dig microsoft.com @10.0.0.10 (A, AAAA) ×5`."""
    words = [command.verb.value]
    if isinstance(command, DigCommand):
        words += list(command.names[:3]) + (["…"] if len(command.names) > 3 else [])
        words += [f"@{s}" for s in command.servers[:3]] + (["@…"] if len(command.servers) > 3 else [])
        if command.types != ("A",):
            words.append("(" + ", ".join(command.types) + ")")
        if command.repeat > 1:
            words.append(f"×{command.repeat}")
        if command.tcp:
            words.append("over TCP")
    elif isinstance(command, CheckCommand):
        words += list(command.names[:3])
        if command.repeat > 1:
            words.append(f"×{command.repeat}")
        if command.nodes is not None:
            words.append("all nodes" if command.nodes == 0 else f"{command.nodes} nodes")
    elif isinstance(command, CaptureCommand):
        targets = (["CoreDNS pods"] if command.coredns else []) + [str(p) for p in command.pods]
        words += [", ".join(targets), f"for {command.duration_s}s", f"filter `{command.filter}`"]
    elif isinstance(command, AnalyzeCommand):
        words += list(command.files[:3]) or ["the thread's captures"]
    elif isinstance(command, IpamCommand) and command.node:
        words.append(command.node)
    elif isinstance(command, ServiceCommand):
        words.append(str(command.ref) + (f":{command.port}" if command.port else ""))
    if command.cluster:
        words.append(f"on {command.cluster}")
    return " ".join(w for w in words if w)
