"""`python -m testbed up|down|status|build` (wired to `aksdns testbed ...`).

`up` starts the testbed in the background and returns once CoreDNS answers; it prints what it started
(shell-friendly KEY=value lines with --env, JSON with --json). `down` stops everything it finds,
also leftovers of a crashed run. `status` prints the same description as `up`, or exits 1 when down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from testbed import cluster


def _print(desc: dict[str, Any], as_json: bool, as_env: bool) -> None:
    if as_json:
        print(json.dumps(desc, indent=2))
        return
    pods = desc.get("coredns_pods", [])
    if as_env:
        print(f"KUBECONFIG={desc['kubeconfig']}")
        print(f"AKSDNS_TESTBED_API_URL={desc['api_url']}")
        print(f"AKSDNS_TESTBED_KUBE_DNS_IP={desc['kube_dns_ip']}")
        print(f"AKSDNS_TESTBED_COREDNS_POD_IPS={','.join(p['ip'] for p in pods)}")
        print(f"AKSDNS_TESTBED_UPSTREAM={desc['upstream']}")
        print(f"AKSDNS_TESTBED_WORKER_KUBECONFIG={desc['worker_kubeconfig']}")
        return
    print(f"kubeconfig:        {desc['kubeconfig']}")
    print(f"worker kubeconfig: {desc['worker_kubeconfig']}  (ServiceAccount aksdns/aksdns-worker)")
    print(f"API server:        {desc['api_url']}  (Kubernetes {desc['kubernetes_version']})")
    print(f"kube-dns Service:  {desc['kube_dns_ip']}")
    for p in pods:
        print(f"CoreDNS pod:       {p['name']}  {p['ip']}  on {p['node']}  ready={p['ready']}")
    for node in desc["nodes"]:
        print(f"node:              {node}  {desc['node_ips'][node]}  (ip netns exec {desc['node_netns'][node]})")
    print(f"upstream DNS:      {desc['upstream']}  (stands in for {desc['stands_in_for']})")
    print(f"state and logs:    {desc['run_dir']}")
    running = ", ".join(f"{name} {pid}" for name, pid in desc.get("processes", {}).items())
    print(f"processes (pid):   {running}")
    mem = desc.get("memory_mib", {})
    print(f"memory (RSS):      {sum(mem.values())} MiB in {len(mem)} process groups")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start the testbed in the background")
    p_up.add_argument("--json", action="store_true")
    p_up.add_argument("--env", action="store_true", help="print KEY=value lines")
    p_up.add_argument("--nodes", type=int, default=3, choices=[1, 2, 3])
    p_up.add_argument("--force", action="store_true", help="even while a test session uses it")
    p_down = sub.add_parser("down", help="stop the testbed and remove everything it created")
    p_down.add_argument("--force", action="store_true", help="even while a test session uses it")
    p_status = sub.add_parser("status", help="describe the running testbed")
    p_status.add_argument("--json", action="store_true")
    p_status.add_argument("--env", action="store_true")
    p_build = sub.add_parser("build", help="build the binaries (same as testbed/build.sh)")
    p_build.add_argument("components", nargs="*")
    args = parser.parse_args(argv)

    if args.cmd == "build":
        from testbed import build

        return build.main(args.components)
    if args.cmd in ("up", "down") and not args.force:
        holder = cluster.session_holder()
        if holder:
            # `up` restarts from scratch, so both would pull the cluster from under that session.
            print(f"testbed: in use by {holder}; wait for it, or pass --force", file=sys.stderr)
            return 3
    if args.cmd == "down":
        cluster.down()
        print("testbed: down")
        return 0
    if args.cmd == "status":
        desc = cluster.status()
        if not desc.get("running"):
            print(json.dumps(desc) if args.json else "testbed: not running", file=sys.stdout)
            return 1
        _print(desc, args.json, args.env)
        return 0
    started = time.monotonic()
    try:
        tb = cluster.up(node_count=args.nodes)
    except cluster.TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 2
    desc = tb.describe()
    if not (args.json or args.env):
        print(f"testbed: up in {time.monotonic() - started:.1f} s")
    _print(desc, args.json, args.env)
    return 0


def _main_quiet_pipe() -> int:
    try:
        return main()
    except BrokenPipeError:
        # Output piped into `head` and the like: the work is done, only the reader went away.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(_main_quiet_pipe())
