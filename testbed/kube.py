"""A minimal Kubernetes API client for the testbed's own plumbing (JSON over HTTPS, client certificates).

The testbed talks to its API server a few hundred times a minute from the runner; a small client with
an explicit timeout on every call is easier to keep bounded than the full ``kubernetes`` package, and
keeps the testbed importable without it.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
DEFAULT_TIMEOUT_S = 10.0


class ApiError(RuntimeError):
    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"API {status} {reason}: {body[:300]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


class Kube:
    def __init__(self, creds: Credentials, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.creds = creds
        self.timeout = timeout
        self._ctx = ssl.create_default_context(cafile=str(creds.ca_file))
        self._ctx.load_cert_chain(str(creds.cert_file), str(creds.key_file))

    def request(self, method: str, path: str, body: JSON | list[Any] | None = None,
                content_type: str = "application/json", query: dict[str, str] | None = None,
                timeout: float | None = None) -> JSON:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        conn = http.client.HTTPSConnection(self.creds.host, self.creds.port, context=self._ctx,
                                           timeout=timeout or self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status >= 400:
            raise ApiError(resp.status, resp.reason, text)
        if not text:
            return {}
        data = json.loads(text)
        return data if isinstance(data, dict) else {"items": data}

    def get(self, path: str, **query: str) -> JSON:
        return self.request("GET", path, query=query or None)

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, obj: JSON) -> JSON:
        return self.request("POST", path, obj)

    def apply(self, path: str, name: str, obj: JSON) -> JSON:
        """Server-side apply: idempotent create-or-update, so `up` can run against a live cluster."""
        return self.request("PATCH", f"{path}/{name}", obj, "application/apply-patch+yaml",
                            {"fieldManager": "aksdns-testbed", "force": "true"})

    def merge_patch(self, path: str, patch: JSON) -> JSON:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, path: str) -> bool:
        try:
            self.request("DELETE", path)
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    def healthy(self) -> bool:
        try:
            conn = http.client.HTTPSConnection(self.creds.host, self.creds.port, context=self._ctx,
                                               timeout=2)
            try:
                conn.request("GET", "/readyz")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except OSError:
            return False


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """REST collection path of the few kinds the testbed creates."""
    plural = {
        "Namespace": "namespaces", "Node": "nodes", "ServiceAccount": "serviceaccounts",
        "ConfigMap": "configmaps", "Service": "services", "Pod": "pods", "Deployment": "deployments",
        "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles",
        "RoleBinding": "rolebindings", "CustomResourceDefinition": "customresourcedefinitions",
        "Logs": "logs", "Secret": "secrets",
        # metrics.k8s.io (testbed/metrics.py): kwok's emulated kubelet metrics and metrics-server's APIService
        "Metric": "metrics", "ResourceUsage": "resourceusages", "ClusterResourceUsage": "clusterresourceusages",
        "Endpoints": "endpoints", "APIService": "apiservices",
        "DaemonSet": "daemonsets", "NetworkPolicy": "networkpolicies", "NodeNetworkConfig": "nodenetworkconfigs",
        "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
    }[kind]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        return f"{base}/namespaces/{namespace}/{plural}"
    return f"{base}/{plural}"


def apply_object(kube: Kube, obj: JSON) -> JSON:
    meta = obj["metadata"]
    return kube.apply(collection_path(obj["apiVersion"], obj["kind"], meta.get("namespace")),
                      meta["name"], obj)
