"""The probe programs of `ipam` and `service` (run here for real on files and loopback sockets), their
pod manifests, and the translation of API objects into evidence."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from workers.evidence.service import OPEN, REFUSED
from workers.probes import ipam_store, kube_ipam, kube_service, node_pods, programs, tcp_connect


def test_programs_table_names_both_new_kinds() -> None:
    assert programs.PROGRAMS["ipam-store"] == "workers.probes.ipam_store:probe_main"
    assert programs.PROGRAMS["tcp-connect"] == "workers.probes.tcp_connect:probe_main"


def test_store_probe_counts_what_the_guide_counts(tmp_path: Path, capsys: Any) -> None:
    store = tmp_path / "networks" / "kubenet"
    store.mkdir(parents=True)
    (tmp_path / "networks" / "azure").mkdir()
    for ip in ("10.244.0.5", "10.244.0.6", "10.244.0.7"):
        (store / ip).write_text(f"{ip.replace('.', '') * 6}\neth0\n")
    old = time.time() - 7200
    os.utime(store / "10.244.0.7", (old, old))
    (store / "lock").touch()
    (store / "last_reserved_ip.0").write_text("10.244.0.7")
    term = tmp_path / "termination-log"
    code = programs.main(["ipam-store", "--root", str(tmp_path / "networks"), "--termination-log", str(term),
                          "--node", "n1"])
    assert code == 0
    out = node_pods.parse_output(capsys.readouterr().out)
    assert out is not None and json.loads(term.read_text()) == out
    reading = ipam_store.reading_from("n1", out)
    assert reading.found and reading.network == "kubenet" and reading.networks == ("azure", "kubenet")
    assert [e.ip for e in reading.entries] == ["10.244.0.5", "10.244.0.6", "10.244.0.7"]
    assert len(reading.entries[0].container_id) == 12
    assert reading.entries[2].age_s >= 7000 > reading.entries[0].age_s


def test_store_probe_without_a_store_says_so(tmp_path: Path, capsys: Any) -> None:
    code = ipam_store.probe_main(["--root", str(tmp_path / "absent"), "--termination-log", str(tmp_path / "t")])
    reading = ipam_store.reading_from("n1", node_pods.parse_output(capsys.readouterr().out))
    assert code == 0 and reading.ok and not reading.found and "no " in reading.error


def test_big_stores_fall_back_to_the_log(tmp_path: Path, capsys: Any) -> None:
    store = tmp_path / "kubenet"
    store.mkdir()
    for i in range(250):
        (store / f"10.244.{i // 200}.{i % 200 + 2}").write_text("a" * 64 + "\neth0\n")
    term = tmp_path / "t"
    ipam_store.probe_main(["--root", str(tmp_path), "--termination-log", str(term)])
    assert json.loads(term.read_text())["truncated"] is True  # 4 KiB kubelet limit
    out = node_pods.parse_output(capsys.readouterr().out)
    assert out is not None and len(ipam_store.reading_from("n", out).entries) == 250


def test_connects_tell_open_from_refused(capsys: Any) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            closed_port = spare.getsockname()[1]
        results = tcp_connect.connect_all([f"127.0.0.1:{open_port}", f"127.0.0.1:{closed_port}"], timeout=2)
        assert [r.status for r in results] == [OPEN, REFUSED]
        assert results[0].source_ip == "127.0.0.1" and results[0].latency_ms is not None
        code = tcp_connect.probe_main(["--target", f"127.0.0.1:{open_port}", "--termination-log", os.devnull])
    out = node_pods.parse_output(capsys.readouterr().out)
    assert code == 0 and out is not None
    assert [o.status for o in tcp_connect.outcomes_from(out)] == [OPEN]


def test_connect_probe_refuses_bad_targets(capsys: Any) -> None:
    assert tcp_connect.probe_main(["--target", "not-an-ip:80", "--termination-log", os.devnull]) == 2
    assert "bad target" in capsys.readouterr().out


def test_store_probe_pods_mount_only_the_store_read_only() -> None:
    plan = ipam_store.plan(node_pods.PodJob("run1", "aksdns", "aksdns:1", ("aksdns", "probe"), "job", "U1"))
    pod = node_pods.pod_manifest(plan, "node-a", 0, [])
    spec = pod["spec"]
    assert spec["hostNetwork"] and spec["nodeName"] == "node-a" and spec["automountServiceAccountToken"] is False
    assert spec["volumes"] == [{"name": "cni-networks", "hostPath": {"path": "/var/lib/cni/networks",
                                                                    "type": "Directory"}}]
    c = spec["containers"][0]
    assert c["volumeMounts"] == [{"name": "cni-networks", "mountPath": "/var/lib/cni/networks", "readOnly": True}]
    assert c["command"] == ["aksdns", "probe", "ipam-store"]
    assert pod["metadata"]["labels"]["aksdns.io/role"] == "ipam-probe"
    assert spec["activeDeadlineSeconds"] == plan.deadline_s <= 3600
    connect_plan = tcp_connect.plan(node_pods.PodJob("r", "aksdns", "i", ("aksdns", "probe")))
    connect = node_pods.pod_manifest(connect_plan, "n", 1, ["--x"])
    assert "volumes" not in connect["spec"] and connect["metadata"]["labels"]["aksdns.io/role"] == "connect-probe"


def test_api_objects_become_evidence() -> None:
    pol = client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="allow", namespace="shop"),
        spec=client.V1NetworkPolicySpec(
            pod_selector=client.V1LabelSelector(match_labels={"app": "web"}),
            ingress=[client.V1NetworkPolicyIngressRule(
                _from=[client.V1NetworkPolicyPeer(
                    ip_block=client.V1IPBlock(cidr="10.0.0.0/8", _except=["10.1.0.0/16"]))],
                ports=[client.V1NetworkPolicyPort(port="http", protocol="TCP")],
            )],
        ),
    )
    info = kube_service.policy_from(pol)
    assert info.types == ("Ingress",) and info.ingress[0].peers[0].excepts == ("10.1.0.0/16",)
    assert info.ingress[0].ports[0].port == "http"
    svc = client.V1Service(metadata=client.V1ObjectMeta(name="web", namespace="shop"),
                           spec=client.V1ServiceSpec(cluster_ip="10.0.1.2", selector={"app": "web"},
                                                     ports=[client.V1ServicePort(port=80, target_port="http")]))
    spec = kube_service.service_from(svc)
    assert spec.ports[0].named_target and spec.fqdn == "web.shop.svc.cluster.local"
    nnc = kube_ipam.nnc_from({"metadata": {"name": "n1"}, "spec": {"requestedIPCount": 32},
                              "status": {"assignedIPCount": 16, "scaler": {"batchSize": 16, "maxIPCount": 250},
                                         "networkContainers": [{"subnetName": "s", "subnetAddressSpace": "10.1.0.0/24",
                                                                "status": "NCUpdateSubnetFullError"}]}})
    assert (nnc.requested, nnc.assigned, nnc.batch, nnc.subnet_full) == (32, 16, 16, True)


def test_pods_and_events_become_ipam_evidence() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, tzinfo=UTC)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web-1", namespace="default",
                                     owner_references=[client.V1OwnerReference(api_version="apps/v1", kind="ReplicaSet",
                                                                               name="web", uid="u")]),
        spec=client.V1PodSpec(node_name="n1", containers=[client.V1Container(name="web")]),
        status=client.V1PodStatus(phase="Pending", start_time=now - timedelta(minutes=8), container_statuses=[
            client.V1ContainerStatus(name="web", image="i", image_id="", ready=False, restart_count=0,
                                     state=client.V1ContainerState(
                                         waiting=client.V1ContainerStateWaiting(reason="ContainerCreating")))]),
    )
    info = kube_ipam.pod_ip_from(pod, now=now.timestamp())
    assert info.creating and not info.running and info.waiting_s == 480 and info.owner_kind == "ReplicaSet"
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="web-1.1", namespace="default"),
        involved_object=client.V1ObjectReference(kind="Pod", name="web-1", namespace="default"),
        reason="FailedCreatePodSandBox", count=204, last_timestamp=now - timedelta(seconds=21),
        message="Failed to create pod sandbox: ... Failed to allocate address: No available addresses",
        source=client.V1EventSource(component="kubelet", host="n1"),
    )
    ev = kube_ipam.sandbox_event_from(event, now=now.timestamp())
    assert (ev.node, ev.count, ev.last_age_s, ev.kind) == ("n1", 204, 21, "no_available_addresses")
