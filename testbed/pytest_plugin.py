"""pytest plugin: the session-scoped `testbed` fixture (registered from tests/conftest.py).

    def test_something(testbed):          # a running cluster with CoreDNS answering
        testbed.kubeconfig, testbed.kube_dns_ip, testbed.coredns_pod_ips, testbed.upstream, ...
        testbed.upstream_delay(6); ...; testbed.upstream_reset()

Without the binaries, or without root, every test that uses it is skipped with one line saying how to
build them. Tests that use the fixture (and everything under tests/testbed/) are marked `testbed`.

There is one testbed per machine and its fault knobs are global, so test sessions that use it run one
at a time. Testbed tests run last in a session, and the session takes the machine's exclusive lock just
before its first testbed test (outside that test's time-out), waiting, and saying so, while another
session holds it: sessions on one machine share it for as short a time as they can. If a
testbed is already running (`python -m testbed up`), the fixture resets its faults and uses it, and
leaves it running; otherwise it starts one and stops it at the end of the session. A crash that skips
teardown is caught by atexit and SIGTERM handlers; anything left after a SIGKILL is cleaned by the next
`up`/`down`.
"""

from __future__ import annotations

import atexit
import signal
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any

import pytest

from testbed import cluster, paths

SESSION_WAIT_S = cluster.SESSION_WAIT_S
_owned: dict[str, Any] = {"testbed": None, "lock": None}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "testbed: needs the local Kubernetes testbed (testbed/build.sh)")


def _uses_testbed(item: pytest.Item) -> bool:
    return "testbed" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_testbed(item) or "/tests/testbed/" in str(item.path):
            item.add_marker(pytest.mark.testbed)
    # Everything else first: the lock is then held from the first testbed test to the session's end.
    items[:] = [i for i in items if not _uses_testbed(i)] + [i for i in items if _uses_testbed(i)]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # Outermost wrapper: the wait for the lock happens before pytest-timeout starts the test's timer.
    if _uses_testbed(item) and _owned["lock"] is None and cluster.requirements_missing() is None:
        _owned["lock"] = _session_lock()
    yield


def pytest_report_header(config: pytest.Config) -> str:
    why = cluster.requirements_missing()
    return f"testbed: unavailable - {why}" if why else f"testbed: binaries in {paths.cache_dir()}"


def _session_lock() -> IO[str]:
    try:
        return cluster.acquire_session(SESSION_WAIT_S, who="pytest")
    except cluster.TestbedError as exc:
        raise pytest.UsageError(f"testbed: {exc}") from None


def _teardown() -> None:
    lock: IO[str] | None = _owned["lock"]
    owned = _owned["testbed"] is not None
    _owned["testbed"] = None
    _owned["lock"] = None
    try:
        if owned:
            cluster.down()
    finally:
        if lock is not None:
            lock.close()


def _on_sigterm(_sig: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C so fixture teardown (and so `down`) runs.
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def testbed() -> Iterator[cluster.Testbed]:
    why = cluster.requirements_missing()
    if why:
        pytest.skip(f"testbed: {why}")
    if _owned["lock"] is None:  # collected outside the usual hooks (e.g. requested dynamically)
        _owned["lock"] = _session_lock()
    atexit.register(_teardown)
    tb = cluster.attach(same_code=True)  # one started from other code (another checkout) is replaced
    if tb is not None:
        tb.reset_faults()  # a previous session may have died with a knob turned
    else:
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
