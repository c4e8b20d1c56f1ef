"""A job that answered in its thread while Redis was down: its record kept on the worker's disk.

The work-horse posts a job's answer first, then waits (within the job's time) for Redis to record
it. When Redis stays down longer, RQ cannot write the job's end either; once Redis answers again,
RQ's maintenance pass finds the job still "started" and reports it as stopped with its worker — a
❌ under the real answer. So the work-horse leaves here what the record needs (the thread's outcome,
its Re-run basis, RQ's result), and the worker's main process — which forked it and saw the job's
end go unwritten — records it and marks the job finished in RQ before its next maintenance pass
(:meth:`workers.rqworker.AksDnsWorker.settle`).

One JSON file per job (never pickle), readable by this user only, under the worker's name: several
workers may share a machine's temporary directory. A file nobody settles is left to the pod's
``/tmp``; the worker that wrote it looks for it only for the jobs it ran.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aksdns.results import Outcome

log = logging.getLogger(__name__)

WORKER_ENV = "RQ_WORKER_ID"  # RQ names the worker in the environment before it forks a work-horse
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class Kept:
    """What the work-horse could not write to Redis."""

    result: dict[str, Any]  # run_job's return value: RQ's result of the job
    ended_at: float  # when the job ended (epoch seconds)
    outcome: Outcome | None = None  # the thread's history line (None: the job adds none, or it was recorded)
    basis: dict[str, Any] | None = None  # its Re-run basis

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "ended_at": self.ended_at, "basis": self.basis,
                "outcome": json.loads(self.outcome.to_json()) if self.outcome is not None else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Kept:
        outcome = data.get("outcome")
        return cls(result=dict(data["result"]), ended_at=float(data["ended_at"]),
                   outcome=Outcome.from_dict(outcome) if isinstance(outcome, dict) else None,
                   basis=data.get("basis") if isinstance(data.get("basis"), dict) else None)


def directory(worker: str) -> Path:
    return Path(tempfile.gettempdir()) / "aksdns-unsettled" / worker


def _path(worker: str, job_id: str) -> Path | None:
    if not (_SAFE.fullmatch(worker) and _SAFE.fullmatch(job_id)):
        return None
    return directory(worker) / f"{job_id}.json"


def keep(job_id: str, kept: Kept, worker: str | None = None) -> Path | None:
    """Leave ``kept`` for the worker's main process; None when no RQ worker runs this job (nobody
    would settle it) or the disk refused (logged: the answer is in the thread either way)."""
    path = _path(worker if worker is not None else os.environ.get(WORKER_ENV, ""), job_id)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(kept.to_dict(), fh, default=str)
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not keep a job's record for later", extra={"job": job_id, "error": type(exc).__name__})
        return None
    return path


def take(worker: str, job_id: str) -> Kept | None:
    """What the work-horse of ``job_id`` kept, if it did (an unreadable file counts as none)."""
    path = _path(worker, job_id)
    if path is None or not path.exists():
        return None
    try:
        return Kept.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("a kept job record is unreadable: dropped", extra={"job": job_id, "error": type(exc).__name__})
        discard(worker, job_id)
        return None


def discard(worker: str, job_id: str) -> None:
    path = _path(worker, job_id)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
