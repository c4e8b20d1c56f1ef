"""The `aksdns` console script as a user runs it: exit codes, one-line errors, --dry-run."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.dnsservers import RealServer
from tests.services import VENV_BIN, aksdns_env


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "aksdns"), *args], capture_output=True, text=True, timeout=60,
                          env=aksdns_env(REDIS_URL="redis://127.0.0.1:9/0"))


@pytest.mark.parametrize(
    "argv",
    [
        ["dig", "microsoft.com"],
        ["check", "--nodes", "all"],
        ["health"],
        ["capture", "--pod", "default/aks-test", "--duration", "90s"],
        ["analyze", "dns-cap1.pcap"],
        ["apiserver"],
        ["ipam", "--node", "aks-nodepool1-1-vmss000000"],
        ["service", "default/web", "--port", "80"],
        ["handoff", "--cluster", "eu"],
    ],
)
def test_dry_run_prints_the_job_and_touches_nothing(argv: list[str]) -> None:
    result = run(*argv, "--dry-run")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["job"]["command"]["verb"] == argv[0]
    assert printed["queue"].startswith("aksdns:")


@pytest.mark.parametrize("verb", ["dig", "check", "capture", "analyze", "bot", "worker"])
def test_every_subcommand_has_help(verb: str) -> None:
    result = run(verb, "--help")
    assert result.returncode == 0
    assert verb in result.stdout


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["dig", "bad..name"], 2, "empty label"),
        (["dig", "a.b", "--format", "xml"], 2, "invalid choice"),
        (["frobnicate"], 2, "unknown command"),
        (["ipam"], 1, "cannot load cluster credentials"),  # every command has its job now
        (["analyze", "/nonexistent/file.pcap"], 1, "file.pcap"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(argv: list[str], code: int, message: str) -> None:
    result = run(*argv)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_dig_json_output_against_bind9(bind9_server: RealServer) -> None:
    server = bind9_server.server
    result = run("dig", f"@{server.host}:{server.port}", "www.aksdns.test", "--format", "json")
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert {r["status"] for r in results} == {"NOERROR"}
    assert results[0]["answers"] == ["10.53.1.10"]
    assert set(results[0]) >= {"server", "name", "type", "status", "latency_ms", "answers"}
