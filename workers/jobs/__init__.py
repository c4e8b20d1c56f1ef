"""The worker's job table, read from the verb registry (``aksdns.verbs``).

A verb's job is a dotted ``module:function`` name there, imported only when that command runs, so
that, say, a `dig` never loads the pcap core or the Kubernetes client.
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


def rerun_basis(command: Command, data: dict[str, Any]) -> dict[str, Any] | None:
    """What a thread keeps of a result for the next Re-run (None: nothing to compare)."""
    target = spec_of(command).rerun_basis
    if target is None:
        return None
    basis: dict[str, Any] = load(target)(data)
    return basis


def job_for(command: Command) -> Callable[[Any, JobEnv], Report]:
    """The execute function of a command's job; NotAvailableYet when none exists."""
    target = spec_of(command).job
    if target is None:
        raise NotAvailableYet(command.verb.value)
    function: Callable[[Any, JobEnv], Report] = load(target)
    return function


def execute(command: Command, env: JobEnv) -> Report:
    """Run a command's job in-process (the worker and the CLI both come here)."""
    return job_for(command)(command, env)
