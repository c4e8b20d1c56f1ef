"""Tests of the testbed itself: a real API server, kwok nodes, real CoreDNS processes, real faults.

Every query goes to an address inside the testbed's own network namespaces (10.224/16 nodes and
upstream, 10.244/16 pods, the 10.0.0.10 VIP programmed by nftables) or to loopback.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from testbed import layout
from testbed.cluster import Testbed
from testbed.kube import ApiError
from testbed.procs import wait_for
from testbed.sh import run

pytestmark = pytest.mark.testbed

K8S_NAME = "kubernetes.default.svc.cluster.local"


def query(server: str, name: str, rdtype: str = "A", timeout: float = 3.0) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), server, timeout=timeout)


def a_records(reply: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset if rrset.rdtype == 1)


def fresh_name(zone: str = "example.net") -> str:
    """A name no cache has seen, so each check reaches the upstream."""
    return f"t{secrets.token_hex(6)}.{zone}"


@pytest.fixture
def tb(testbed: Testbed) -> Iterator[Testbed]:
    yield testbed
    testbed.reset_faults()


# ---- the cluster as built ----------------------------------------------------------------------------
def test_nodes_are_ready_and_aks_shaped(tb: Testbed) -> None:
    assert len(tb.nodes) == 3
    for node in tb.nodes:
        assert re.fullmatch(r"aks-nodepool1-\d+-vmss[0-9a-z]{6}", node)
        assert tb.node_ready(node)
        obj = tb.kube.get(f"/api/v1/nodes/{node}")
        assert obj["status"]["allocatable"]["cpu"] == "1900m"
        assert {"type": "InternalIP", "address": tb.node_ips[node]} in obj["status"]["addresses"]
    out = tb.kubectl("get", "nodes", "-o", "name")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 3


def test_server_reports_its_real_version(tb: Testbed) -> None:
    version = tb.kube.get("/version")
    assert version["gitVersion"].startswith("v1.35.")


def test_coredns_pods_running_with_ips_behind_the_kube_dns_service(tb: Testbed) -> None:
    pods = tb.coredns_pods()
    assert len(pods) == 2
    assert all(p.ready for p in pods)
    assert all(p.ip.startswith("10.244.") for p in pods)
    assert len({p.ip for p in pods}) == 2
    svc = tb.kube.get("/api/v1/namespaces/kube-system/services/kube-dns")
    assert svc["spec"]["clusterIP"] == tb.kube_dns_ip == "10.0.0.10"
    deploy = tb.kube.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
    assert deploy["status"].get("readyReplicas") == 2
    slices = tb.kube.get("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices",
                         labelSelector="kubernetes.io/service-name=kube-dns")["items"]
    addresses = {a for s in slices for ep in s.get("endpoints") or [] for a in ep["addresses"]}
    assert addresses == {p.ip for p in pods}


def test_kubernetes_default_resolves_at_each_pod_ip_and_the_service_ip(tb: Testbed) -> None:
    for server in [*tb.coredns_pod_ips, tb.kube_dns_ip]:
        reply = query(server, K8S_NAME)
        assert reply.rcode() == dns.rcode.NOERROR
        assert a_records(reply) == ["10.0.0.1"]  # the kubernetes Service, from the kubernetes plugin
    reply = query(tb.kube_dns_ip, "kube-dns.kube-system.svc.cluster.local")
    assert a_records(reply) == ["10.0.0.10"]


def test_external_name_resolves_through_the_upstream(tb: Testbed) -> None:
    assert a_records(query(tb.upstream, "www.example.com")) == ["192.0.2.10"]
    for server in [*tb.coredns_pod_ips, tb.kube_dns_ip]:
        assert a_records(query(server, "www.example.com")) == ["192.0.2.10"]
    assert query(tb.kube_dns_ip, fresh_name()).rcode() == dns.rcode.NXDOMAIN


def test_aks_corefile_templates_answer_nxdomain(tb: Testbed) -> None:
    reply = query(tb.coredns_pod_ips[0], "a.b.c.d.internal.cloudapp.net")
    assert reply.rcode() == dns.rcode.NXDOMAIN


def test_node_namespace_has_the_node_resolv_conf(tb: Testbed) -> None:
    node = tb.nodes[0]
    out = run(["ip", "netns", "exec", tb.node_netns[node], "cat", "/etc/resolv.conf"])
    assert f"nameserver {tb.upstream}" in out.stdout
    addr = run(["ip", "-n", tb.node_netns[node], "-4", "-o", "addr", "show", "eth0"]).stdout
    assert tb.node_ips[node] in addr


def test_coredns_logs_are_served_through_kubectl(tb: Testbed) -> None:
    pod = tb.coredns_pods()[0].name

    def has_banner() -> bool:
        out = tb.kubectl("-n", "kube-system", "logs", pod, timeout=15)
        return out.returncode == 0 and "CoreDNS-" in out.stdout

    wait_for("CoreDNS start-up banner in kubectl logs", has_banner, 30)


def test_coredns_custom_override_is_loaded(tb: Testbed) -> None:
    name = f"custom-{secrets.token_hex(3)}.testbed.example"
    tb.kube.merge_patch("/api/v1/namespaces/kube-system/configmaps/coredns-custom", {"data": {
        "testbed.override": f"hosts {{\n  192.0.2.99 {name}\n  fallthrough\n}}\n"}})
    try:
        def answered() -> bool:
            return all(a_records(query(ip, name)) == ["192.0.2.99"] for ip in tb.coredns_pod_ips)

        wait_for("the coredns-custom override at every CoreDNS pod", answered, 30, 0.5)
    finally:
        tb.kube.request("PUT", "/api/v1/namespaces/kube-system/configmaps/coredns-custom",
                        {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "coredns-custom", "namespace": "kube-system"}, "data": {}})


# ---- pods that really run ----------------------------------------------------------------------------
PROBE_SCRIPT = """
import json, os, socket, sys
with open('/etc/resolv.conf') as f:
    resolv = f.read()
print('resolv:', resolv.replace(chr(10), ' | '))
print('node:', os.environ.get('NODE_NAME'))
with open('/dev/termination-log', 'w') as f:
    f.write(json.dumps({'nameservers': [l.split()[1] for l in resolv.splitlines() if l.startswith('nameserver')]}))
sys.exit(3)
"""


def _pod(name: str, node: str, script: str, host_network: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": {"testbed.aksdns.dev/run": "true"}},
        "spec": {
            "nodeName": node, "hostNetwork": host_network, "dnsPolicy": "Default", "restartPolicy": "Never",
            "activeDeadlineSeconds": 60,
            "containers": [{
                "name": "probe", "image": "aksdns:dev", "command": ["python3", "-c", script],
                "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }],
        },
    }


def _wait_terminated(tb: Testbed, name: str) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def done() -> bool:
        pod = tb.kube.get(f"/api/v1/namespaces/default/pods/{name}")
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            result.update(pod)
            return True
        return False

    wait_for(f"pod {name} to finish", done, 60, 0.25)
    return result


def test_pod_command_runs_for_real_in_the_node_namespace(tb: Testbed) -> None:
    node = tb.nodes[1]
    name = f"probe-{uuid.uuid4().hex[:8]}"
    tb.kube.create("/api/v1/namespaces/default/pods", _pod(name, node, PROBE_SCRIPT))
    try:
        pod = _wait_terminated(tb, name)
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["podIP"] == tb.node_ips[node]  # hostNetwork: the node's address
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3
        assert json.loads(term["message"]) == {"nameservers": [tb.upstream]}
        logs = tb.kubectl("-n", "default", "logs", name, timeout=15)
        assert logs.returncode == 0, logs.stderr
        assert f"nameserver {tb.upstream}" in logs.stdout
        assert f"node: {node}" in logs.stdout
    finally:
        tb.kube.delete(f"/api/v1/namespaces/default/pods/{name}")


def test_pod_network_namespace_reaches_coredns_and_falls_back_to_logs(tb: Testbed) -> None:
    script = (
        "import socket, sys\n"
        "import dns.message, dns.query\n"
        f"r = dns.query.udp(dns.message.make_query('{K8S_NAME}', 'A'), '{tb.kube_dns_ip}', timeout=3)\n"
        "print('answer', r.answer[0][0].to_text())\n"
        "sys.exit(1)\n"
    )
    name = f"podnet-{uuid.uuid4().hex[:8]}"
    manifest = _pod(name, tb.nodes[0], script, host_network=False)
    manifest["spec"]["containers"][0]["command"][0] = "python"  # the testbed's venv python (dnspython)
    tb.kube.create("/api/v1/namespaces/default/pods", manifest)
    try:
        pod = _wait_terminated(tb, name)
        assert pod["status"]["podIP"].startswith("10.244.")
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 1
        # No termination message written, FallbackToLogsOnError: the log tail becomes the message.
        assert "answer 10.0.0.1" in term["message"]
    finally:
        tb.kube.delete(f"/api/v1/namespaces/default/pods/{name}")


# ---- fault knobs -------------------------------------------------------------------------------------
def test_upstream_drop(tb: Testbed) -> None:
    tb.upstream_drop(100)
    with pytest.raises(dns.exception.Timeout):
        query(tb.upstream, fresh_name(), timeout=1)
    reply = query(tb.coredns_pod_ips[0], fresh_name(), timeout=10)
    assert reply.rcode() == dns.rcode.SERVFAIL
    tb.upstream_reset()
    assert query(tb.upstream, fresh_name()).rcode() == dns.rcode.NXDOMAIN


def test_upstream_drop_share(tb: Testbed) -> None:
    tb.upstream_drop(50)
    answered = 0
    for _ in range(40):
        try:
            query(tb.upstream, fresh_name(), timeout=0.3)
            answered += 1
        except dns.exception.Timeout:
            pass
    assert 5 <= answered <= 35  # about half; bounds wide enough never to flake


def test_upstream_delay_gives_servfail_through_coredns(tb: Testbed) -> None:
    tb.upstream_delay(6)
    with pytest.raises(dns.exception.Timeout):
        query(tb.upstream, fresh_name(), timeout=1)
    # The guide's pattern: CoreDNS's forward gives up before a 6 s upstream answers -> SERVFAIL.
    reply = query(tb.coredns_pod_ips[0], fresh_name(), timeout=12)
    assert reply.rcode() == dns.rcode.SERVFAIL


def test_upstream_servfail_and_nxdomain(tb: Testbed) -> None:
    assert a_records(query(tb.upstream, fresh_name("wild.example.com"))) == ["192.0.2.50"]
    tb.upstream_rcode("SERVFAIL")
    assert query(tb.upstream, "www.example.com").rcode() == dns.rcode.SERVFAIL
    assert query(tb.coredns_pod_ips[0], fresh_name(), timeout=10).rcode() == dns.rcode.SERVFAIL
    tb.upstream_rcode("NXDOMAIN")
    assert query(tb.upstream, "www.example.com").rcode() == dns.rcode.NXDOMAIN
    assert query(tb.coredns_pod_ips[1], fresh_name("wild.example.com")).rcode() == dns.rcode.NXDOMAIN


def test_one_coredns_pod_dead(tb: Testbed) -> None:
    victim = tb.coredns_pods()[0]
    tb.coredns_kill(victim.name)

    def unreachable() -> bool:
        try:
            query(victim.ip, K8S_NAME, timeout=1)
            return False
        except dns.exception.Timeout:
            return True

    wait_for("the dead CoreDNS pod IP to stop answering", unreachable, 20, 0.2)
    # The API does not know: the pod still looks Running and Ready.
    assert next(p for p in tb.coredns_pods() if p.name == victim.name).ready
    other = next(p for p in tb.coredns_pods() if p.name != victim.name)
    assert a_records(query(other.ip, K8S_NAME)) == ["10.0.0.1"]
    tb.coredns_reset()
    assert a_records(query(victim.ip, K8S_NAME)) == ["10.0.0.1"]


def test_one_coredns_pod_not_ready_and_restarting(tb: Testbed) -> None:
    victim = tb.coredns_pods()[1]
    tb.coredns_crashloop(victim.name)

    def restarting() -> bool:
        pod = tb.kube.get(f"/api/v1/namespaces/kube-system/pods/{victim.name}")
        cs = pod["status"]["containerStatuses"][0]
        return (cs["restartCount"] >= 2 and not cs["ready"]
                and cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff")

    wait_for("CrashLoopBackOff with restarts", restarting, 40, 0.5)
    assert not next(p for p in tb.coredns_pods() if p.name == victim.name).ready

    def only_other_behind_vip() -> bool:
        slices = tb.kube.get("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices",
                             labelSelector="kubernetes.io/service-name=kube-dns")["items"]
        return all(ep["addresses"][0] != victim.ip or not ep["conditions"].get("ready")
                   for s in slices for ep in s.get("endpoints") or [])

    wait_for("the endpoint to be marked not ready", only_other_behind_vip, 20, 0.25)

    def vip_without_victim() -> bool:  # the runner's VIP rules on this host, where the queries below start
        rules = run(["nft", "list", "table", "ip", layout.NFT_TABLE]).stdout
        return "numgen random mod 1 " in rules and not re.search(rf"\b{re.escape(victim.ip)}\b", rules)

    wait_for("the VIP reprogrammed without the not-ready pod", vip_without_victim, 20, 0.25)
    for _ in range(10):  # the VIP only sends to the remaining Ready pod now
        assert a_records(query(tb.kube_dns_ip, K8S_NAME)) == ["10.0.0.1"]


def test_node_not_ready(tb: Testbed) -> None:
    node = tb.node_not_ready()
    wait_for("node NotReady", lambda: not tb.node_ready(node), 10, 0.2)
    time.sleep(2)  # kwok must not flip it back while unmanaged
    assert not tb.node_ready(node)
    tb.node_ready_reset(node)
    assert tb.node_ready(node)


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_node_overcommitted(tb: Testbed) -> None:
    node = tb.node_overcommit()
    obj = tb.kube.get(f"/api/v1/nodes/{node}")
    pods = tb.kube.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node}")["items"]
    limits = sum(_quantity(c.get("resources", {}).get("limits", {}).get("memory", "0"))
                 for p in pods for c in p["spec"]["containers"])
    assert limits > _quantity(obj["status"]["allocatable"]["memory"])
    out = tb.kubectl("describe", "node", node)
    assert re.search(r"memory\s+\S+\s+\(\d+%\)\s+\S+\s+\((\d{3,})%\)", out.stdout), out.stdout[-1500:]
    tb.node_overcommit_reset()


def test_service_selector_matches_nothing(tb: Testbed) -> None:
    namespace, name = tb.service_without_endpoints()

    def empty_slice() -> bool:
        slices = tb.kube.get(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                             labelSelector=f"kubernetes.io/service-name={name}")["items"]
        return bool(slices) and all(not s.get("endpoints") for s in slices)

    wait_for("an empty EndpointSlice", empty_slice, 20, 0.25)
    svc = tb.kube.get(f"/api/v1/namespaces/{namespace}/services/{name}")
    assert svc["spec"]["selector"] == {"app": "matches-nothing"}
    # DNS still answers the ClusterIP: the fault is invisible to a lookup, as on AKS.
    assert a_records(query(tb.kube_dns_ip, f"{name}.{namespace}.svc.cluster.local")) == [svc["spec"]["clusterIP"]]


def test_worker_service_account_denied(tb: Testbed) -> None:
    allowed = tb.kubectl("get", "pods", "-n", "kube-system", kubeconfig=tb.worker_kubeconfig)
    assert allowed.returncode == 0, allowed.stderr
    tb.worker_deny()

    def forbidden() -> bool:
        out = tb.kubectl("get", "pods", "-n", "kube-system", kubeconfig=tb.worker_kubeconfig)
        return out.returncode != 0 and "Forbidden" in out.stderr

    wait_for("403 for the worker", forbidden, 10, 0.2)
    tb.worker_allow()
    wait_for("the worker allowed again",
             lambda: tb.kubectl("get", "pods", "-n", "kube-system",
                                kubeconfig=tb.worker_kubeconfig).returncode == 0, 10, 0.2)


def test_user_kubeconfig_is_subject_to_rbac(tb: Testbed) -> None:
    path = tb.user_kubeconfig("alice@example.com", ["oncall"])
    out = tb.kubectl("get", "nodes", kubeconfig=path)
    assert out.returncode != 0 and "Forbidden" in out.stderr
    assert 'User "alice@example.com"' in out.stderr
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "testbed-oncall-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "cluster-admin"},
               "subjects": [{"kind": "Group", "name": "oncall", "apiGroup": "rbac.authorization.k8s.io"}]}
    tb.kube.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    try:
        wait_for("group binding to apply",
                 lambda: tb.kubectl("get", "nodes", kubeconfig=path).returncode == 0, 10, 0.2)
    finally:
        try:
            tb.kube.delete("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/testbed-oncall-view")
        except ApiError:
            pass


def test_missing_command_and_deadline_are_reported_like_a_kubelet(tb: Testbed) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    manifest = _pod(missing, tb.nodes[2], "")
    manifest["spec"]["containers"][0]["command"] = ["no-such-program-aksdns-testbed"]
    tb.kube.create("/api/v1/namespaces/default/pods", manifest)
    slow = f"slow-{uuid.uuid4().hex[:8]}"
    manifest = _pod(slow, tb.nodes[2], "import time; print('started', flush=True); time.sleep(60)")
    manifest["spec"]["activeDeadlineSeconds"] = 2
    tb.kube.create("/api/v1/namespaces/default/pods", manifest)
    try:
        term = _wait_terminated(tb, missing)["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 127
        assert "no-such-program-aksdns-testbed" in term["message"]
        pod = _wait_terminated(tb, slow)
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["reason"] == "DeadlineExceeded"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "DeadlineExceeded"
    finally:
        tb.kube.delete(f"/api/v1/namespaces/default/pods/{missing}")
        tb.kube.delete(f"/api/v1/namespaces/default/pods/{slow}")


def test_kubectl_exec_runs_on_the_host(tb: Testbed, tmp_path: Any) -> None:
    marker = tmp_path / "written-by-a-pod.txt"
    marker.write_text("capture bytes\n")
    pod = tb.coredns_pods()[0].name
    out = tb.kubectl("-n", "kube-system", "exec", pod, "--", "cat", str(marker), timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "capture bytes\n"


def test_coredns_pod_on_a_not_ready_node_recovers_with_it(tb: Testbed) -> None:
    pod = tb.coredns_pods()[0]
    tb.node_not_ready(pod.node)
    # The node lifecycle controller marks the pods of a NotReady node not Ready, as on AKS.
    wait_for("the CoreDNS pod on the NotReady node to be not Ready",
             lambda: not next(p for p in tb.coredns_pods() if p.name == pod.name).ready, 60, 0.5)
    tb.node_ready_reset(pod.node)
    wait_for("the CoreDNS pod Ready again", lambda: all(p.ready for p in tb.coredns_pods()), 30, 0.5)


def test_capture_pod_on_a_node_sees_its_coredns_pod_traffic(tb: Testbed) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump not installed")
    target = tb.coredns_pods()[0]
    name = f"capture-{uuid.uuid4().hex[:8]}"
    manifest = _pod(name, target.node, "")
    manifest["spec"]["containers"][0]["command"] = [
        "timeout", "20", "tcpdump", "-n", "-l", "-i", "any", "-c", "2", f"udp port 53 and host {target.ip}"]
    tb.kube.create("/api/v1/namespaces/default/pods", manifest)
    try:
        qname = fresh_name("wild.example.com")

        def captured() -> bool:
            query(tb.kube_dns_ip, qname, timeout=1)  # lands on either pod; the capture waits for its own
            query(target.ip, qname, timeout=1)
            pod = tb.kube.get(f"/api/v1/namespaces/default/pods/{name}")
            return bool(pod["status"].get("phase") in ("Succeeded", "Failed"))

        wait_for("the capture pod to finish", captured, 40, 0.5)
        logs = tb.kubectl("-n", "default", "logs", name, timeout=15).stdout
        assert qname in logs and target.ip in logs, logs
    finally:
        tb.kube.delete(f"/api/v1/namespaces/default/pods/{name}")


def test_token_users_for_rbac(tb: Testbed) -> None:
    path = tb.token_kubeconfig("bob@example.com", ["aksdns:oncall-readers"])
    whoami = tb.kubectl("auth", "whoami", "-o", "json", kubeconfig=path)
    assert whoami.returncode == 0, whoami.stderr
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == "bob@example.com"
    assert "aksdns:oncall-readers" in info["groups"]
    denied = tb.kubectl("get", "configmaps", "-n", "kube-system", kubeconfig=path)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    tampered = path.read_text().replace("tbt.", "tbt.x", 1)
    bad = path.with_name("tampered.kubeconfig")
    bad.write_text(tampered)
    unauthorized = tb.kubectl("get", "nodes", kubeconfig=bad)
    assert unauthorized.returncode != 0 and "Unauthorized" in unauthorized.stderr
