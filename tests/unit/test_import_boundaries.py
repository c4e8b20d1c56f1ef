"""The bot never loads worker-only code; workers never load slack_bolt (design rule)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_bot_does_not_import_worker_dependencies() -> None:
    loaded = roots(modules_after("import bot.main, bot.app, bot.http, console.cli"))
    assert not loaded & {"workers", "kubernetes", "matplotlib", "numpy", "aksdns_native", "testbed"}


@pytest.mark.parametrize("module", ["workers.main", "workers.runner", "workers.jobs.dig", "workers.jobs.check"])
def test_workers_do_not_import_slack_bolt(module: str) -> None:
    loaded = roots(modules_after(f"import {module}"))
    assert "slack_bolt" not in loaded
    assert "bot" not in loaded
