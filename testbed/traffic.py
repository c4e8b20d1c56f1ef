"""DNS client pods that send queries on demand, with the ground truth of what they sent.

A client pod is a really-run pod (the runner gives it a network namespace with its pod IP and the
ClusterFirst resolv.conf, behind its node like any pod) whose own command only waits. Queries are sent
on demand from inside that pod's network namespace by :meth:`ClientPod.query` (``python -m
testbed.traffic query ...`` under ``ip netns exec``), to the kube-dns Service IP unless told otherwise,
one socket per query as glibc does; every query comes back as a :class:`Sent` record (source port, DNS
id, name, when, rcode, latency), which is what a test compares a capture with. :meth:`ClientPod.flood`
sends a bounded burst without waiting for answers (the byte-cap test).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import layout, procs
from testbed.kube import JSON, ApiError

CLIENT_LABEL = "testbed.aksdns.dev/dns-client"
CLIENT_DEADLINE_S = 1800


@dataclass(frozen=True)
class Sent:
    """One query a client sent, and what became of it."""

    port: int
    id: int
    name: str
    rdtype: str
    sent_at: float  # epoch seconds
    rcode: str  # NOERROR, NXDOMAIN, ..., or TIMEOUT
    latency_ms: float | None


@dataclass
class Running:
    """Queries being sent in the background."""

    proc: subprocess.Popen[str]

    def wait(self, timeout: float = 120.0) -> list[Sent]:
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"dns client failed ({self.proc.returncode}): {err.strip()[-400:]}")
        return [Sent(**json.loads(line)) for line in out.splitlines() if line.startswith("{")]


@dataclass
class ClientPod:
    """A client pod of the testbed."""

    testbed: Any  # testbed.cluster.Testbed
    namespace: str
    name: str
    uid: str
    ip: str
    node: str

    @property
    def netns(self) -> str:
        return layout.pod_netns(self.uid)

    @classmethod
    def create(cls, tb: Any, name: str, namespace: str, node: str, timeout_s: float = 60.0) -> ClientPod:
        kube = tb.kube
        path = f"/api/v1/namespaces/{namespace}/pods"
        body: JSON = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {CLIENT_LABEL: "true", "app": name},
                         "annotations": {layout.RUN_ANNOTATION: "true"}},
            "spec": {"nodeName": node, "restartPolicy": "Never", "activeDeadlineSeconds": CLIENT_DEADLINE_S,
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "client", "image": "mcr.microsoft.com/azurelinux/base/core:3.0",
                                     "command": ["sleep", str(CLIENT_DEADLINE_S)]}]},
        }
        if kube.get_or_none(f"{path}/{name}") is not None:
            kube.delete(f"{path}/{name}")
            procs.wait_for(f"old pod {name} gone", lambda: kube.get_or_none(f"{path}/{name}") is None, timeout_s)
        kube.create(path, body)

        def running() -> JSON | None:
            pod: JSON | None = kube.get_or_none(f"{path}/{name}")
            if pod is None or (pod.get("status") or {}).get("phase") != "Running":
                return None
            if not Path(f"/run/netns/{layout.pod_netns(pod['metadata']['uid'])}").exists():
                return None
            return pod

        procs.wait_for(f"client pod {namespace}/{name} running", lambda: running() is not None, timeout_s, 0.25)
        pod = running()
        assert pod is not None
        return cls(tb, namespace, name, pod["metadata"]["uid"], pod["status"]["podIP"], node)

    def _argv(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, sys.executable, "-m", "testbed.traffic", *args]

    def start(self, names: list[str], *, count: int = 1, rate: float = 20.0, rdtype: str = "A",
              server: str | None = None, timeout_s: float = 2.0) -> Running:
        """Send ``count`` rounds of queries for ``names`` at about ``rate`` queries a second."""
        args = ["query", "--server", server or layout.KUBE_DNS_IP, "--count", str(count), "--rate", str(rate),
                "--type", rdtype, "--timeout", str(timeout_s), *[a for n in names for a in ("--name", n)]]
        return Running(subprocess.Popen(self._argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True))

    def query(self, names: list[str], **kw: Any) -> list[Sent]:
        return self.start(names, **kw).wait()

    def flood(self, seconds: float, rate: float, name: str = "flood.example.com", server: str | None = None,
              size: int = 0) -> int:
        """Queries as fast as ``rate`` allows for ``seconds``, answers not awaited; returns how many."""
        args = ["flood", "--server", server or layout.KUBE_DNS_IP, "--seconds", str(seconds), "--rate", str(rate),
                "--name", name, "--pad", str(size)]
        done = subprocess.run(self._argv(*args), capture_output=True, text=True, timeout=seconds + 30, check=True)
        return int(done.stdout.strip() or 0)

    def delete(self, timeout_s: float = 30.0) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        kube = self.testbed.kube
        kube.delete(path)
        procs.wait_for(f"pod {self.name} gone", lambda: kube.get_or_none(path) is None, timeout_s)


def ephemeral_refused(kube: Any) -> bool:
    """Does the API server refuse an ephemeral container now? (A dry run on a CoreDNS pod.)"""
    pods = kube.get("/api/v1/namespaces/kube-system/pods", labelSelector="k8s-app=kube-dns")["items"]
    if not pods:
        return False
    pod = pods[0]
    meta = pod["metadata"]
    probe = {"name": "testbed-dry-run", "image": "busybox", "command": ["true"]}
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                                            "resourceVersion": meta["resourceVersion"]},
            "spec": {**pod["spec"], "ephemeralContainers": [*(pod["spec"].get("ephemeralContainers") or []), probe]}}
    try:
        kube.request("PUT", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/ephemeralcontainers",
                     body, query={"dryRun": "All"})
    except ApiError as exc:
        return exc.status in (403, 422) and "not allowed" in exc.body
    return False


# ---- the program that runs inside the client pod's network namespace ----------------------------------


def _query_once(server: str, name: str, rdtype: str, timeout: float) -> dict[str, Any]:
    import dns.exception
    import dns.message
    import dns.rcode

    msg = dns.message.make_query(name, rdtype)
    msg.id = random.randint(1, 65535)  # noqa: S311 - a test client, not security
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - a pod's own address, inside its namespace
        sock.settimeout(timeout)
        port = sock.getsockname()[1]
        sent = time.time()
        t0 = time.monotonic()
        sock.sendto(msg.to_wire(), (server, 53))
        rcode, latency = "TIMEOUT", None
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            try:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                wire, _ = sock.recvfrom(65535)
            except (TimeoutError, OSError):
                break
            try:
                reply = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            if reply.id == msg.id:
                rcode, latency = dns.rcode.to_text(reply.rcode()), (time.monotonic() - t0) * 1000.0
                break
    return {"port": port, "id": msg.id, "name": name.rstrip(".") + ".", "rdtype": rdtype, "sent_at": sent,
            "rcode": rcode, "latency_ms": latency}


def _query(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    interval = 1.0 / max(args.rate, 0.1)
    futures = []
    with ThreadPoolExecutor(max_workers=64) as pool:
        start = time.monotonic()
        i = 0
        for _ in range(args.count):
            for name in args.name:
                when = start + i * interval
                time.sleep(max(0.0, when - time.monotonic()))
                futures.append(pool.submit(_query_once, args.server, name, args.type, args.timeout))
                i += 1
        for f in futures:
            print(json.dumps(f.result()), flush=True)
    return 0


def _flood(args: argparse.Namespace) -> int:
    """A bounded burst from one socket: `rate` queries a second for `seconds`, answers ignored."""
    import dns.message

    sent = 0
    end = time.monotonic() + args.seconds
    interval = 1.0 / max(args.rate, 1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        nxt = time.monotonic()
        while time.monotonic() < end:
            msg = dns.message.make_query(args.name, "A", use_edns=bool(args.pad), pad=args.pad)
            msg.id = sent % 65536
            try:
                sock.sendto(msg.to_wire(), (args.server, 53))
                sent += 1
            except BlockingIOError:
                pass
            try:  # drain answers so the socket buffer never blocks the burst
                while True:
                    sock.recv(65535)
            except (BlockingIOError, OSError):
                pass
            nxt += interval
            time.sleep(max(0.0, nxt - time.monotonic()))
    print(sent)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.traffic")
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("query")
    q.add_argument("--server", required=True)
    q.add_argument("--name", action="append", required=True)
    q.add_argument("--type", default="A")
    q.add_argument("--count", type=int, default=1)
    q.add_argument("--rate", type=float, default=20.0)
    q.add_argument("--timeout", type=float, default=2.0)
    f = sub.add_parser("flood")
    f.add_argument("--server", required=True)
    f.add_argument("--name", required=True)
    f.add_argument("--seconds", type=float, required=True)
    f.add_argument("--rate", type=float, required=True)
    f.add_argument("--pad", type=int, default=0)
    args = parser.parse_args(argv)
    return _query(args) if args.what == "query" else _flood(args)


if __name__ == "__main__":
    sys.exit(main())
