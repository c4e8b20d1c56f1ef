"""Running helper commands (ip, nft, openssl) with a timeout and a readable failure."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

DEFAULT_TIMEOUT_S = 20.0


class CommandError(RuntimeError):
    pass


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False,
                          input=input_text)
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    return proc


def ok(cmd: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """Run a best-effort command (cleanup): True when it succeeded."""
    try:
        return run(cmd, check=False, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
