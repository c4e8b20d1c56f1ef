"""The second oracle: tshark 4.4.19 from Debian 13 (trixie), unpacked, never installed.

Debian 12 carries tshark 4.0 only, and trixie's libraries need a newer libc than the
machine's, so apt cannot install it. This downloads trixie's ``tshark`` package closure
with a private apt configuration (nothing system-wide changes), unpacks every package into
one root under ``~/.cache/aksdns/wireshark-4.4`` and runs tshark there with trixie's own
dynamic loader. The Debian mirror is the one this machine's apt sources already name.

Run ``python -m tests.wireshark44`` to fetch it by hand; the tests' fixture does it on first
use (a lock keeps two sessions from fetching at once).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

VERSION = "4.4.19"
CACHE = Path(os.environ.get("AKSDNS_CACHE", Path.home() / ".cache" / "aksdns")) / "wireshark-4.4"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
ARCH_LIB = "usr/lib/x86_64-linux-gnu"
# Installed by dpkg maintainer scripts, not needed to run tshark unpacked.
_SKIP = {"debconf", "cdebconf", "debconf-2.0"}


class OracleUnavailable(RuntimeError):
    """tshark 4.4 could not be fetched or does not run here."""


def _mirror() -> str:
    """The Debian mirror of this machine's apt sources (deb822 or one-line format)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+/debian)/?\s", text, re.M):
            return m.group(1)
    raise OracleUnavailable("no Debian mirror in this machine's apt sources")


def _run(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 600) -> str:
    out = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise OracleUnavailable(f"{argv[0]} failed: {(out.stderr or out.stdout).strip()[-400:]}")
    return out.stdout


def tshark_argv(root: Path = CACHE / "root") -> list[str]:
    """The command that runs the unpacked tshark (append tshark's own arguments)."""
    libs = f"{root / ARCH_LIB}:{root / 'lib/x86_64-linux-gnu'}"
    return [str(root / ARCH_LIB / "ld-linux-x86-64.so.2"), "--library-path", libs, str(root / "usr/bin/tshark")]


def tshark_env(root: Path = CACHE / "root") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIRESHARK", "LD_"))}
    env["WIRESHARK_DATA_DIR"] = str(root / "usr/share/wireshark")
    # A private, empty configuration home: the user's own preferences must not change the oracle.
    env["XDG_CONFIG_HOME"] = str(root.parent / "config")
    env["HOME"] = str(root.parent / "home")
    return env


def _version(root: Path) -> str:
    out = subprocess.run([*tshark_argv(root), "-v"], capture_output=True, text=True, env=tshark_env(root),
                         timeout=60)
    first = out.stdout.splitlines()[0] if out.stdout else out.stderr.strip()
    return first


def _fetch(dest: Path) -> None:
    """Download and unpack trixie's tshark closure into ``dest/root``."""
    mirror = _mirror()
    apt = dest / "apt"
    for sub in ("etc/preferences.d", "etc/apt.conf.d", "state/lists/partial", "cache/archives/partial"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "etc/sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror} trixie main\n")
    (apt / "status").write_text("")
    opts = [
        f"-o=Dir::Etc={apt / 'etc'}", f"-o=Dir::Etc::sourcelist={apt / 'etc/sources.list'}",
        "-o=Dir::Etc::sourceparts=-", f"-o=Dir::State={apt / 'state'}",
        f"-o=Dir::State::status={apt / 'status'}", f"-o=Dir::Cache={apt / 'cache'}",
        "-o=APT::Architecture=amd64", "-o=APT::Architectures::=amd64", "-o=Debug::NoLocking=1",
        "-o=Acquire::Languages=none", "-o=Acquire::http::Timeout=60",
    ]
    _run(["apt-get", *opts, "update", "-qq"])
    deps = _run(["apt-cache", *opts, "depends", "--recurse", "--no-recommends", "--no-suggests",
                 "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", "tshark"])
    names = sorted({line.strip() for line in deps.splitlines()
                    if line and not line.startswith(" ") and not line.startswith("<")} - _SKIP)
    if "tshark" not in names:
        raise OracleUnavailable("trixie's package list has no tshark")
    debs = dest / "debs"
    debs.mkdir(exist_ok=True)
    _run(["apt-get", *opts, "download", "-qq", *names], cwd=debs, timeout=1200)
    root = dest / "root"
    root.mkdir(exist_ok=True)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    shutil.rmtree(debs)
    shutil.rmtree(apt)


def ensure(cache: Path = CACHE) -> list[str]:
    """The argv prefix of tshark 4.4.19, fetching it on first use (cached, shared by sessions)."""
    root = cache / "root"
    if (cache / "ok").exists():
        return tshark_argv(root)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise OracleUnavailable("apt-get and dpkg-deb are needed to fetch tshark 4.4")
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / "wireshark-4.4.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / "ok").exists():
            shutil.rmtree(cache, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix="wireshark-4.4.", dir=cache.parent))
            try:
                _fetch(work)
                version = _version(work / "root")
                if VERSION not in version:
                    raise OracleUnavailable(f"unpacked tshark says {version!r}, not {VERSION}")
                (work / "config").mkdir()
                (work / "home").mkdir()
                work.rename(cache)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            (cache / "ok").write_text(VERSION + "\n")
    return tshark_argv(root)


def main() -> int:
    try:
        argv = ensure()
    except OracleUnavailable as err:
        print(f"tshark {VERSION}: {err}", file=sys.stderr)
        return 1
    print(_version(CACHE / "root"))
    print(" ".join(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
