"""Help text for every command, from the verb registry; shown ephemerally in Slack and by the CLI."""

from __future__ import annotations

from aksdns.commands import Verb
from aksdns.verbs import REGISTRY, VerbSpec, spec_of

FLAG_NOTE = "Every command takes `--cluster C` to target another cluster."
NOT_AVAILABLE = " _(not available yet)_"


def _flag_lines(spec: VerbSpec) -> list[str]:
    lines = []
    for f in spec.flags:
        facts = [b for b in (f.kind.bounds(),) if b]
        default = spec.default(f.field)
        if f.takes_value and default not in (None, (), ""):
            shown = ", ".join(map(str, default)) if isinstance(default, tuple) else str(default)
            facts.append(f"default {shown}")
        extra = f" ({'; '.join(facts)})" if facts else ""
        lines.append(f"• `{f.synopsis}` — {f.help}{extra}")
    return lines


def help_text(topic: str | None = None, *, prefix: str = "/aksdns") -> str:
    """Markdown help: all commands, or one with its flags, bounds and defaults."""
    if topic:
        spec = spec_of(Verb(topic))
        state = "" if spec.available or spec.verb is Verb.HELP else NOT_AVAILABLE
        return "\n".join([f"`{prefix} {spec.usage}`{state}", f"{spec.summary}.", *_flag_lines(spec), FLAG_NOTE])
    lines = ["*aksdns* — AKS DNS troubleshooting, step by step, in this thread."]
    for spec in REGISTRY.values():
        state = "" if spec.available or spec.verb is Verb.HELP else NOT_AVAILABLE
        lines.append(f"• `{prefix} {spec.usage}` — {spec.summary}{state}")
    lines.append(FLAG_NOTE)
    lines.append("Inside a thread, mention the bot instead: `@aksdns check`.")
    return "\n".join(lines)
