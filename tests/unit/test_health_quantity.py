"""kubectl's quantities and "Allocated resources" (the testbed test compares with `kubectl describe node`)."""

from __future__ import annotations

from typing import Any

import pytest

from workers.analysis.health_quantity import Quantity, allocated, non_terminated_on, usage_from


@pytest.mark.parametrize(("text", "canonical", "milli"), [
    ("100m", "100m", 100), ("1", "1", 1000), ("1762m", "1762m", 1762), ("0.5", "500m", 500), ("3000", "3k", 3000000),
    ("70Mi", "70Mi", 70 * 2**20 * 1000), ("1536Mi", "1536Mi", 1536 * 2**20 * 1000), ("1Gi", "1Gi", 2**30 * 1000),
    ("128974848", "128974848", 128974848000), ("1e3", "1k", 1000000), ("0", "0", 0), ("junk", "0", 0),
])
def test_canonical_form(text: str, canonical: str, milli: int) -> None:
    assert str(Quantity.parse(text)) == canonical
    assert Quantity.parse(text).milli == milli


def test_sum_keeps_the_first_terms_format() -> None:
    assert str(Quantity.parse("70Mi") + Quantity.parse("70Mi")) == "140Mi"
    assert str(Quantity.parse("100m") + Quantity.parse("1")) == "1100m"
    assert str(Quantity.parse("512Mi") + Quantity.parse("100M")) == "636870912"  # not a whole Ki: decimal


def pod(name: str, node: str, req: dict[str, str], lim: dict[str, str], phase: str = "Running",
        ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "status": {"phase": phase},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": req, "limits": lim}}]}}


def test_allocated_truncates_percentages_like_kubectl() -> None:
    pods = [pod("a", "n1", {"cpu": "100m", "memory": "70Mi"}, {"cpu": "3", "memory": "500Mi"}),
            pod("b", "n1", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "8", "memory": "32Gi"}),
            pod("done", "n1", {"cpu": "4"}, {"cpu": "4"}, phase="Succeeded"),
            pod("elsewhere", "n2", {"cpu": "4"}, {"cpu": "4"})]
    a = allocated(non_terminated_on(pods, "n1"), {"cpu": "1900m", "memory": "4694956Ki"})
    assert (a.cpu_requests, a.cpu_requests_pct) == ("200m", 10)
    assert (a.cpu_limits, a.cpu_limits_pct) == ("11", 578)  # 578.9 %: kubectl prints 578, not 579
    assert (a.memory_requests, a.memory_requests_pct) == ("198Mi", 4)
    assert a.memory_limits == "33268Mi" and a.memory_limits_pct == 725


def test_init_containers_and_overhead() -> None:
    p = pod("i", "n1", {"cpu": "100m"}, {})
    p["spec"]["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "500m"}}}]
    p["spec"]["overhead"] = {"cpu": "10m"}
    a = allocated([p], {"cpu": "1", "memory": "1Gi"})
    assert a.cpu_requests == "510m"


def test_usage_like_kubectl_top() -> None:
    item = {"metadata": {"name": "coredns-x"}, "window": "10.5s", "timestamp": "2026-01-01T00:00:00Z",
            "containers": [{"name": "coredns", "usage": {"cpu": "2734561n", "memory": "21504Ki"}}]}
    u = usage_from(item)
    assert (u.cpu_m, u.memory_mi, u.window_s) == (3, 21, 10.5)  # MilliValue rounds up; Mi truncates
    node = usage_from({"metadata": {"name": "n"}, "usage": {"cpu": "151m", "memory": "1048575Ki"}})
    assert (node.cpu_m, node.memory_mi) == (151, 1023)
