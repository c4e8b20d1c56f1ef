"""The command grammar: text after `/aksdns` (or an @mention) → a typed command.

One pure parser shared by Slack and the CLI, driven by the verb registry (``aksdns.verbs``).
Anything it does not understand is a :class:`UsageError` whose message names the problem in one
short line. Commands rebuilt from data (a button's value, a job spec read by the worker) are
written back as words and parsed here again, so they pass exactly the checks typed text passes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from aksdns import validate
from aksdns.commands import Command, HelpCommand, Verb
from aksdns.errors import UsageError
from aksdns.flags import CLUSTER_FLAG, split, values
from aksdns.verbs import VerbSpec, spec_of

MAX_TEXT_LENGTH = 1000
MAX_TOKENS = 64

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


def parse(text: str) -> Command:
    """Parse one command line (Slack text already unescaped, or CLI words joined)."""
    return parse_tokens(tokenize(text))


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
    spec = spec_of(verb)
    _reject_metacharacters(spec, rest)
    args = split(verb.value, rest, spec.flags)
    fields = {**spec.positional_reader()(args.positionals), **values(args, spec.flags)}
    return spec.command(**spec.finish(fields))


def _reject_metacharacters(spec: VerbSpec, rest: list[str]) -> None:
    """No token may carry shell metacharacters, except what a checked filter expression allows."""
    filter_values = _values_of(rest, "--filter") if spec.verb is Verb.CAPTURE else set()
    for i, token in enumerate(rest):
        if spec.verb is Verb.CAPTURE and token in {"(", ")"}:
            continue
        if i in filter_values:
            continue  # filter expressions are checked by their own grammar (aksdns.capture_filter)
        validate.reject_metacharacters(token.replace("[", "").replace("]", ""), "argument")


def _values_of(rest: list[str], flag: str) -> set[int]:
    """Positions of the values given to ``flag`` (``--flag V`` or ``--flag=V``)."""
    out = set()
    for i, token in enumerate(rest):
        if token.startswith(flag + "="):
            out.add(i)
        elif token == flag and i + 1 < len(rest):
            out.add(i + 1)
    return out


def command_words(data: Mapping[str, Any]) -> list[str]:
    """A command's data (``Command.to_dict()`` form) written back as the words that type it."""
    if not isinstance(data, Mapping):
        raise UsageError("not a command")
    try:
        verb = Verb(str(data.get("verb")))
    except ValueError:
        raise UsageError(f"unknown command `{validate.clip(str(data.get('verb')))}`") from None
    args = data.get("args") or {}
    if not isinstance(args, Mapping):
        raise UsageError("a command's args must be an object")
    spec = spec_of(verb)
    by_field = {f.field: f for f in (*spec.flags, CLUSTER_FLAG)}
    positionals = spec.write_positionals({k: v for k, v in args.items() if k in spec.positional_fields})
    if any(w.startswith("-") for w in positionals):
        raise UsageError("a name, file or server may not start with `-`")
    words = [verb.value, *positionals]
    for key, value in args.items():
        if key in spec.positional_fields:
            continue
        flag = by_field.get(str(key))
        if flag is None:
            raise UsageError(f"unknown field `{validate.clip(str(key))}` for `{verb.value}`")
        default = spec.default(flag.field)
        if value is None or (type(value) is type(default) and value == default):
            continue  # the default: nothing to type (True == 1 in Python, hence the type check)
        for item in (_list(value, flag.name) if flag.repeated else [value]):
            words += flag.kind.render(item, flag.name)
    return words


def _list(value: Any, flag: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise UsageError(f"`{flag}` takes a list")
    return list(value)


def command_from_dict(data: Mapping[str, Any]) -> Command:
    """A command from data (a button's value, a job spec), validated exactly as typed text is."""
    words = command_words(data)
    # The bounds typed text has: data cannot ask for more than a user could type.
    if len(words) > MAX_TOKENS or len(" ".join(words)) > MAX_TEXT_LENGTH:
        raise UsageError(f"command is longer than {MAX_TEXT_LENGTH} characters or {MAX_TOKENS} words")
    command = parse_tokens(words)
    if isinstance(command, HelpCommand) and data.get("verb") != Verb.HELP.value:
        raise UsageError("not a command")  # `--help` smuggled in as a value
    return command

