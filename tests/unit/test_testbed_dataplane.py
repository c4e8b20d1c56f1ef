"""The testbed's dataplane translations (pure): Services → kube-proxy-like NAT, NetworkPolicies → per-node
filters, hostPath binds from node directories; the rules are checked by `nft -c` where it can run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testbed import dataplane, kubeproxy, netpol, nodefs

NS = "testbed-apps"


def pod(name: str, ip: str, node: str, labels: dict[str, str], ns: str = NS, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels, "uid": f"uid-{name}"},
            "spec": {"nodeName": node, "containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": phase, "podIP": ip}}


PODS = [pod("web-0", "10.244.0.5", "n0", {"app": "web"}), pod("web-1", "10.244.1.5", "n1", {"app": "web"}),
        pod("ui", "10.244.2.9", "n2", {"app": "ui"}, ns="front"), pod("done", "10.244.0.9", "n0", {"app": "web"},
                                                                      phase="Succeeded")]
NAMESPACES = {NS: {"kubernetes.io/metadata.name": NS}, "front": {"team": "front"}}


def nft_checks(text: str) -> None:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("nft -c needs root and nftables")
    proc = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr


def test_services_forward_to_ready_endpoints_and_reject_without() -> None:
    services = [
        {"metadata": {"namespace": NS, "name": "web"},
         "spec": {"clusterIP": "10.0.9.9", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"metadata": {"namespace": NS, "name": "empty"}, "spec": {"clusterIP": "10.0.9.10", "ports": [{"port": 81}]}},
        {"metadata": {"namespace": "kube-system", "name": "kube-dns"},
         "spec": {"clusterIP": "10.0.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}},
        {"metadata": {"namespace": NS, "name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 82}]}},
    ]
    slices = [{"metadata": {"namespace": NS, "labels": {"kubernetes.io/service-name": "web"}},
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                             {"addresses": ["10.244.1.5"], "conditions": {"ready": False}}]}]
    forwards = kubeproxy.forwards(services, slices)
    assert {f.service: f.endpoints for f in forwards} == {f"{NS}/web": (("10.244.0.5", 8080),), f"{NS}/empty": ()}
    text = dataplane.table_text(kubeproxy.nat_text(forwards, node=True))
    assert "dnat to 10.244.0.5:8080" in text and "ip daddr 10.0.9.10 tcp dport 81 reject with tcp reset" in text
    nft_checks(text)


def test_deny_all_isolates_the_selected_pods_on_their_node_only() -> None:
    deny = {"metadata": {"namespace": NS, "name": "deny"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"], "ingress": []}}
    chains = netpol.node_chains("n0", [deny], PODS, NAMESPACES)
    assert chains["pod_0"] == "    drop\n"
    assert "ip daddr 10.244.0.5 jump pod_0" in chains["policy_forward"]
    assert "10.244.1.5" not in "".join(chains.values())  # web-1 is n1's business
    assert "10.244.0.9" not in "".join(chains.values())  # a finished pod has nothing to protect
    assert netpol.node_chains("n2", [deny], PODS, NAMESPACES) == {}
    assert netpol.enforced([deny], PODS) == [f"{NS}/deny"]
    nft_checks(dataplane.table_text(kubeproxy.nat_text([], node=True, policy_chains=chains)))


def test_allow_rules_become_sources_and_ports() -> None:
    allow = {"metadata": {"namespace": NS, "name": "allow"},
             "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                      "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "front"}}},
                                            {"ipBlock": {"cidr": "10.224.0.0/16", "except": ["10.224.0.1/32"]}}],
                                   "ports": [{"port": "http"}, {"port": 9000, "endPort": 9100, "protocol": "UDP"}]},
                                  {"from": [{"podSelector": {"matchExpressions": [
                                      {"key": "app", "operator": "In", "values": ["web"]}]}}]}]}}
    body = netpol.node_chains("n0", [allow], PODS, NAMESPACES)["pod_0"]
    assert "ip saddr { 10.244.2.9 } tcp dport { 8080 } accept" in body
    assert "ip saddr 10.224.0.0/16 ip saddr != { 10.224.0.1/32 } udp dport 9000-9100 accept" in body
    assert "ip saddr { 10.244.0.5, 10.244.1.5 } accept" in body  # same-namespace pods, every port
    assert body.endswith("    drop\n")
    nft_checks(dataplane.table_text(kubeproxy.nat_text([], node=True, policy_chains=netpol.node_chains(
        "n0", [allow], PODS, NAMESPACES))))


def test_store_sync_keeps_running_pods_and_leaves_others_entries(tmp_path: Path) -> None:
    nodefs.ensure(tmp_path, ["n0"])
    store = nodefs.store_dir(tmp_path, "n0")
    nodefs.write_entry(store, "10.244.0.200", nodefs.sandbox_id("leaked"))
    nodefs.sync_store(tmp_path, "n0", {"10.244.0.5": "uid-a", "10.244.0.6": "uid-b"})
    assert sorted(p.name for p in store.iterdir() if p.name[0].isdigit()) == ["10.244.0.200", "10.244.0.5",
                                                                              "10.244.0.6"]
    nodefs.sync_store(tmp_path, "n0", {"10.244.0.6": "uid-b"})
    assert not (store / "10.244.0.5").exists() and (store / "10.244.0.200").exists()
    assert (store / "lock").exists() and (store / "last_reserved_ip.0").exists()


def test_host_path_binds_come_from_the_node_directory(tmp_path: Path) -> None:
    nodefs.ensure(tmp_path, ["n0"])
    body = {"spec": {"nodeName": "n0", "volumes": [
        {"name": "cni", "hostPath": {"path": "/var/lib/cni/networks", "type": "Directory"}},
        {"name": "other", "hostPath": {"path": "/etc/missing", "type": "Directory"}}]}}
    container = {"volumeMounts": [{"name": "cni", "mountPath": "/var/lib/cni/networks", "readOnly": True}]}
    assert nodefs.binds(body, container, tmp_path) == [
        f"{tmp_path}/nodes/n0/var/lib/cni/networks:/var/lib/cni/networks:ro"]
    with pytest.raises(ValueError, match="not a directory"):
        nodefs.binds(body, {"volumeMounts": [{"name": "other", "mountPath": "/x"}]}, tmp_path)
    escape = {"spec": {"nodeName": "n0", "volumes": [{"name": "up", "hostPath": {"path": "/var/../../etc"}}]}}
    with pytest.raises(ValueError, match="not allowed"):
        nodefs.binds(escape, {"volumeMounts": [{"name": "up", "mountPath": "/x"}]}, tmp_path)
