"""The DNS server fixtures themselves: they start, fail loudly, and leave nothing behind."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from tests import dnsservers
from tests.dnsservers import FakeDnsServer, kill_group


def processes_with(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (read from /proc, no ps needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry))
    return found


def wait_gone(marker: str, within_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_fake_server_frees_its_port_when_stopped() -> None:
    fake = FakeDnsServer("answer").start()
    port = fake.server.port
    fake.stop()
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((fake.server.host, port))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        FakeDnsServer("sometimes")


def test_process_group_is_killed_children_included(tmp_path: Path) -> None:
    marker = f"{time.time_ns() % 10_000_000}.25"  # a unique `sleep` argument
    script = f"sleep {marker} & sleep {marker}; wait"
    with dnsservers._process(["/bin/sh", "-c", script], tmp_path / "sh.log") as proc:
        deadline = time.monotonic() + 5
        # The shell's own command line holds the marker too: shell + two sleeps.
        while len(processes_with(f"sleep {marker}")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(processes_with(f"sleep {marker}")) == 3
    assert proc.poll() is not None
    assert wait_gone(f"sleep {marker}") == []


def test_kill_group_on_an_exited_process_is_a_no_op(tmp_path: Path) -> None:
    with dnsservers._process([sys.executable, "-c", "pass"], tmp_path / "py.log") as proc:
        proc.wait(timeout=10)
    kill_group(proc)


def test_bind9_with_a_broken_zone_fails_loudly_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bind9_server: dnsservers.RealServer
) -> None:
    # bind9_server first: it skips this test where named is not installed.
    monkeypatch.setattr(dnsservers, "zone_file", lambda: "this is not a zone file\n")
    workdir = tmp_path / "broken"
    with pytest.raises(RuntimeError, match=r"SERVFAIL|REFUSED|exited"), dnsservers.run_bind9(workdir):
        pass
    assert wait_gone(str(workdir)) == []


def test_bind9_and_dnsmasq_are_running_from_their_packages(
    bind9_server: dnsservers.RealServer, dnsmasq_forwarder: dnsservers.RealServer
) -> None:
    assert bind9_server.kind == "bind9" and dnsmasq_forwarder.kind == "dnsmasq"
    assert bind9_server.server.host == dnsmasq_forwarder.server.host == "127.0.0.1"
    assert bind9_server.server.port != dnsmasq_forwarder.server.port
