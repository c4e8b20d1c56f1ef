"""The layers of docs/ARCHITECTURE.md, checked.

- the core (``aksdns``) imports neither ``bot``, ``workers``, ``testbed`` nor ``console``;
- the bot never loads worker-only code (kubernetes, the pcap core); workers never load slack_bolt;
- evidence types (``workers.evidence``) import no other part of ``workers``;
- analysis (``workers.analysis``) imports data types, never drivers (``workers.probes``) or jobs;
- drivers (``workers.probes``) never import one command's analysis or job.

Runtime checks import the module in a fresh interpreter and look at ``sys.modules``; static checks read
every ``import`` in the source, including those inside functions (lazy imports count).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def package_modules(package: str) -> list[str]:
    base = ROOT / package.replace(".", "/")
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in base.rglob("*.py")
    )


def imports_of(module: str) -> set[str]:
    """Every module a source file names in an import statement (absolute names)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_core_imports_no_other_layer() -> None:
    core = package_modules("aksdns")
    loaded = roots(modules_after("\n".join(f"import {m}" for m in core)))
    assert not loaded & {"bot", "workers", "testbed", "console"}
    for module in core:
        assert not {m.split(".")[0] for m in imports_of(module)} & {"bot", "workers", "testbed", "console"}, module


def test_bot_does_not_import_worker_dependencies() -> None:
    loaded = roots(modules_after("import bot.main, bot.app, bot.http, console.cli"))
    assert not loaded & {"workers", "kubernetes", "PIL", "aksdns_native", "testbed"}


@pytest.mark.parametrize("module", ["workers.main", "workers.runner", "workers.jobs.dig", "workers.jobs.check"])
def test_workers_do_not_import_slack_bolt(module: str) -> None:
    loaded = roots(modules_after(f"import {module}"))
    assert "slack_bolt" not in loaded
    assert "bot" not in loaded


@pytest.mark.parametrize("module", package_modules("workers.evidence"))
def test_evidence_types_stand_alone(module: str) -> None:
    workers_imports = {m for m in imports_of(module) if m.startswith("workers.")}
    assert all(m.startswith("workers.evidence") for m in workers_imports), workers_imports


@pytest.mark.parametrize("module", package_modules("workers.analysis"))
def test_analysis_imports_data_types_never_drivers(module: str) -> None:
    bad = {m for m in imports_of(module) if m.startswith(("workers.probes", "workers.jobs", "kubernetes"))}
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", package_modules("workers.probes"))
def test_drivers_do_not_import_a_command(module: str) -> None:
    bad = {m for m in imports_of(module) if m.startswith(("workers.analysis", "workers.jobs"))}
    assert not bad, f"{module} imports {bad}"


def test_every_layer_rule_has_modules_to_check() -> None:
    """A rule over an empty package would pass for nothing."""
    for package in ("aksdns", "workers.evidence", "workers.analysis", "workers.probes"):
        assert len(package_modules(package)) >= 2, package
