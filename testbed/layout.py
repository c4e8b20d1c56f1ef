"""The testbed's fixed shape: names, address plan and ports.

Address plan (all private, all inside interfaces and namespaces the testbed creates; nothing routes off
the machine because no namespace has a default route and the host bridge has no uplink):

  10.224.0.0/16  the "virtual network": bridge aksdnsbr0 in the host (10.224.0.1, also the control
                 plane address that nodes and pods use), one network namespace per node (10.224.0.4..),
                 and the upstream namespace holding the stand-in for Azure DNS (10.224.0.254)
  10.244.0.0/16  pod IPs, a /24 per node (kubenet style); each CoreDNS pod gets its own namespace
  10.0.0.0/16    Services (AKS default); kube-dns is 10.0.0.10, a VIP implemented with nftables DNAT
                 in the host and in every node namespace (what kube-proxy does on AKS)

Loopback (127.0.0.1) carries the control plane itself: etcd, kube-apiserver, kwok's kubelet endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "aksdns-"          # every network namespace the testbed creates starts with this
BRIDGE = "aksdnsbr0"
NFT_TABLE = "aksdns_testbed"
VNET_CIDR = "10.224.0.0/16"
GATEWAY_IP = "10.224.0.1"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.0.0.0/16"
KUBE_DNS_IP = "10.0.0.10"
UPSTREAM_IP = "10.224.0.254"
UPSTREAM_NETNS = PREFIX + "upstream"
UPSTREAM_VETH = "aksdnsup"
# What the stand-in replaces on a real AKS node; only ever written into messages and docs.
AZURE_DNS_IP = "168.63.129.16"
# Nodes and pods reach the API server at the gateway on the HTTPS port (DNAT to the loopback listener).
API_GATEWAY_PORT = 443
CLUSTER_DOMAIN = "cluster.local"
NODE_SEARCH_DOMAIN = "testbed.internal.cloudapp.net"

NODE_POOL = "aks-nodepool1-17046773-vmss"
NODE_SUFFIXES = ("00000m", "00000n", "00000o")

# Labels and annotations the testbed reads and writes.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
RUN_ANNOTATION = "testbed.aksdns.dev/run"        # "true": the runner executes this pod's containers
FAULT_ANNOTATION = "testbed.aksdns.dev/fault"    # on a CoreDNS pod: "dead" or "crashloop"
FAULTS_NAMESPACE = "testbed-faults"
KWOK_HOLD_ANNOTATION = "testbed.aksdns.dev/kwok"  # "hold": kwok leaves the pod's status alone
# Pods whose first container's command starts with one of these are executed for real.
RUNNABLE_COMMANDS = frozenset({"aksdns"})


@dataclass(frozen=True)
class NodeSpec:
    index: int
    name: str
    netns: str
    veth: str
    ip: str
    pod_cidr: str


def node_specs(count: int = 3) -> list[NodeSpec]:
    return [
        NodeSpec(
            index=i,
            name=NODE_POOL + NODE_SUFFIXES[i],
            netns=PREFIX + "vmss" + NODE_SUFFIXES[i],
            veth=f"aksdnsn{i}",
            ip=f"10.224.0.{4 + i}",
            pod_cidr=f"10.244.{i}.0/24",
        )
        for i in range(count)
    ]


def pod_netns(uid: str) -> str:
    return f"{PREFIX}pod-{uid[:8]}"


def pod_veth(uid: str) -> str:
    # Interface names are limited to 15 characters.
    return f"aksp{uid[:8]}"
