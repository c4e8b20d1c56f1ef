"""Fault knobs for `service`: a Service ``web`` in ``testbed-apps`` whose backends really run.

Backends are pods the runner executes (``python -m testbed.backend``, listening on their port) on
two nodes; the dataplane programs the ClusterIP and enforces NetworkPolicies, so connects fail or
succeed for real. Each knob returns ``(namespace, name)`` of the Service to ask about:

* :func:`healthy` — selector, ports and listeners all agree;
* :func:`wrong_selector` — the Service selects ``app=webapp``, the pods are ``app=web``;
* :func:`target_port_mismatch` — targetPort 8081, the containers declare and listen on 8080;
* :func:`not_listening` — the containers declare 8080 but listen on 9090;
* :func:`deny_policy` — a NetworkPolicy selecting the pods with no ingress rule (drops everything
  but traffic from the pods' own nodes), enforced by the dataplane.

:func:`restore_service` puts the healthy Service back over a selector or targetPort knob.

:func:`reset` removes them all (``Testbed.reset_faults`` calls it).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from testbed import dataplane, layout, procs
from testbed.kube import JSON, apply_object

if TYPE_CHECKING:
    from testbed.cluster import Testbed

NAMESPACE = "testbed-apps"
NAME = "web"
FAULT_LABEL = "testbed.aksdns.dev/fault"
FAULT_VALUE = "service"
PORT = 8080
REPO = str(Path(__file__).resolve().parent.parent)
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
DEADLINE_S = 3600


def _meta(name: str, **labels: str) -> JSON:
    return {"name": name, "namespace": NAMESPACE, "labels": {FAULT_LABEL: FAULT_VALUE, **labels}}


def _namespace(tb: Testbed) -> None:
    apply_object(tb.kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


def backends(tb: Testbed, *, listen: int = PORT, declare: int = PORT, replicas: int = 2) -> list[str]:
    """``replicas`` pods labelled app=web on different nodes, declaring ``declare`` (named http) and
    listening on ``listen``; returns once each really listens."""
    _namespace(tb)
    names = []
    for i in range(replicas):
        name = f"{NAME}-{i}"
        apply_object(tb.kube, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {**_meta(name, app=NAME, tier="frontend"), "annotations": {layout.RUN_ANNOTATION: "true"}},
            "spec": {
                "nodeName": tb.nodes[i % len(tb.nodes)],
                "restartPolicy": "Never",
                "activeDeadlineSeconds": DEADLINE_S,
                "containers": [{
                    "name": "web", "image": IMAGE,
                    "command": ["python3", "-m", "testbed.backend", "--port", str(listen)],
                    "env": [{"name": "PYTHONPATH", "value": REPO},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "ports": [{"name": "http", "containerPort": declare, "protocol": "TCP"}],
                }],
            },
        })
        names.append(name)

    def listening() -> bool:
        pods = tb.kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector=f"app={NAME}")["items"]
        ips = [p.get("status", {}).get("podIP") for p in pods if p.get("status", {}).get("phase") == "Running"]
        return len(ips) >= replicas and all(ip and _connects(ip, listen) for ip in ips)

    procs.wait_for("the web backends to listen", listening, 60.0, 0.25)
    return names


def _connects(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1.0):
            return True
    except OSError:
        return False


def _resolves(server: str, name: str, address: str) -> bool:
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=1.0)
    except (dns.exception.DNSException, OSError):
        return False
    return any(rr.address == address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset)


def service(tb: Testbed, *, selector: dict[str, str] | None = None, target_port: int | str = "http") -> tuple[str, str]:
    """The Service ``web``: port 80 → ``target_port`` (default the named port http).

    Returns once every CoreDNS pod answers its name with its ClusterIP: CoreDNS caches answers for
    30 s (as on AKS), so right after an earlier knob's ``web`` was deleted and this one created (a new
    ClusterIP), it still answers the old address — a real, passing fault, but not the one asked for."""
    _namespace(tb)
    apply_object(tb.kube, {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(NAME),
        "spec": {"selector": selector or {"app": NAME},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": target_port}]},
    })
    cluster_ip = tb.kube.get(f"/api/v1/namespaces/{NAMESPACE}/services/{NAME}")["spec"]["clusterIP"]
    fqdn = f"{NAME}.{NAMESPACE}.svc.{layout.CLUSTER_DOMAIN}"
    procs.wait_for(f"CoreDNS to answer {fqdn} with {cluster_ip}",
                   lambda: all(_resolves(ip, fqdn, cluster_ip) for ip in tb.coredns_pod_ips), 60.0, 0.5)
    return NAMESPACE, NAME


def _programmed(tb: Testbed, want_endpoints: int, port: int = PORT) -> None:
    """Wait until the dataplane forwards the ClusterIP to ``want_endpoints`` endpoints on ``port`` (or
    rejects it). The port matters: restoring targetPort keeps the endpoint count, and a Re-run pressed
    before the rules change still finds the ClusterIP refusing (seen in CI)."""
    key = f"{NAMESPACE}/{NAME} 80/tcp"

    def ready() -> bool:
        endpoints = dataplane.read_status(tb.run_dir).get("services", {}).get(key)
        return (endpoints is not None and len(endpoints) == want_endpoints
                and all(e.rsplit(":", 1)[1] == str(port) for e in endpoints))

    procs.wait_for(f"the dataplane to program {key}", ready, 60.0, 0.25)


def healthy(tb: Testbed) -> tuple[str, str]:
    backends(tb)
    ref = service(tb)
    _programmed(tb, 2)
    return ref


def wrong_selector(tb: Testbed) -> tuple[str, str]:
    backends(tb)
    ref = service(tb, selector={"app": "webapp"})
    _programmed(tb, 0)
    return ref


def target_port_mismatch(tb: Testbed) -> tuple[str, str]:
    backends(tb)
    ref = service(tb, target_port=PORT + 1)
    _programmed(tb, 2, PORT + 1)
    return ref


def not_listening(tb: Testbed) -> tuple[str, str]:
    backends(tb, listen=9090)
    ref = service(tb)
    _programmed(tb, 2)
    return ref


def restore_service(tb: Testbed) -> None:
    """The fix for :func:`wrong_selector` and :func:`target_port_mismatch`: the healthy Service applied
    over the knob's (selector app=web, targetPort http; same ClusterIP), once both endpoints forward."""
    service(tb)
    _programmed(tb, 2)


def deny_policy(tb: Testbed, name: str = "deny-web-ingress") -> tuple[str, str]:
    ref = healthy(tb)
    apply_object(tb.kube, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name),
        "spec": {"podSelector": {"matchLabels": {"app": NAME}}, "policyTypes": ["Ingress"], "ingress": []},
    })
    procs.wait_for(f"the dataplane to enforce {name}",
                   lambda: f"{NAMESPACE}/{name}" in dataplane.read_status(tb.run_dir).get("policies", []), 60.0, 0.25)
    return ref


def reset(tb: Testbed) -> None:
    """Delete every object the knobs made (the namespace stays) and wait for the pods to go."""
    if tb.kube.get_or_none(f"/api/v1/namespaces/{NAMESPACE}") is None:
        return
    selector = f"{FAULT_LABEL}={FAULT_VALUE}"
    for path in (f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies",
                 f"/api/v1/namespaces/{NAMESPACE}/services", f"/api/v1/namespaces/{NAMESPACE}/pods"):
        for obj in tb.kube.get(path, labelSelector=selector)["items"]:
            tb.kube.delete(f"{path}/{obj['metadata']['name']}")
    procs.wait_for("the service fault pods to go", lambda: not tb.kube.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector=selector)["items"], 60.0, 0.25)
