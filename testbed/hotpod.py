"""A client that hammers one CoreDNS pod from one UDP socket (a "hot pod"), bounded in rate and time.

``python -m testbed.hotpod --server 10.244.0.2 --qps 40 --seconds 60``: one fixed source port, as a
client that reuses its socket (through the Service it would stick to one pod); names under
wild.example.com... are not used, so the load is CoreDNS's own cache and the kubernetes plugin.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

import dns.message

NAMES = ("kubernetes.default.svc.cluster.local", "kube-dns.kube-system.svc.cluster.local")
MAX_QPS = 200
MAX_SECONDS = 600


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.hotpod")
    p.add_argument("--server", required=True)
    p.add_argument("--qps", type=float, default=40.0)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args(argv)
    qps, seconds = min(max(args.qps, 1.0), MAX_QPS), min(max(args.seconds, 1.0), MAX_SECONDS)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.2)
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        wire = dns.message.make_query(NAMES[sent % len(NAMES)], "A").to_wire()
        try:
            sock.sendto(wire, (args.server, 53))
            sock.recv(4096)
        except OSError:
            pass
        sent += 1
        time.sleep(max(0.0, 1.0 / qps - 0.001))
    print(f"hotpod: {sent} queries to {args.server}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
