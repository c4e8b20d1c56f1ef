"""What a work-horse keeps on disk when Redis is down at its job's end (workers.unsettled)."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest

from aksdns.results import Outcome
from workers import unsettled


@pytest.fixture(autouse=True)
def tmpdir_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what gettempdir() answers


def outcome() -> Outcome:
    return Outcome(job_id="j1", verb="dig", command={"verb": "dig", "name": "x."}, text="dig x.", cluster="east",
                   user="U1", channel="C1", thread_ts="1.2", started_at=1.0, finished_at=2.0, status="fail",
                   summary="0 answered", findings=({"rule": "r", "score": 40},), figures={"p95_ms": 3.0})


def test_kept_round_trips_through_its_file_readable_by_the_worker_only() -> None:
    kept = unsettled.Kept({"status": "fail", "data": {"n": 1}}, 12.5, outcome(), {"figures": {"a": 1}})
    path = unsettled.keep("j1", kept, worker="aksdns-east-vm-1")
    assert path is not None and path.parent == unsettled.directory("aksdns-east-vm-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert unsettled.take("aksdns-east-vm-1", "j1") == kept
    assert unsettled.take("aksdns-west-vm-1", "j1") is None  # another worker's jobs are not its own
    unsettled.discard("aksdns-east-vm-1", "j1")
    assert unsettled.take("aksdns-east-vm-1", "j1") is None and not path.exists()


def test_without_an_rq_worker_nothing_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(unsettled.WORKER_ENV, raising=False)
    assert unsettled.keep("j1", unsettled.Kept({}, 1.0)) is None
    monkeypatch.setenv(unsettled.WORKER_ENV, "aksdns-east-vm-2")
    assert unsettled.keep("j1", unsettled.Kept({}, 1.0)) is not None
    assert unsettled.take("aksdns-east-vm-2", "j1") == unsettled.Kept({}, 1.0)


@pytest.mark.parametrize("worker, job", [("../etc", "j1"), ("w", "../../x"), ("w", "a/b"), ("", "j1"), ("w", "")])
def test_names_that_would_leave_the_directory_are_refused(worker: str, job: str, tmp_path: Path) -> None:
    assert unsettled.keep(job, unsettled.Kept({}, 1.0), worker=worker) is None
    assert unsettled.take(worker, job) is None
    assert list(tmp_path.rglob("*.json")) == []


def test_an_unreadable_file_counts_as_nothing_and_is_dropped() -> None:
    path = unsettled.keep("j2", unsettled.Kept({}, 1.0), worker="w")
    assert path is not None
    path.write_text("{not json")
    assert unsettled.take("w", "j2") is None and not path.exists()
    path.write_text('{"ended_at": 1}')  # no result
    assert unsettled.take("w", "j2") is None and not path.exists()
