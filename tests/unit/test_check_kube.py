"""Translation of API objects into check evidence (no cluster needed)."""

from __future__ import annotations

from kubernetes import client

from workers.probes.kube import coredns_pod_from, cpu_millis, limits_by_node, memory_bytes, node_from, parse_custom

AKS_COREFILE = """.:53 {
    errors
    ready
    health { lameduck 5s }
    kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure fallthrough in-addr.arpa ip6.arpa ttl 30 }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import custom/*.override
}
import custom/*.server
"""


def test_parse_custom_server_and_override() -> None:
    custom = parse_custom(
        {
            "contoso.server": (
                "contoso.corp:53 {\n    errors\n    cache 30\n    forward . 10.10.0.4 10.10.0.5:5353\n}\n"
            ),
            "log.override": "log\nhosts {\n  1.2.3.4 a.b\n  fallthrough\n}\n",
            "tls.server": "example.org:53 {\n  forward . tls://9.9.9.9 {\n    tls_servername dns.quad9.net\n  }\n}\n",
        },
        AKS_COREFILE,
    )
    assert custom.present and custom.default_corefile
    assert custom.keys == ("contoso.server", "log.override", "tls.server")
    fwd = {f.zone: f.servers for f in custom.forwarders}
    assert fwd["contoso.corp"] == ("10.10.0.4", "10.10.0.5:5353")
    v6 = parse_custom({"v6.server": "v6.corp:53 {\n  forward . [fd00::4]:5353 fd00::5\n}\n"}, None)
    assert v6.forwarders[0].servers == ("[fd00::4]:5353", "fd00::5")
    assert "example.org" not in fwd  # tls:// forwarders cannot be probed with plain DNS
    assert custom.overrides == ("log", "hosts")


def test_parse_custom_absent_and_changed_corefile() -> None:
    custom = parse_custom(None, AKS_COREFILE.replace("forward . /etc/resolv.conf", "forward . 10.0.0.4"))
    assert not custom.present and not custom.default_corefile


def test_quantities() -> None:
    assert cpu_millis("1762m") == 1762 and cpu_millis("4") == 4000 and cpu_millis("junk") == 0
    assert memory_bytes("1762Mi") == 1762 * 2**20 and memory_bytes("1G") == 10**9 and memory_bytes(None) == 0


def _pod(node: str, cpu: str, mem: str, phase: str = "Running") -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(
            node_name=node,
            containers=[
                client.V1Container(
                    name="c", resources=client.V1ResourceRequirements(limits={"cpu": cpu, "memory": mem})
                )
            ],
        ),
        status=client.V1PodStatus(phase=phase),
    )


def test_overcommit_like_kubectl_describe_node() -> None:
    limits = limits_by_node([_pod("n1", "3", "3Gi"), _pod("n1", "3044m", "1Gi"), _pod("n1", "9", "9Gi", "Succeeded")])
    node = node_from(
        client.V1Node(
            metadata=client.V1ObjectMeta(name="n1"),
            spec=client.V1NodeSpec(),
            status=client.V1NodeStatus(
                allocatable={"cpu": "4300m", "memory": "4Gi"},
                conditions=[
                    client.V1NodeCondition(type="Ready", status="True"),
                    client.V1NodeCondition(type="MemoryPressure", status="True"),
                ],
            ),
        ),
        limits,
    )
    assert node.ready and node.pressure == ("MemoryPressure",)
    assert node.cpu_limits_pct == 140 and node.overcommitted  # 140.56 %: kubectl truncates, as the guide shows


def test_coredns_pod_restarts_and_oom() -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="coredns-1"),
        spec=client.V1PodSpec(node_name="n1", containers=[]),
        status=client.V1PodStatus(
            phase="Running",
            pod_ip="10.244.0.5",
            conditions=[client.V1PodCondition(type="Ready", status="False")],
            container_statuses=[
                client.V1ContainerStatus(
                    name="coredns",
                    image="i",
                    image_id="",
                    ready=False,
                    restart_count=4,
                    state=client.V1ContainerState(running=client.V1ContainerStateRunning()),
                    last_state=client.V1ContainerState(
                        terminated=client.V1ContainerStateTerminated(exit_code=137, reason="OOMKilled")
                    ),
                )
            ],
        ),
    )
    p = coredns_pod_from(pod)
    assert (p.ip, p.node, p.ready, p.restarts, p.oom_killed, p.last_reason) == (
        "10.244.0.5",
        "n1",
        False,
        4,
        True,
        "OOMKilled",
    )


def test_old_restarts_are_history() -> None:
    from datetime import UTC, datetime

    finished = datetime(2026, 1, 1, tzinfo=UTC)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="coredns-2"),
        spec=client.V1PodSpec(node_name="n1", containers=[]),
        status=client.V1PodStatus(
            phase="Running",
            pod_ip="10.244.0.6",
            conditions=[client.V1PodCondition(type="Ready", status="True")],
            container_statuses=[
                client.V1ContainerStatus(
                    name="coredns",
                    image="i",
                    image_id="",
                    ready=True,
                    restart_count=2,
                    state=client.V1ContainerState(running=client.V1ContainerStateRunning()),
                    last_state=client.V1ContainerState(
                        terminated=client.V1ContainerStateTerminated(
                            exit_code=1, reason="Error", finished_at=finished
                        )
                    ),
                )
            ],
        ),
    )
    p = coredns_pod_from(pod, now=finished.timestamp() + 7200)
    assert p.last_restart_age_s == 7200 and not p.recently_restarted and not p.troubled
    assert coredns_pod_from(pod, now=finished.timestamp() + 60).recently_restarted
