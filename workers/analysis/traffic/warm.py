"""What a worker loads once, before it forks job processes, so no `analyze` job pays for it:
the compiled capture core, the analysis and report modules, and the drawing library with its
font and its PNG encoder."""

from __future__ import annotations

import importlib

# The modules an `analyze` job imports, beyond what the worker itself has loaded.
JOB_MODULES = (
    "workers.jobs.analyze",
    "workers.analysis.traffic.analysis",
    "workers.analysis.traffic.report",
)


def preload() -> None:
    """Import the pcap core, the analyze job's modules and Pillow (font, PNG encoder); cheap, idempotent."""
    from workers.analysis.traffic import charts

    charts.preload()
    for name in JOB_MODULES:
        importlib.import_module(name)
    try:
        importlib.import_module("aksdns_native")
    except ImportError:
        pass  # the job itself reports the missing core in one line
