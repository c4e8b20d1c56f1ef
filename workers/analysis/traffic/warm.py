"""What a worker loads once, before it forks job processes, so no `analyze` job pays for it:
the compiled capture core and the drawing library with its font."""

from __future__ import annotations

import importlib


def preload() -> None:
    """Import the pcap core and Pillow (with its font); cheap, idempotent."""
    from workers.analysis.traffic import charts

    charts.preload()
    try:
        importlib.import_module("aksdns_native")
    except ImportError:
        pass  # the job itself reports the missing core in one line
