"""The testbed's API-server faults (for `apiserver`), each with its reset, and the konnectivity stand-in.

* konnectivity-agent: two pods in kube-system (label k8s-app=konnectivity-agent, as on AKS) that kwok
  keeps Running and Ready, with a log kwok serves. :func:`install` creates them at `up`.
* :meth:`ApiserverFaults.node_unreachable` — one node's namespace drops TCP to the API server
  (nftables in that node's network namespace, both the HTTPS port and the secure port).
* :meth:`ApiserverFaults.tls_name_mismatch` — the address nodes use for the API server
  (10.224.0.1:443) answers with a certificate from the cluster's CA that names another host
  (``apiserver.contoso.internal``): a TLS server on the bridge address, the nodes' traffic DNATed to
  it in their namespaces. The worker's own address (loopback) still reaches the real API server.
* :meth:`ApiserverFaults.kubernetes_endpoints_missing` — the `kubernetes` Service's Endpoints and
  EndpointSlice deleted, and a ValidatingAdmissionPolicy refusing the API server's endpoint
  reconciler when it writes them back (so they stay missing until the reset).
* :meth:`ApiserverFaults.konnectivity_absent` — the agent pods deleted, and the API server's way to
  the kubelets (kwok's kubelet port) rejected, as on AKS, where that way *is* the tunnel: `kubectl
  logs` and `exec` fail for real.
* :meth:`ApiserverFaults.coredns_cannot_list` — CoreDNS's ClusterRoleBinding (``system:coredns``)
  deleted and its processes restarted: the kubernetes plugin never syncs (`Failed to list`), so
  cluster names get SERVFAIL while other names are forwarded — `check`'s way to `apiserver`.

Rules live in their own nftables table (``aksdns_apifault``): in node namespaces it goes with the
namespace; in the host :func:`cleanup_host` removes it (the reset, and `down`).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import dns.exception
import dns.message
import dns.query
import dns.rcode

from testbed import layout, manifests, pki, procs
from testbed.kube import JSON, Kube, apply_object
from testbed.sh import ok, run
from testbed.state import State

if TYPE_CHECKING:
    from testbed.cluster import Testbed

TABLE = "aksdns_apifault"
AGENT_LABELS = {"k8s-app": "konnectivity-agent", "app.kubernetes.io/part-of": "aks"}
AGENT_NAMES = ("konnectivity-agent-6b8c9d7f5-4kzqx", "konnectivity-agent-6b8c9d7f5-vm2tn")
AGENT_IMAGE = "mcr.microsoft.com/oss/kubernetes/apiserver-network-proxy/agent:v0.30.3-hotfix.20240819"
WRONG_NAME = "apiserver.contoso.internal"
INTERCEPTOR = "apifault-tls"
POLICY = "testbed-deny-kubernetes-endpoints"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
COREDNS_BINDING = "system:coredns"


# ---------------------------------------------------------------------------- konnectivity-agent


def _agent_log(state: State) -> Path:
    path = state.run / "konnectivity-agent.log"
    if not path.exists():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        lines = ["I0101 00:00:00.000000       1 options.go:150] ServerCount set to 1",
                 "I0101 00:00:00.000000       1 client.go:226] \"Connect to server\" serverID=\"testbed\"",
                 "I0101 00:00:01.000000       1 clientset.go:282] \"sync added client connecting to proxy server\""]
        path.write_text("".join(f"{stamp} stderr F {line}\n" for line in lines))
    return path


def install(kube: Kube, state: State) -> None:
    """konnectivity-agent pods (kwok keeps them Ready) with a log kwok serves; idempotent."""
    nodes = state.node_names
    log = _agent_log(state)
    # Its own ServiceAccount, as on AKS (and `up` is faster than the controller that makes `default`).
    apply_object(kube, {"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "konnectivity-agent", "namespace": "kube-system"}})
    for i, name in enumerate(AGENT_NAMES):
        pod = apply_object(kube, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": AGENT_LABELS},
            "spec": {
                "nodeName": nodes[i % len(nodes)],
                "serviceAccountName": "konnectivity-agent",
                "automountServiceAccountToken": False,
                "priorityClassName": "system-cluster-critical",
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                "containers": [{"name": "konnectivity-agent", "image": AGENT_IMAGE,
                                "command": ["/proxy-agent"], "args": ["--proxy-server-port=443"]}],
            },
        })
        apply_object(kube, {
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
            "metadata": {"name": name, "namespace": "kube-system",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name,
                                              "uid": pod["metadata"]["uid"]}]},
            "spec": {"logs": [{"containers": ["konnectivity-agent"], "logsFile": str(log), "follow": False}]},
        })


def agents_ready(kube: Kube) -> bool:
    pods = kube.get("/api/v1/namespaces/kube-system/pods", labelSelector="k8s-app=konnectivity-agent")["items"]
    return len(pods) == len(AGENT_NAMES) and all(
        any(c.get("type") == "Ready" and c.get("status") == "True" for c in p.get("status", {}).get("conditions") or [])
        for p in pods if not p["metadata"].get("deletionTimestamp"))


# ---------------------------------------------------------------------------- nftables


def _nft(netns: str | None, text: str) -> None:
    cmd = ["nft", "-f", "-"] if netns is None else ["ip", "netns", "exec", netns, "nft", "-f", "-"]
    run(cmd, input_text=text)


def _table(body: str) -> str:
    return f"table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n{body}}}\n"


def _drop_table(netns: str | None) -> None:
    cmd = ["nft", "delete", "table", "ip", TABLE]
    ok(cmd if netns is None else ["ip", "netns", "exec", netns, *cmd])


def cleanup_host() -> None:
    """The host-side table (konnectivity_absent); `down` calls it too."""
    _drop_table(None)


# ---------------------------------------------------------------------------- the interceptor


def serve_tls(address: str, port: int, cert: str, key: str) -> None:
    """A TLS endpoint that completes handshakes with its (wrong-named) certificate and answers 503."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server((address, port), reuse_port=False)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError, ssl.SSLError), ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        stop.set()
        listener.close()

    signal.signal(signal.SIGTERM, on_term)
    print(f"tls interceptor on {address}:{port}", flush=True)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


# ---------------------------------------------------------------------------- the knobs


class ApiserverFaults:
    """The knobs; every one has its reset, and :meth:`reset` undoes them all."""

    def __init__(self, tb: Testbed) -> None:
        self.tb = tb
        self.state = tb.state

    @property
    def kube(self) -> Kube:
        return self.tb.kube

    # ---- one node cannot reach the API server
    def node_unreachable(self, node: str | None = None) -> str:
        name = node or self.tb.nodes[-1]
        ports = f"{{ {layout.API_GATEWAY_PORT}, {self.state.api_port} }}"
        _nft(self.tb.node_netns[name], _table(
            "  chain output {\n    type filter hook output priority -10;\n"
            f"    ip daddr {layout.GATEWAY_IP} tcp dport {ports} drop\n  }}\n"))
        return name

    # ---- a certificate for another name where nodes reach the API server
    def tls_name_mismatch(self) -> str:
        crt, key = pki.make_cert(self.state.pki, "apifault-wrong-name", WRONG_NAME, dns_names=[WRONG_NAME])
        port = procs.free_port()
        procs.start(INTERCEPTOR, [sys.executable, "-m", "testbed.faults_apiserver", "serve-tls",
                                  "--address", layout.GATEWAY_IP, "--port", str(port), "--cert", str(crt),
                                  "--key", str(key)], self.state.pids, self.state.logs / f"{INTERCEPTOR}.log",
                    env=_child_env())
        procs.wait_for("the TLS interceptor", lambda: _listening(layout.GATEWAY_IP, port), 10.0)
        for netns in self.tb.node_netns.values():
            _nft(netns, _table(
                "  chain output {\n    type nat hook output priority -110;\n"
                f"    ip daddr {layout.GATEWAY_IP} tcp dport {layout.API_GATEWAY_PORT} "
                f"dnat to {layout.GATEWAY_IP}:{port}\n  }}\n"))
        return WRONG_NAME

    # ---- the kubernetes Service without endpoints
    def kubernetes_endpoints_missing(self, timeout_s: float = 20.0) -> None:
        self.kube.apply(f"{ADMISSION}/validatingadmissionpolicies", POLICY, _deny_policy())
        self.kube.apply(f"{ADMISSION}/validatingadmissionpolicybindings", POLICY, {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": POLICY}, "spec": {"policyName": POLICY, "validationActions": ["Deny"]}})

        def gone() -> bool:
            # The policy takes a moment to be enforced; delete until nothing comes back.
            self.kube.delete("/api/v1/namespaces/default/endpoints/kubernetes")
            for s in self._kubernetes_slices():
                self.kube.delete(f"/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/{s}")
            time.sleep(1.0)
            return (self.kube.get_or_none("/api/v1/namespaces/default/endpoints/kubernetes") is None
                    and not self._kubernetes_slices())

        procs.wait_for("the kubernetes endpoints to stay deleted", gone, timeout_s, 0.5)

    def _kubernetes_slices(self) -> list[str]:
        slices = self.kube.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                               labelSelector="kubernetes.io/service-name=kubernetes")["items"]
        return [s["metadata"]["name"] for s in slices]

    # ---- konnectivity-agent gone, and with it the API server's way to the kubelets
    def konnectivity_absent(self) -> None:
        for name in AGENT_NAMES:
            self.kube.delete(f"/api/v1/namespaces/kube-system/pods/{name}?gracePeriodSeconds=0")
        _nft(None, _table(
            "  chain output {\n    type filter hook output priority 0;\n"
            f"    ip daddr 127.0.0.1 tcp dport {self.state.kubelet_port} reject with tcp reset\n  }}\n"))
        procs.wait_for("the agents to go", lambda: not self.kube.get(
            "/api/v1/namespaces/kube-system/pods", labelSelector="k8s-app=konnectivity-agent")["items"], 30.0, 0.25)

    # ---- CoreDNS cannot read from the API server: its ClusterRoleBinding gone, its processes restarted
    def coredns_cannot_list(self, timeout_s: float = 60.0) -> None:
        """CoreDNS's kubernetes plugin never syncs (its log: `Failed to list ... forbidden`); after its 5 s
        start-up wait it serves, answering SERVFAIL for cluster names and forwarding the rest."""
        self.kube.delete(f"{RBAC}/clusterrolebindings/{COREDNS_BINDING}")
        self._restart_coredns(timeout_s)
        procs.wait_for("CoreDNS answering SERVFAIL for cluster names", lambda: all(
            _rcode(p.ip) == "SERVFAIL" for p in self.tb.coredns_pods()), timeout_s, 0.5)

    def _restart_coredns(self, timeout_s: float) -> None:
        # The runner's crashloop knob stops a pod's process; clearing it starts a fresh one.
        pods = self.tb.coredns_pods()
        for p in pods:
            self.tb._annotate(p.name, "crashloop")
        procs.wait_for("CoreDNS processes stopped", lambda: not any(p.ready for p in self.tb.coredns_pods()),
                       timeout_s, 0.25)
        for p in pods:
            self.tb._annotate(p.name, None)

    # ---- resets
    def reset(self, timeout_s: float = 30.0) -> None:
        for netns in self.tb.node_netns.values():
            _drop_table(netns)
        cleanup_host()
        pid = procs.read_pid(self.state.pids / f"{INTERCEPTOR}.pid")
        if pid is not None:
            procs.stop_pid(pid, grace_s=1.0)
        (self.state.pids / f"{INTERCEPTOR}.pid").unlink(missing_ok=True)
        restored = self.kube.delete(f"{ADMISSION}/validatingadmissionpolicybindings/{POLICY}")
        self.kube.delete(f"{ADMISSION}/validatingadmissionpolicies/{POLICY}")
        if restored or self.kube.get_or_none("/api/v1/namespaces/default/endpoints/kubernetes") is None:
            # The API server's endpoint reconciler writes them back (every 10 s).
            procs.wait_for("the kubernetes endpoints to come back", lambda: bool(
                (self.kube.get_or_none("/api/v1/namespaces/default/endpoints/kubernetes") or {}).get("subsets")),
                timeout_s, 0.5)
        if not agents_ready(self.kube):
            install(self.kube, self.state)
            procs.wait_for("konnectivity-agent Ready", lambda: agents_ready(self.kube), timeout_s, 0.25)
        if self.kube.get_or_none(f"{RBAC}/clusterrolebindings/{COREDNS_BINDING}") is None:
            binding = next(o for o in manifests.kube_system() if o["kind"] == "ClusterRoleBinding"
                           and o["metadata"]["name"] == COREDNS_BINDING)
            apply_object(self.kube, binding)
            # Replace the pods (as `kubectl delete pod` would): a fresh start syncs at once, and the
            # restarts the knob caused stay in a pod's status for good, where later tests would see them.
            old = {p.name for p in self.tb.coredns_pods()}
            for name in old:
                self.kube.delete(f"/api/v1/namespaces/kube-system/pods/{name}")
            procs.wait_for("the replaced CoreDNS pods to answer cluster names", lambda: (
                len(pods := self.tb.coredns_pods()) >= 2 and not old & {p.name for p in pods}
                and all(p.ready and _rcode(p.ip) == "NOERROR" for p in pods)), 2 * timeout_s, 0.5)
            # ... and through the kube-dns Service, once its endpoints and the node dataplane follow.
            procs.wait_for("the kube-dns Service answering through the new pods", lambda: all(
                _rcode(layout.KUBE_DNS_IP) == "NOERROR" for _ in range(8)), 2 * timeout_s, 0.5)


def _deny_policy() -> JSON:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}},
                "resourceRules": [{"apiGroups": ["", "discovery.k8s.io"], "apiVersions": ["*"],
                                   "operations": ["CREATE", "UPDATE"], "resources": ["endpoints", "endpointslices"]}],
            },
            "validations": [{"expression": "object.metadata.name != 'kubernetes'",
                             "message": "testbed fault: the kubernetes Service's endpoints are held missing"}],
        },
    }


def _rcode(server: str, name: str = f"kubernetes.default.svc.{layout.CLUSTER_DOMAIN}") -> str:
    """The answer's rcode for ``name`` at ``server`` ("" when nothing answers within a second)."""
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=1.0)
    except (dns.exception.DNSException, OSError):
        return ""
    return str(dns.rcode.to_text(reply.rcode()))


def _listening(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((address, port)) == 0


def _child_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.faults_apiserver")
    sub = parser.add_subparsers(dest="cmd", required=True)
    tls = sub.add_parser("serve-tls")
    tls.add_argument("--address", required=True)
    tls.add_argument("--port", type=int, required=True)
    tls.add_argument("--cert", required=True)
    tls.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    serve_tls(args.address, args.port, args.cert, args.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
