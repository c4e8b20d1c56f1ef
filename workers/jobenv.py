"""What a job receives from the worker (or the CLI): injected I/O, never globals.

``workers.main`` (the RQ worker) and ``console.cli`` (in-process runs) are the only places
that build a :class:`JobEnv`.  Jobs take what they need from it and nothing else, so tests
can hand them real clients pointed at the testbed, or plain functions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _no_progress(_text: str) -> None:
    """Default progress sink: the CLI prints nothing between steps."""


@dataclass
class JobEnv:
    """Injected context for one job run."""

    cluster: str
    namespace: str = "aksdns"  # where the bot creates probe/capture pods
    kubeconfig: str | None = None  # None: in-cluster config, else this file
    resolv_conf: Path = Path("/etc/resolv.conf")
    azure_dns: str = "168.63.129.16"  # the virtual network's default DNS (a setting)
    external_name: str = "microsoft.com"  # default external name probed by `check`
    probe_image: str = "aksdns:latest"  # image of the node-level probe pods
    probe_command: tuple[str, ...] = ("aksdns", "probe")
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))  # scratch space
    progress: Callable[[str], None] = _no_progress  # updates the parent message
    thread_files: Callable[[], list[Path]] = list  # files uploaded to the thread (analyze)
    extras: dict[str, Any] = field(default_factory=dict)
