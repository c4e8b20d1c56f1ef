"""Short, safe one-line descriptions of commands for parent messages and logs.

Built from the parsed command (each verb's ``describe`` in ``aksdns.verbs``), never from the
user's raw text, so nothing a user typed (a `<!channel>`, a link) is echoed into the channel.
"""

from __future__ import annotations

from aksdns.commands import Command
from aksdns.verbs import spec_of


def emoji(command: Command) -> str:
    """The mark a command's parent message and progress lines carry."""
    return spec_of(command).emoji


def describe(command: Command) -> str:
    """E.g. `dig microsoft.com @10.0.0.10 (A, AAAA) ×5`."""
    words = [command.verb.value, *spec_of(command).describe(command)]
    if command.cluster:
        words.append(f"on {command.cluster}")
    return " ".join(w for w in words if w)
