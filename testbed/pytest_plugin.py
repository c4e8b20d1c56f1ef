"""pytest plugin: the session-scoped `testbed` fixture (registered from tests/conftest.py).

    def test_something(testbed):          # a running cluster with CoreDNS answering
        testbed.kubeconfig, testbed.kube_dns_ip, testbed.coredns_pod_ips, testbed.upstream, ...
        testbed.upstream_delay(6); ...; testbed.upstream_reset()

Without the binaries, or without root, every test that uses it is skipped with one line saying how to
build them. Tests that use the fixture (and everything under tests/testbed/) are marked `testbed`.

If a testbed is already running (`python -m testbed up`, or another pytest session on this machine),
the fixture uses it and leaves it running. Otherwise it starts one and stops it at the end of the
session, unless another session is still using it (a shared lock tells). A crash that skips teardown is
caught by atexit and SIGTERM handlers; anything left after a SIGKILL is cleaned by the next `up`/`down`.
"""

from __future__ import annotations

import atexit
import fcntl
import signal
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any

import pytest

from testbed import cluster, paths

_owned: dict[str, Any] = {"testbed": None, "lock": None}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: needs the local Kubernetes testbed (testbed/build.sh)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "testbed" in fixtures or "/tests/testbed/" in str(item.path):
            item.add_marker(pytest.mark.testbed)


def pytest_report_header(config: pytest.Config) -> str:
    why = cluster.requirements_missing()
    return f"testbed: unavailable - {why}" if why else f"testbed: binaries in {paths.cache_dir()}"


def _users_lock() -> IO[str]:
    run = paths.run_dir()
    run.parent.mkdir(parents=True, exist_ok=True)
    fh = open(run.parent / "testbed.users", "w")  # held for the whole session
    fcntl.flock(fh, fcntl.LOCK_SH)
    return fh


def _teardown() -> None:
    lock: IO[str] | None = _owned["lock"]
    owned = _owned["testbed"] is not None
    _owned["testbed"] = None
    _owned["lock"] = None
    if lock is None:
        return
    try:
        if owned:
            try:
                # Exclusive only when no other session holds the shared lock: then nobody else uses it.
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print("testbed: left running for another test session; `python -m testbed down` stops it")
                return
            cluster.down()
    finally:
        lock.close()


def _on_sigterm(_sig: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C so fixture teardown (and so `down`) runs.
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def testbed() -> Iterator[cluster.Testbed]:
    why = cluster.requirements_missing()
    if why:
        pytest.skip(f"testbed: {why}")
    lock = _users_lock()
    _owned["lock"] = lock
    tb = cluster.attach()
    if tb is None:
        atexit.register(_teardown)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            tb = cluster.up()
        except BaseException:
            _teardown()
            raise
        _owned["testbed"] = tb
    try:
        yield tb
    finally:
        _teardown()
