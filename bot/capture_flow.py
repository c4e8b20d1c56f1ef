"""The messages around a guarded command (`capture`): confirm, then Start or Cancel, then Stop.

A privileged command that asks for raw-socket rights on someone's pods is not queued when typed: the
bot posts a confirmation naming the targets, the filter and the duration with Start and Cancel
buttons; a click is authorized again for whoever clicks. Start queues it and turns the message into a
Stop button for the run. Pure builders only; the listeners are in ``bot.app``.
"""

from __future__ import annotations

import json
from typing import Any

from aksdns.commands import CaptureCommand, Command
from aksdns.describe import emoji
from aksdns.verbs import capture_targets

START = "aksdns_capture_start"
CANCEL = "aksdns_capture_cancel"
STOP = "aksdns_capture_stop"


def command_value(command: Command) -> str:
    return json.dumps(command.to_dict(), sort_keys=True)


def stop_value(job_id: str, command: Command) -> str:
    return json.dumps({"job": job_id, "command": command.to_dict()}, sort_keys=True)


def read_stop_value(value: str) -> tuple[str, dict[str, Any]]:
    """(job id, command data) of a Stop button; ValueError when it is not one."""
    data = json.loads(value)
    job = str(data.get("job", ""))
    if not job or len(job) > 64 or not all(c in "0123456789abcdef" for c in job):
        raise ValueError("not a job id")
    return job, dict(data.get("command") or {})


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def what_it_does(command: Command, cluster: str) -> str:
    if not isinstance(command, CaptureCommand):
        return f"`{command.verb.value}` on cluster `{cluster}`"
    targets = ", ".join(capture_targets(command))
    kind = "decode DNS as it runs (`--live`)" if command.live else "capture packets"
    return (f"{emoji(command)} *Confirm the capture* on cluster `{cluster}`: {kind} on *{targets}* "
            f"for *{command.duration_s} s* with filter `{command.filter}`.\n"
            "It adds a capture container (NET_RAW and NET_ADMIN) to each target pod, or a capture pod on "
            "its node; all of them end by themselves at the deadline.")


def confirmation(command: Command, *, user: str, cluster: str) -> tuple[str, list[dict[str, Any]]]:
    """The confirmation message: what will happen, with Start and Cancel."""
    text = what_it_does(command, cluster)
    value = command_value(command)
    blocks = [
        _section(text + f"\nAsked by <@{user}>. Only a privileged user's click starts it."),
        {"type": "actions", "elements": [
            {"type": "button", "action_id": START, "text": {"type": "plain_text", "text": "Start"},
             "style": "primary", "value": value},
            {"type": "button", "action_id": CANCEL, "text": {"type": "plain_text", "text": "Cancel"},
             "value": value},
        ]},
    ]
    return text, blocks


def started(command: Command, *, user: str, cluster: str, job_id: str) -> tuple[str, list[dict[str, Any]]]:
    text = f"▶️ Started by <@{user}>: " + what_it_does(command, cluster).split(": ", 1)[-1].split("\n")[0]
    blocks = [
        _section(text + "\nProgress and results follow in this thread."),
        {"type": "actions", "elements": [
            {"type": "button", "action_id": STOP, "text": {"type": "plain_text", "text": "Stop"},
             "style": "danger", "value": stop_value(job_id, command)},
        ]},
    ]
    return text, blocks


def closed(text: str) -> tuple[str, list[dict[str, Any]]]:
    """The confirmation once it is over: no buttons left."""
    return text, [_section(text)]
