"""Regenerate the recorded-evidence fixtures of the check rules (run: python tests/unit/data/check/_make.py).

Shapes follow what the testbed and AKS produce: two CoreDNS pods on AKS-named nodes, the
kube-dns Service at 10.0.0.10, Azure DNS (or a custom VNet server) as the node upstream,
CoreDNS's forward plugin answering SERVFAIL after ~6 s when its upstream is silent.  The
testbed tests record real runs next to these (recorded_*.json) when the testbed is up.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
AZURE = "168.63.129.16"
INTERNAL = "kubernetes.default.svc.cluster.local"
EXTERNAL = "microsoft.com"
NODES = (
    "aks-nodepool1-17046773-vmss00000m",
    "aks-nodepool1-17046773-vmss00000n",
    "aks-nodepool1-17046773-vmss00000o",
)
PODS = (("coredns-57d886c994-r2k7x", "10.244.0.5", NODES[0]), ("coredns-57d886c994-x9wqz", "10.244.1.7", NODES[1]))

Answer = Callable[[str, str, str, int], tuple[str, float]]  # (layer, name, type, attempt) -> (status, ms)


def ok(_l: str, _n: str, _t: str, _a: int) -> tuple[str, float]:
    return "NOERROR", round(random.uniform(0.4, 4.0), 1)


def record(
    layer: str, target: str, server: str, name: str, t: str, a: int, status: str, ms: float, role: str = ""
) -> dict[str, Any]:
    answers = []
    if status == "NOERROR" and t == "A":
        answers = ["10.0.0.1"] if name == INTERNAL else ["20.76.201.171"]
    return {
        "layer": layer,
        "target": target,
        "server": server,
        "name": name,
        "rdtype": t,
        "attempt": a,
        "status": status,
        "latency_ms": None if status == "TIMEOUT" else ms if status != "TIMEOUT" else None,
        "answers": answers,
        "role": role,
        "error": "no answer within the timeout" if status == "TIMEOUT" else "",
    }


def build(
    *,
    names: tuple[str, ...] = (INTERNAL, EXTERNAL),
    repeat: int = 1,
    pod: Callable[[str, str, str, str, int], tuple[str, float]] | None = None,
    svc: Answer | None = None,
    node: Callable[[str, str, str, int], tuple[str, float]] | None = None,
    vnet: Callable[[str, str, str, int], tuple[str, float]] | None = None,
    upstream: str = AZURE,
    ready_endpoints: int = 2,
    pods_meta: dict[str, dict[str, Any]] | None = None,
    nodes_meta: dict[str, dict[str, Any]] | None = None,
    custom: dict[str, Any] | None = None,
    walks: list[dict[str, Any]] | None = None,
    extra_vnet: list[tuple[str, str, str, Callable[[str, str, int], tuple[str, float]]]] | None = None,
) -> dict[str, Any]:
    probes: list[dict[str, Any]] = []
    types = ("A", "AAAA")
    for pname, ip, _node in PODS:
        for n in names:
            for t in types:
                for a in range(1, repeat + 1):
                    st, ms = pod(pname, "coredns_pod", n, t, a) if pod else ok("", n, t, a)
                    probes.append(record("coredns_pod", pname, ip, n, t, a, st, ms))
    for n in names:
        for t in types:
            for a in range(1, repeat + 1):
                st, ms = svc("service", n, t, a) if svc else ok("", n, t, a)
                probes.append(record("service", "kube-dns", "10.0.0.10", n, t, a, st, ms))
    role = "azure_dns" if upstream == AZURE else "custom_vnet_dns"
    ext = [n for n in names if not n.endswith("cluster.local")]
    for nd in NODES:
        for n in ext:
            for t in types:
                for a in range(1, repeat + 1):
                    st, ms = node(nd, n, t, a) if node else ok("", n, t, a)
                    probes.append(record("node", nd, upstream, n, t, a, st, ms, role))
    for n in ext:
        for t in types:
            for a in range(1, repeat + 1):
                st, ms = vnet(upstream, n, t, a) if vnet else ok("", n, t, a)
                probes.append(record("vnet_dns", f"{role}", AZURE, n, t, a, st, ms, "azure_dns"))
    for server, target, rl, fn in extra_vnet or []:
        for n in (x for x in ext if x.endswith(".corp")):
            for a in range(1, repeat + 1):
                st, ms = fn(n, "A", a)
                probes.append(record("vnet_dns", target, server, n, "A", a, st, ms, rl))
    pods = []
    for pname, ip, nd in PODS:
        meta = {
            "name": pname,
            "ip": ip,
            "node": nd,
            "phase": "Running",
            "ready": True,
            "restarts": 0,
            "oom_killed": False,
            "last_reason": "",
        }
        meta.update((pods_meta or {}).get(pname, {}))
        pods.append(meta)
    nodes = []
    for nd in NODES:
        meta = {
            "name": nd,
            "ready": True,
            "pressure": [],
            "cpu_allocatable_m": 3860,
            "memory_allocatable_b": 12_000_000_000,
            "cpu_limits_m": 1762,
            "memory_limits_b": 1_847_000_000,
            "unschedulable": False,
        }
        meta.update((nodes_meta or {}).get(nd, {}))
        nodes.append(meta)
    return {
        "cluster": "aks-prod-weu",
        "names": list(names),
        "azure_dns": AZURE,
        "probe_timeout_s": 7.0,
        "repeat": repeat,
        "coredns_pods": pods,
        "service": {
            "name": "kube-dns",
            "ip": "10.0.0.10",
            "port": 53,
            "ready_endpoints": ready_endpoints,
            "endpoint_ips": [p[1] for p in PODS][:ready_endpoints],
            "selector": {"k8s-app": "kube-dns"},
        },
        "nodes": nodes,
        "custom": custom
        or {"present": False, "keys": [], "forwarders": [], "overrides": [], "default_corefile": True},
        "node_probes": [
            {
                "node": nd,
                "ok": True,
                "error": "",
                "nameservers": [upstream],
                "search": ["tgwkqskvvx5ejf4atxjgytzmkf.ax.internal.cloudapp.net"],
                "ndots": 1,
                "seconds": 2.1,
            }
            for nd in NODES
        ],
        "probes": probes,
        "walks": walks or [],
        "skipped_nodes": [],
        "notes": [],
        "worker_search": ["aksdns.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "worker_ndots": 5,
        "elapsed_s": 2.4,
    }


def healthy_walk(name: str = EXTERNAL) -> dict[str, Any]:
    cands = [f"{name}.aksdns.svc.cluster.local.", f"{name}.svc.cluster.local.", f"{name}.cluster.local.", f"{name}."]
    return {
        "name": name,
        "server": "10.0.0.10",
        "search": ["aksdns.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "ndots": 5,
        "candidates": cands,
        "statuses": ["NXDOMAIN", "NXDOMAIN", "NXDOMAIN", "NOERROR"],
        "queries": 8,
        "answered_by": f"{name}.",
        "latency_ms": 6.2,
        "synthesized": False,
    }


def scenarios() -> dict[str, dict[str, Any]]:
    ext_only = lambda n: not n.endswith("cluster.local")  # noqa: E731
    out: dict[str, dict[str, Any]] = {}
    random.seed(5)
    out["healthy"] = build(repeat=3, walks=[healthy_walk()])

    random.seed(6)
    dead = lambda *_: ("TIMEOUT", 7000.0)  # noqa: E731
    out["upstream_dead"] = build(
        repeat=2,
        pod=lambda p, _ly, n, t, a: (
            ("SERVFAIL", round(random.uniform(6001, 6090), 1)) if ext_only(n) else ok("", n, t, a)
        ),
        svc=lambda _ly, n, t, a: (
            ("SERVFAIL", round(random.uniform(6001, 6090), 1)) if ext_only(n) else ok("", n, t, a)
        ),
        node=dead,
        vnet=dead,
    )

    random.seed(7)
    drop = lambda *_: ("TIMEOUT", 7000.0) if random.random() < 0.35 else ok("", "", "", 0)  # noqa: E731
    out["upstream_drops"] = build(
        repeat=5,
        pod=lambda p, _ly, n, t, a: (
            (("SERVFAIL", 6030.0) if random.random() < 0.2 else ok("", n, t, a)) if ext_only(n) else ok("", n, t, a)
        ),
        svc=lambda _ly, n, t, a: (
            (("SERVFAIL", 6021.0) if random.random() < 0.2 else ok("", n, t, a)) if ext_only(n) else ok("", n, t, a)
        ),
        node=drop,
        vnet=drop,
    )

    random.seed(8)
    sf = lambda *_: ("SERVFAIL", round(random.uniform(1, 3), 1))  # noqa: E731
    out["upstream_servfail"] = build(
        repeat=2,
        pod=lambda p, _ly, n, t, a: sf() if ext_only(n) else ok("", n, t, a),
        svc=lambda _ly, n, t, a: sf() if ext_only(n) else ok("", n, t, a),
        node=sf,
        vnet=sf,
    )

    random.seed(9)
    slow = lambda *_: ("NOERROR", round(random.uniform(6000, 6020), 1))  # noqa: E731
    out["upstream_slow"] = build(
        repeat=2,
        pod=lambda p, _ly, n, t, a: ("SERVFAIL", 5004.0) if ext_only(n) else ok("", n, t, a),
        svc=lambda _ly, n, t, a: ("SERVFAIL", 5003.0) if ext_only(n) else ok("", n, t, a),
        node=slow,
        vnet=slow,
    )

    random.seed(10)
    bad_pod = PODS[1][0]
    svc_flip = iter([True, False] * 50)
    out["one_pod_dead"] = build(
        repeat=4,
        pod=lambda p, _ly, n, t, a: ("TIMEOUT", 7000.0) if p == bad_pod else ok("", n, t, a),
        svc=lambda _ly, n, t, a: ("TIMEOUT", 7000.0) if next(svc_flip) else ok("", n, t, a),
    )

    random.seed(11)
    out["service_no_endpoints"] = build(
        repeat=2,
        svc=lambda *_: ("TIMEOUT", 7000.0),
        ready_endpoints=0,
    )
    random.seed(12)
    out["service_kube_proxy"] = build(repeat=2, svc=lambda *_: ("TIMEOUT", 7000.0))

    random.seed(13)
    out["conntrack_race"] = build(
        repeat=10,
        svc=lambda _ly, n, t, a: ("TIMEOUT", 7000.0) if t == "AAAA" and a in (3, 7) else ok("", n, t, a),
        pod=lambda p, _ly, n, t, a: (
            ("TIMEOUT", 7000.0) if t == "AAAA" and a == 5 and p == PODS[0][0] else ok("", n, t, a)
        ),
    )

    random.seed(14)
    private = "mydb.privatelink.database.windows.net"
    nx = lambda p_or_l, *rest: ("NXDOMAIN", 2.0)  # noqa: E731
    out["private_zone"] = build(
        names=(INTERNAL, EXTERNAL, private),
        pod=lambda p, _ly, n, t, a: ("NXDOMAIN", 3.1) if n == private else ok("", n, t, a),
        svc=lambda _ly, n, t, a: ("NXDOMAIN", 2.9) if n == private else ok("", n, t, a),
        node=lambda nd, n, t, a: nx(nd) if n == private else ok("", n, t, a),
        vnet=lambda s, n, t, a: nx(s) if n == private else ok("", n, t, a),
    )

    random.seed(15)
    contoso = "app.contoso.corp"
    custom = {
        "present": True,
        "keys": ["contoso.server"],
        "forwarders": [{"key": "contoso.server", "zone": "contoso.corp", "servers": ["10.10.0.4"]}],
        "overrides": [],
        "default_corefile": True,
    }
    out["custom_forwarder_dead"] = build(
        names=(INTERNAL, EXTERNAL, contoso),
        pod=lambda p, _ly, n, t, a: ("SERVFAIL", 5003.0) if n == contoso else ok("", n, t, a),
        svc=lambda _ly, n, t, a: ("SERVFAIL", 5001.0) if n == contoso else ok("", n, t, a),
        node=lambda nd, n, t, a: ("NXDOMAIN", 2.0) if n == contoso else ok("", n, t, a),
        vnet=lambda s, n, t, a: ("NXDOMAIN", 2.0) if n == contoso else ok("", n, t, a),
        custom=custom,
        extra_vnet=[
            ("10.10.0.4", "coredns-custom contoso.server", "coredns_forwarder", lambda *_: ("TIMEOUT", 7000.0))
        ],
    )

    random.seed(16)
    out["node_upstream_unreachable"] = build(
        repeat=2,
        node=lambda *_: ("TIMEOUT", 7000.0),
    )

    random.seed(17)
    custom_vnet = "10.1.0.4"
    out["custom_vnet_dns_healthy"] = build(
        repeat=2,
        upstream=custom_vnet,
        custom={
            "present": True,
            "keys": ["log.override"],
            "forwarders": [],
            "overrides": ["log"],
            "default_corefile": True,
        },
        walks=[healthy_walk()],
    )

    random.seed(18)
    storm = healthy_walk("api.partner.example")
    storm.update(statuses=["NXDOMAIN", "NXDOMAIN", "TIMEOUT", "NOERROR"], latency_ms=7012.0)
    out["search_storm"] = build(
        names=(INTERNAL, "api.partner.example"),
        walks=[storm],
    )

    random.seed(19)
    out["coredns_oom"] = build(
        pods_meta={
            PODS[0][0]: {"restarts": 7, "oom_killed": True, "last_reason": "OOMKilled"},
            PODS[1][0]: {"restarts": 5, "oom_killed": True, "last_reason": "OOMKilled"},
        },
        nodes_meta={
            NODES[1]: {
                "cpu_limits_m": 6044,
                "memory_limits_b": 6_337_000_000,
                "cpu_allocatable_m": 4300,
                "memory_allocatable_b": 4_500_000_000,
            }
        },
    )
    return out


if __name__ == "__main__":
    for name, data in scenarios().items():
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(name, len(data["probes"]), "probes")
