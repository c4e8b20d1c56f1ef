"""Services' ClusterIPs as kube-proxy programs them, written as nftables rules (pure).

For every Service with a ClusterIP (but kube-system/kube-dns, which the runner keeps, and
default/kubernetes): each TCP/UDP port DNATs to one of its ready endpoints at random (the
EndpointSlices' addresses and ports, matched to the Service port by name); a port without a ready
endpoint is rejected, as kube-proxy does, so clients see "connection refused" at once. Applied in
the host (output: the worker) and in every node (output: host-network pods; prerouting: pods).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
SKIP = frozenset({("kube-system", "kube-dns"), ("default", "kubernetes")})
PROTOCOLS = {"TCP": "tcp", "UDP": "udp"}


@dataclass(frozen=True)
class Forward:
    """One Service port: ClusterIP:port/protocol → the ready endpoints (ip, port)."""

    service: str  # namespace/name
    cluster_ip: str
    port: int
    protocol: str  # tcp | udp
    endpoints: tuple[tuple[str, int], ...]


def forwards(services: Iterable[JSON], slices: Iterable[JSON]) -> list[Forward]:
    """Every ClusterIP port to program, from the API's Service and EndpointSlice objects."""
    by_service: dict[tuple[str, str], list[JSON]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        owner = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if owner:
            by_service.setdefault((meta.get("namespace", ""), owner), []).append(sl)
    out = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        cip = spec.get("clusterIP") or ""
        if key in SKIP or cip in ("", "None") or spec.get("type") == "ExternalName":
            continue
        for port in spec.get("ports") or []:
            proto = PROTOCOLS.get(port.get("protocol") or "TCP")
            if proto is None:
                continue
            name = port.get("name") or ""
            endpoints: set[tuple[str, int]] = set()
            for sl in by_service.get(key, []):
                number = next((p.get("port") for p in sl.get("ports") or []
                               if (p.get("name") or "") == name and PROTOCOLS.get(p.get("protocol") or "TCP") == proto),
                              None)
                if number is None:
                    continue
                for ep in sl.get("endpoints") or []:
                    if (ep.get("conditions") or {}).get("ready", True):
                        endpoints.update((a, int(number)) for a in ep.get("addresses") or [])
            out.append(Forward(f"{key[0]}/{key[1]}", cip, int(port["port"]), proto, tuple(sorted(endpoints))))
    return sorted(out, key=lambda f: (f.cluster_ip, f.port, f.protocol))


def chains(items: Sequence[Forward]) -> tuple[list[str], list[str], list[str]]:
    """(dispatch rules, extra chains, reject rules) for the ``services`` chain of a table."""
    dispatch: list[str] = []
    extra: list[str] = []
    reject: list[str] = []
    for i, f in enumerate(items):
        match = f"ip daddr {f.cluster_ip} {f.protocol} dport {f.port}"
        if not f.endpoints:
            verdict = "reject with tcp reset" if f.protocol == "tcp" else "reject"
            reject.append(f"    {match} {verdict}")
            continue
        name = f"svc_{i}"
        dispatch.append(f"    {match} jump {name}")
        # Chains are declared before the rules that jump to them (one nft transaction reads in order).
        for j, (ip, port) in enumerate(f.endpoints):
            extra.append(f"  chain {name}_ep{j} {{\n    meta l4proto {f.protocol} dnat to {ip}:{port}\n  }}")
        arms = ", ".join(f"{j} : jump {name}_ep{j}" for j in range(len(f.endpoints)))
        extra.append(f"  chain {name} {{\n    numgen random mod {len(f.endpoints)} vmap {{ {arms} }}\n  }}")
    return dispatch, extra, reject


def nat_text(items: Sequence[Forward], node: bool, policy_chains: Mapping[str, str] | None = None) -> str:
    """The body of the dataplane's table: Service NAT (+ rejects) and, on nodes, the policy chains."""
    dispatch, extra, reject = chains(items)
    parts = [*extra, "  chain services {", *dispatch, "  }",
             "  chain nat_output {", "    type nat hook output priority -90;", "    jump services", "  }",
             "  chain reject_unserved {", *reject, "  }",
             "  chain filter_output {", "    type filter hook output priority 0;", "    jump reject_unserved", "  }"]
    if node:
        parts += ["  chain nat_prerouting {", "    type nat hook prerouting priority -90;", "    jump services", "  }",
                  "  chain filter_forward {", "    type filter hook forward priority 0;", "    jump reject_unserved",
                  "  }"]
    # Policy chains: the per-pod chains come before the base chain that jumps to them.
    for name, body in sorted((policy_chains or {}).items(), key=lambda kv: kv[0] == "policy_forward"):
        parts.append(f"  chain {name} {{\n{body}  }}")
    return "\n".join(parts) + "\n"
