"""Workers with fewer rights than the chart gives: for the "one clear line naming the permission" tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aksdns.errors import ClusterError
from testbed import manifests
from testbed.kube import apply_object

NAMESPACE = "aksdns"


@contextlib.contextmanager
def limited_worker(testbed: Any, drop: set[str]) -> Iterator[Path]:
    """A worker ServiceAccount with the testbed's worker rights minus the resources in ``drop``."""
    name = "aksdns-limited"
    role = next(o for o in manifests.worker_rbac() if o["kind"] == "ClusterRole")
    rules = [{**r, "resources": [x for x in r["resources"] if x not in drop]} for r in role["rules"]]
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [r for r in rules if r["resources"]]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]},
    ]
    for obj in objects:
        apply_object(testbed.kube, obj)
    try:
        yield testbed.service_account_kubeconfig(NAMESPACE, name)
    finally:
        testbed.kube.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}")
        testbed.kube.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}")


def denied(call: Callable[[], Any], timeout_s: float = 15.0) -> ClusterError:
    """The ClusterError ``call`` raises once a removed binding has reached the API server's authorizer."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            call()
        except ClusterError as err:
            if err.status == 403 or time.monotonic() > deadline:
                return err
        if time.monotonic() > deadline:
            raise AssertionError("the worker was never refused")
        time.sleep(0.5)
