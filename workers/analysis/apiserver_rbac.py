"""The exact RBAC objects that grant what a ServiceAccount was refused (403), as YAML to apply.

Pure: denied permissions in, manifests out. Namespaced permissions become a Role and RoleBinding in
their namespace; cluster-wide ones and non-resource URLs a ClusterRole and ClusterRoleBinding. Names
say what they are for, so a reviewer can tell them from the chart's own objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import yaml

from workers.evidence.apiserver import Permission

RBAC = "rbac.authorization.k8s.io/v1"


def split_subject(user: str) -> tuple[str, str]:
    """`system:serviceaccount:NS:NAME` → (NS, NAME)."""
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return parts[2], parts[3]
    raise ValueError(f"not a ServiceAccount: {user}")


def _rules(permissions: Sequence[Permission]) -> list[dict[str, Any]]:
    """One rule per (group, resource, names), verbs merged; non-resource URLs apart."""
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    urls: dict[str, list[str]] = defaultdict(list)
    for p in permissions:
        if not p.resource:
            urls[p.name].append(p.verb)
        else:
            grouped[(p.group, p.resource, p.name)].append(p.verb)
    rules: list[dict[str, Any]] = []
    for (group, resource, name), verbs in sorted(grouped.items()):
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": sorted(set(verbs))}
        if name:
            rule["resourceNames"] = [name]
        rules.append(rule)
    for url, verbs in sorted(urls.items()):
        rules.append({"nonResourceURLs": [url], "verbs": sorted(set(verbs))})
    return rules


def fix_manifests(user: str, denied: Sequence[Permission], name: str = "aksdns-apiserver-fix") -> list[dict[str, Any]]:
    """Role/RoleBinding per namespace and a ClusterRole/ClusterRoleBinding that grant ``denied``."""
    sa_namespace, sa_name = split_subject(user)
    subject = {"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}
    by_namespace: dict[str, list[Permission]] = defaultdict(list)
    for p in denied:
        by_namespace[p.namespace].append(p)
    objects: list[dict[str, Any]] = []
    role_name = f"{name}-{sa_name}"
    for namespace, perms in sorted(by_namespace.items()):
        meta: dict[str, Any] = {"name": role_name, "labels": {"app.kubernetes.io/managed-by": "aksdns-suggestion"}}
        if namespace:
            meta["namespace"] = namespace
        kind = "Role" if namespace else "ClusterRole"
        objects.append({"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": _rules(perms)})
        objects.append({
            "apiVersion": RBAC,
            "kind": f"{kind}Binding",
            "metadata": dict(meta),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name},
            "subjects": [subject],
        })
    return objects


def fix_yaml(user: str, denied: Sequence[Permission]) -> str:
    """The manifests as one YAML stream, with a comment naming what each grant is for."""
    header = [f"# Grants {user} what the API server refused (HTTP 403):"]
    header += [f"#   {p.text}" + (f"  ({p.why})" if p.why else "") for p in denied]
    header.append("# Review, then: kubectl apply -f <this file>")
    body = yaml.safe_dump_all(fix_manifests(user, denied), sort_keys=False)
    return "\n".join(header) + "\n---\n" + body
