"""Exec a pod's container command inside its (node or pod) network namespace.

The runner starts ``ip netns exec NS python -m testbed.podexec --termination-log FILE --message-path P
-- CMD...``. `ip netns exec` has already given this process a private mount namespace with the
namespace's resolv.conf bound over /etc/resolv.conf; here the pod's own termination-message file is
bound over the container's terminationMessagePath (default /dev/termination-log), so the program
writes its termination message exactly where it would in a real container. Then the command replaces
this process, so exit code, signals and output are the program's own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _bind_termination_log(source: Path, target: Path) -> None:
    source.touch()
    if not target.exists():
        if not target.parent.is_dir():
            return
        # The mount point must exist. In /dev this creates an empty file on the host's devtmpfs once;
        # every pod then sees its own file bound over it, never that one.
        target.touch()
    subprocess.run(["mount", "--bind", str(source), str(target)], check=False, timeout=10,
                   capture_output=True)


def _bind_host_path(spec: str) -> None:
    """``SRC:DST:ro|rw``: a node's hostPath bound over the container's mountPath, private to this
    command (``ip netns exec`` gave it its own mount namespace). The mount point is created on the
    host if missing, like /dev/termination-log above."""
    source, target, mode = spec.rsplit(":", 2)
    Path(target).mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", source, target], check=True, timeout=10, capture_output=True)
    if mode == "ro":
        subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True, timeout=10, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.podexec")
    parser.add_argument("--termination-log", type=Path, required=True)
    parser.add_argument("--message-path", type=Path, default=Path("/dev/termination-log"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--bind", action="append", default=[], help="SRC:DST:ro|rw (a hostPath volume)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("podexec: no command", file=sys.stderr)
        return 127
    _bind_termination_log(args.termination_log, args.message_path)
    try:
        for spec in args.bind:
            _bind_host_path(spec)
    except (OSError, subprocess.SubprocessError) as exc:
        msg = f"mount of a hostPath volume failed: {exc}"
        print(msg, file=sys.stderr)
        args.termination_log.write_text(msg)
        return 128
    if args.workdir is not None and args.workdir.is_dir():
        os.chdir(args.workdir)
    try:
        os.execvp(command[0], command)  # noqa: S606 - replacing this process is the point
    except OSError as exc:
        # What a container runtime reports when the entrypoint cannot start.
        msg = f"exec: {command[0]!r}: {exc.strerror}"
        print(msg, file=sys.stderr)
        try:
            args.termination_log.write_text(msg)
        except OSError:
            pass
        return 127 if isinstance(exc, FileNotFoundError) else 126


if __name__ == "__main__":
    sys.exit(main())
