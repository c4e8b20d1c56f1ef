"""Writes to the coredns-custom ConfigMap: the one change aksdns makes to a cluster's DNS (`coredns-log`).

Only the key aksdns owns is ever touched (``aksdns-verbose-log.override``): added by a JSON merge
patch, removed by a JSON patch, never the rest of the map. Kubernetes calls: get, patch (and create
when the map is absent) configmaps kube-system/coredns-custom — the chart grants patch behind
``coredns.verboseLog.enabled``.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from aksdns.errors import ClusterError
from workers.probes.kube import KUBE_SYSTEM, Clients, call, is_not_found, read_configmap

CONFIGMAP = "coredns-custom"
KEY = "aksdns-verbose-log.override"


def read_key(c: Clients) -> str | None:
    return (read_configmap(c, CONFIGMAP) or {}).get(KEY)


def other_keys(c: Clients) -> dict[str, str]:
    return {k: v for k, v in (read_configmap(c, CONFIGMAP) or {}).items() if k != KEY}


def put_key(c: Clients, text: str) -> None:
    body: dict[str, Any] = {"data": {KEY: text}}
    try:
        call(f"patch ConfigMap kube-system/{CONFIGMAP}", c.core.patch_namespaced_config_map, CONFIGMAP, KUBE_SYSTEM,
             body)
    except ClusterError as err:
        if not is_not_found(err):
            raise
        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=CONFIGMAP, namespace=KUBE_SYSTEM), data={KEY: text})
        call(f"create ConfigMap kube-system/{CONFIGMAP}", c.core.create_namespaced_config_map, KUBE_SYSTEM, cm)


def remove_key(c: Clients) -> bool:
    """Remove aksdns's key; False when it was not there (already reverted)."""
    if read_key(c) is None:
        return False
    patch = [{"op": "remove", "path": f"/data/{KEY}"}]
    try:
        call(f"patch ConfigMap kube-system/{CONFIGMAP}", c.core.patch_namespaced_config_map, CONFIGMAP, KUBE_SYSTEM,
             patch)
    except ClusterError as err:
        if err.status in (404, 422):  # gone meanwhile (the JSON patch's path no longer exists)
            return False
        raise
    return True
