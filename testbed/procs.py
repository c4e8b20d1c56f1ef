"""Starting and stopping the testbed's long-running processes, tracked by pid files.

Each process runs in its own session (process group), so stopping it also stops anything it spawned
(`ip netns exec` -> coredns). A pid file records the pid and the process start time, so `down` never
signals an unrelated process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def start(name: str, cmd: Sequence[str], pid_dir: Path, log_file: Path, *,
          env: Mapping[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=None if env is None else dict(env), cwd=cwd, start_new_session=True)
    (pid_dir / f"{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid) or ''}\n")
    return proc


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in a pid file if that very process is still alive."""
    try:
        pid_text, _, started = pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    current = _start_time(pid)
    if current is None or (started and current != started):
        return None
    return pid


def alive(pid_dir: Path, name: str) -> bool:
    return read_pid(pid_dir / f"{name}.pid") is not None


def stop_pid(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it after the grace period."""
    try:
        leader = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            # A group leader is one of ours started with start_new_session: take its children too.
            if leader:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            if _start_time(pid) is None or _zombie(pid):
                _reap(pid)
                return
            time.sleep(0.05)


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its parent to reap it counts as exited)."""
    return _start_time(pid) is None or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_all(pid_dir: Path, order: Sequence[str] = ()) -> list[str]:
    """Stop every process with a pid file in pid_dir (the named ones first, in order)."""
    stopped: list[str] = []
    files = sorted(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []
    ranked = sorted(files, key=lambda f: order.index(f.stem) if f.stem in order else len(order))
    for pid_file in ranked:
        pid = read_pid(pid_file)
        if pid is not None:
            stop_pid(pid)
            stopped.append(pid_file.stem)
        pid_file.unlink(missing_ok=True)
    return stopped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate_desc: str, predicate: object, timeout_s: float, interval_s: float = 0.1) -> None:
    """Poll a zero-argument callable until it returns truthy; raise TimeoutError naming what failed."""
    if not callable(predicate):
        raise TypeError("predicate must be callable")
    deadline = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # the condition may raise while the thing it waits for starts
            last_exc = exc
        time.sleep(interval_s)
    detail = f" (last error: {last_exc})" if last_exc else ""
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {predicate_desc}{detail}")


def memory_in_use(pid_dir: Path) -> dict[str, int]:
    """Resident memory (bytes) of every process in the process groups recorded in pid_dir, by pid file
    name; children such as `ip netns exec` -> coredns count with their group."""
    groups: dict[int, str] = {}
    for pid_file in pid_dir.glob("*.pid") if pid_dir.is_dir() else []:
        pid = read_pid(pid_file)
        if pid is not None:
            groups[pid] = pid_file.stem
    usage = dict.fromkeys(groups.values(), 0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pgid = os.getpgid(int(entry.name))
            if pgid not in groups:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    usage[groups[pgid]] += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return usage
