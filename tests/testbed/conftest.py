"""Fixtures shared by the testbed tests: every knob reset after a test (`clean`), and the dataplane and
worker environment of `ipam` and `service`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testbed import cluster, procs
from workers.jobenv import JobEnv


@pytest.fixture
def clean(testbed: Any) -> Iterator[None]:
    """Every fault knob reset after the test, whatever it left behind (test_ipam and test_service
    narrow this to their own knobs)."""
    try:
        yield
    finally:
        testbed.reset_faults()


@pytest.fixture(scope="session")
def netbed(testbed: Any) -> Iterator[Any]:
    """The session's testbed, with the node dataplane `ipam` and `service` need.

    A testbed left running by a session of an older checkout has no dataplane (Services' ClusterIPs,
    NetworkPolicies, IPAM stores): this session holds the testbed lock, so it starts a current one and
    stops it at the end (the next session starts its own). The session's `testbed` handle is pointed at
    the new one, so the session's other tests use it too."""
    if procs.alive(testbed.state.pids, "dataplane"):
        yield testbed
        return
    print("testbed: the running testbed has no dataplane (an older checkout started it): restarting it")
    cluster.down()
    fresh = cluster.up()
    testbed.__init__(fresh.state)  # the same handle, now on the new run (ports, credentials)
    try:
        yield testbed
    finally:
        cluster.down()


@pytest.fixture
def worker_env(netbed: Any) -> JobEnv:
    """What the worker pod would get: the aksdns namespace and the worker ServiceAccount's token."""
    return JobEnv(cluster="testbed", namespace="aksdns", kubeconfig=str(netbed.write_worker_kubeconfig()))
