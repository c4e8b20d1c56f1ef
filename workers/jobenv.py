"""What a job receives from the worker (or the CLI): injected I/O, never globals.

The composition roots build it: ``workers.runner.base_env`` from the worker's settings (the RQ
worker, and ``console.cli`` for in-process runs), then ``workers.runner.run_job`` adds what one job
needs (progress sink, scratch directory, thread files, the previous run's Re-run basis). Jobs take
what they need from it and nothing else, so tests can hand them real clients pointed at the
testbed, or plain functions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aksdns.dig_policy import DigPolicy
from aksdns.settings import AzureAccess

if TYPE_CHECKING:
    # Only a type here: importing it at run time loads redis (~0.1 s), which every job
    # process paid, `analyze` included, though only `watch` runs hold one.
    from aksdns.watches import WatchContext

if TYPE_CHECKING:
    from workers.report import Report


def _no_progress(_text: str) -> None:
    """Default progress sink: the CLI prints nothing between steps."""


def _never() -> bool:
    return False


def _keep_nowhere(_path: Path, _filename: str, _title: str) -> str:
    return ""


def _post_nowhere(_report: Report) -> None:
    """Default: a job's extra reports go nowhere (the CLI and the worker set their own)."""


@dataclass
class JobEnv:
    """Injected context for one job run."""

    cluster: str
    namespace: str = "aksdns"  # where the worker creates probe/capture pods
    kubeconfig: str | None = None  # None: in-cluster config, else this file
    resolv_conf: Path = Path("/etc/resolv.conf")
    azure_dns: str = "168.63.129.16"  # the virtual network's default DNS (a setting)
    external_name: str = "microsoft.com"  # default external name probed by `check`
    probe_image: str = "aksdns:latest"  # image of the node-level probe pods
    probe_command: tuple[str, ...] = ("aksdns", "probe")
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))  # scratch space
    progress: Callable[[str], None] = _no_progress  # updates the parent message
    thread_files: Callable[[], list[Path]] = list  # files uploaded to the thread (analyze)
    source: Literal["slack", "cli"] = "cli"  # where the command came from
    attachments: bool = True  # make the report's pictures and files (False: nothing would show them)
    job_id: str = ""  # the aksdns job (written on the pods it creates)
    requested_by: str = ""  # the Slack user (or CLI user) who asked
    previous: dict[str, Any] | None = None  # the Re-run basis the last run of this command left in the thread
    dig_policy: DigPolicy = field(default_factory=DigPolicy)  # which servers `dig` may ask for Slack users
    # capture: limits, the Stop button, and where its files and second report go
    capture_max_bytes: int = 100 * 1024 * 1024  # kept per target (a ring)
    capture_snaplen: int = 8192
    capture_retention_s: float = 3600.0  # capture files a dead job left are removed after this
    stop_requested: Callable[[], bool] = _never  # the thread's Stop button was pressed (Slack), Ctrl-C (CLI)
    deliver_file: Callable[[Path, str, str], str] = _keep_nowhere  # (path, filename, title) -> where it went
    post_report: Callable[[Report], None] = _post_nowhere  # a second message in the thread (analyze's)
    azure: AzureAccess = field(default_factory=AzureAccess)  # `apiserver`: read the cluster from Azure
    thread_history: Callable[[], list[Any]] = list  # the thread's recorded outcomes, oldest first (handoff)
    job_thread: str = ""  # the Slack thread this job answers in (its ts)
    watches: WatchContext | None = None  # a `watch` run's state and scheduler (None: CLI, no thread)
    # Due work: queue a command to run in this thread after N seconds (RQ's scheduler; survives a worker
    # restart). Returns the job id. None where no worker queue exists (in-process CLI runs).
    schedule: Callable[[Any, float], str] | None = None
    audit: Callable[[str, bool, str], None] = lambda _kind, _allowed, _reason: None  # worker-side audit entries
