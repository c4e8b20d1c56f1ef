"""One job per command; this registry maps a verb to its ``execute(cmd, env) -> Report``.

Job modules are imported lazily so that, say, a `dig` never loads the pcap core or the
Kubernetes client.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from aksdns.commands import Command, Verb
from aksdns.errors import NotAvailableYet
from workers.jobenv import JobEnv
from workers.report import Report

# verb → (module, function)
_JOBS: dict[Verb, tuple[str, str]] = {
    Verb.DIG: ("workers.jobs.dig", "execute"),
    Verb.CHECK: ("workers.jobs.check", "execute"),
    Verb.ANALYZE: ("workers.jobs.analyze_run", "execute"),
}


# verb → (module, function) that reduces a report's data to what a Re-run compares against
_RERUN_BASIS: dict[Verb, tuple[str, str]] = {
    Verb.CHECK: ("workers.analysis.check_diff", "diff_basis"),
}


def rerun_basis(command: Command, data: dict[str, Any]) -> dict[str, Any] | None:
    """What a thread keeps of a result for the next Re-run (None: nothing to compare)."""
    target = _RERUN_BASIS.get(command.verb)
    if target is None:
        return None
    basis: dict[str, Any] = getattr(importlib.import_module(target[0]), target[1])(data)
    return basis


def job_for(command: Command) -> Callable[[Any, JobEnv], Report]:
    """The execute function of a command's job; NotAvailableYet when none exists."""
    target = _JOBS.get(command.verb)
    if target is None or not command.available:
        raise NotAvailableYet(command.verb.value)
    module = importlib.import_module(target[0])
    function: Callable[[Any, JobEnv], Report] = getattr(module, target[1])
    return function


def execute(command: Command, env: JobEnv) -> Report:
    """Run a command's job in-process (the worker and the CLI both come here)."""
    return job_for(command)(command, env)
