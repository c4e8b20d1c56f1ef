"""The worker's job table, read from the verb registry (``aksdns.verbs``).

A verb's job is a dotted ``module:function`` name there, imported only when that command runs, so
that, say, a `dig` never loads the pcap core or the Kubernetes client.

:func:`run` also compares a run with the previous run of the same command in its thread (the
command's ``rerun_basis``, ``JobEnv.previous``): what changed leads the reply, and the new basis
and the one-line changes go to the thread's history.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from aksdns.commands import Command
from aksdns.errors import NotAvailableYet
from aksdns.verbs import spec_of
from workers.jobenv import JobEnv
from workers.report import Report


def load(target: str) -> Any:
    """The object a ``module:function`` name of the registry points at."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def rerun_basis(command: Command, report: Report) -> dict[str, Any] | None:
    """What a thread keeps of a result for the next run of the same command (None: nothing to compare)."""
    target = spec_of(command).rerun_basis
    if target is None:
        return None
    basis: dict[str, Any] = load(target)(report)
    return basis


def job_for(command: Command) -> Callable[[Any, JobEnv], Report]:
    """The execute function of a command's job; NotAvailableYet when none exists."""
    target = spec_of(command).job
    if target is None:
        raise NotAvailableYet(command.verb.value)
    function: Callable[[Any, JobEnv], Report] = load(target)
    return function


def run(command: Command, env: JobEnv) -> Report:
    """Run a command's job; compare it with ``env.previous``, the previous run of the same command here.

    What changed leads the reply; the report carries its basis and its changes for the history.
    """
    report = job_for(command)(command, env)
    if spec_of(command).rerun_basis is None:  # not compared here (`watch` compares its own runs)
        return report
    report.basis = rerun_basis(command, report)
    if report.basis is None or env.previous is None:
        return report
    from workers.analysis import rerun_diff  # only a Re-run compares: a first run (and the CLI) skips its import

    d = rerun_diff.diff(rerun_diff.Basis.from_dict(env.previous), rerun_diff.Basis.from_dict(report.basis))
    report.sections[:0] = rerun_diff.sections(d)
    report.changes = tuple(rerun_diff.lines(d))
    return report


def execute(command: Command, env: JobEnv) -> Report:
    """Run a command's job in-process (the worker and the CLI both come here)."""
    return run(command, env)
