"""Issue 10 item 7: hostile text on the command line gets one clear, escaped line.

Each case runs the real `aksdns` console script, as a user would.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.services import VENV_BIN, aksdns_env


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "aksdns"), *args], capture_output=True, text=True, timeout=60,
                          env=aksdns_env(REDIS_URL="redis://127.0.0.1:9/0"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dig", "x.test", "--repeat", "²"], "--repeat must be a whole number, not `²`"),
        (["dig", "@1.2.3.4:¹", "x.test"], "server port must be a whole number, not `¹`"),
        (["check", "--nodes", "²"], "--nodes must be a whole number, not `²`"),
        (["service", "default/web", "--port", "³"], "--port must be a whole number, not `³`"),
        (["dig", "x.test", "--timeout", "٣"], "--timeout must be a number of seconds"),
        (["capture", "--duration", "٣m"], "--duration must look like 90s or 2m"),
    ],
)
def test_unicode_digits_get_a_usage_line_not_an_internal_error(argv: list[str], message: str) -> None:
    result = run(*argv)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"aksdns: {message}\n" or message in result.stderr
    assert "unexpected error" not in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["dig", "a\rb\x1b[31mRED"], "a\\rb\\x1b31mRED"),
        (["di\ng"], "di\\ng"),
        (["dig", "x.test", "--timeout", "40\nforged line"], "40\\nforged line"),
        (["check", "x\u202eevil.test"], "x\\u202eevil.test"),
    ],
)
def test_control_characters_in_errors_are_escaped(argv: list[str], shown: str) -> None:
    result = run(*argv)
    assert result.returncode == 2
    assert shown in result.stderr
    line = result.stderr.removesuffix("\n")
    assert line.isprintable(), repr(line)  # no raw \r, \n, ESC or bidi override reaches the terminal


def test_a_file_that_is_not_a_kubeconfig_gets_a_clear_line() -> None:
    result = run("check", "--kubeconfig", "/etc/passwd")
    assert result.returncode == 1
    assert result.stderr == "aksdns: /etc/passwd is not a kubeconfig file (clusters, users and contexts in YAML)\n"
