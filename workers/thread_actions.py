"""The buttons every job's reply in a thread carries: Re-run (what changed since) and Hand off.

Added by the runner to Slack replies only (the CLI has no thread). A command whose job already
offers a Re-run keeps its own; commands that are not re-run (help, handoff, watch) get none.
"""

from __future__ import annotations

import json

from aksdns.commands import Command, HandoffCommand, Verb
from aksdns.verbs import spec_of
from workers.report import Button, Report

RERUN = "aksdns_rerun"
HANDOFF = "aksdns_handoff"


def _value(command: Command) -> str:
    return json.dumps(command.to_dict(), sort_keys=True)


def add_thread_buttons(command: Command, report: Report) -> None:
    """Re-run first (when the command is re-run at all), Hand off last."""
    ids = {b.action_id for b in report.buttons}
    if spec_of(command).rerun_basis is not None and RERUN not in ids:
        report.buttons.insert(0, Button(RERUN, "Re-run", _value(command), "primary"))
    if command.verb is not Verb.HANDOFF and HANDOFF not in ids:
        report.buttons.append(Button(HANDOFF, "Hand off", _value(HandoffCommand(cluster=command.cluster))))
