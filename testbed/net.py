"""Network namespaces, veths, the bridge and nftables rules of the testbed.

Nodes are network namespaces, so `ip netns exec NODE` gives a process the node's addresses and, through
/etc/netns/NODE/resolv.conf, the node's resolv.conf (nameserver = the Azure DNS stand-in). Pods sit
behind their node as on AKS with kubenet: each pod namespace is joined by a veth whose other end lives
in the node's namespace (proxy ARP and a /32 route per pod, the node forwarding), so a pod's traffic
crosses its node, where a hostNetwork capture sees it and the node's kube-proxy rules (the kube-dns
VIP) apply. Every namespace, link and table is named with the testbed's prefix so `down` finds
leftovers by name.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from testbed import layout
from testbed.sh import ok, run

NETNS_ETC = Path("/etc/netns")
# The pods' next hop: a link-local address on each node's loopback, so no address of the pod range is
# spent on a gateway (kwok hands out the range from its first address).
POD_GATEWAY = "169.254.1.1"


def resolv_conf_text() -> str:
    return (f"# aksdns testbed node resolv.conf: {layout.UPSTREAM_IP} stands in for "
            f"{layout.AZURE_DNS_IP}\n"
            f"nameserver {layout.UPSTREAM_IP}\nsearch {layout.NODE_SEARCH_DOMAIN}\n")


def cluster_first_resolv_conf(namespace: str) -> str:
    """What kubelet writes for a dnsPolicy ClusterFirst pod."""
    domain = layout.CLUSTER_DOMAIN
    return (f"search {namespace}.svc.{domain} svc.{domain} {domain} {layout.NODE_SEARCH_DOMAIN}\n"
            f"nameserver {layout.KUBE_DNS_IP}\noptions ndots:5\n")


def _write_netns_etc(netns: str, resolv_conf: str | None = None) -> None:
    d = NETNS_ETC / netns
    d.mkdir(parents=True, exist_ok=True)
    (d / "resolv.conf").write_text(resolv_conf or resolv_conf_text())


def write_resolv_conf(netns: str, text: str | None = None) -> None:
    """A namespace's resolv.conf (None: the node default); processes started after this see it."""
    _write_netns_etc(netns, text)


def _add_namespace_on_bridge(netns: str, host_veth: str, ip: str, nodes: list[layout.NodeSpec]) -> None:
    """A host on the virtual network: eth0 on the host bridge, on-link to the VNet, each node's pod
    range via that node. Deliberately no default route, so nothing can leave the testbed."""
    run(["ip", "netns", "add", netns])
    _write_netns_etc(netns)
    run(["ip", "link", "add", host_veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", host_veth, "master", layout.BRIDGE, "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "addr", "add", f"{ip}/16", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "route", "replace", layout.VNET_CIDR, "dev", "eth0"])
    run(["ip", "-n", netns, "route", "replace", layout.SERVICE_CIDR, "dev", "eth0"])
    for node in nodes:
        if node.ip != ip:
            run(["ip", "-n", netns, "route", "replace", node.pod_cidr, "via", node.ip, "dev", "eth0"])


def create_base(nodes: Iterable[layout.NodeSpec], api_port: int, kubelet_port: int) -> None:
    nodes = list(nodes)
    run(["ip", "link", "add", layout.BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{layout.GATEWAY_IP}/16", "dev", layout.BRIDGE])
    run(["ip", "link", "set", layout.BRIDGE, "up"])
    run(["ip", "route", "replace", layout.SERVICE_CIDR, "dev", layout.BRIDGE])
    # Lets nodes and pods reach the loopback-bound API server through the DNAT below.
    run(["sysctl", "-qw", f"net.ipv4.conf.{layout.BRIDGE}.route_localnet=1"])
    for node in nodes:
        _add_namespace_on_bridge(node.netns, node.veth, node.ip, nodes)
        # The node forwards for its pods (kubenet's cbr0 role, done with proxy ARP instead of a bridge).
        run(["ip", "netns", "exec", node.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # The pods' next hop is a node-local address, so the node answers their ARP for it.
        run(["ip", "-n", node.netns, "addr", "add", f"{POD_GATEWAY}/32", "dev", "lo"])
        run(["ip", "route", "replace", node.pod_cidr, "via", node.ip, "dev", layout.BRIDGE])
    _add_namespace_on_bridge(layout.UPSTREAM_NETNS, layout.UPSTREAM_VETH, layout.UPSTREAM_IP, nodes)
    sync_kube_dns([n.netns for n in nodes], api_port, kubelet_port, [])


def kube_dns_rules(backends: list[str]) -> str:
    """The kube-dns Service VIP as kube-proxy would program it: random choice among ready pods."""
    if not backends:
        return ""
    mapping = ", ".join(f"{i} : {ip}" for i, ip in enumerate(backends))
    pick = f"numgen random mod {len(backends)} map {{ {mapping} }}"
    return "".join(f"    ip daddr {layout.KUBE_DNS_IP} {proto} dport {{ 53, 9153 }} dnat to {pick}\n"
                   for proto in ("udp", "tcp"))


# Traffic still addressed to the VIP after DNAT had no ready endpoint: kube-proxy rejects it, so
# clients fail fast instead of timing out.
_REJECT_UNSERVED = f"""  chain output_filter {{
    type filter hook output priority 0;
    ip daddr {layout.KUBE_DNS_IP} meta l4proto udp reject
    ip daddr {layout.KUBE_DNS_IP} meta l4proto tcp reject with tcp reset
  }}
"""


def host_rules(api_port: int, kubelet_port: int, backends: list[str]) -> str:
    return f"""table ip {layout.NFT_TABLE}
delete table ip {layout.NFT_TABLE}
table ip {layout.NFT_TABLE} {{
  chain prerouting {{
    type nat hook prerouting priority -100;
    iifname "{layout.BRIDGE}" ip daddr {layout.GATEWAY_IP} tcp dport {{ {layout.API_GATEWAY_PORT}, {api_port} }} \
      dnat to 127.0.0.1:{api_port}
  }}
  chain output {{
    type nat hook output priority -100;
    ip daddr {layout.VNET_CIDR} tcp dport {kubelet_port} dnat to 127.0.0.1:{kubelet_port}
{kube_dns_rules(backends)}  }}
{_REJECT_UNSERVED}}}
"""


def node_rules(backends: list[str]) -> str:
    """A node's kube-proxy: the VIP for the node's own processes (output) and its pods (prerouting)."""
    rules = kube_dns_rules(backends)
    return f"""table ip {layout.NFT_TABLE}
delete table ip {layout.NFT_TABLE}
table ip {layout.NFT_TABLE} {{
  chain prerouting {{
    type nat hook prerouting priority -100;
{rules}  }}
  chain output {{
    type nat hook output priority -100;
{rules}  }}
{_REJECT_UNSERVED}  chain forward_filter {{
    type filter hook forward priority 0;
    ip daddr {layout.KUBE_DNS_IP} meta l4proto udp reject
    ip daddr {layout.KUBE_DNS_IP} meta l4proto tcp reject with tcp reset
  }}
}}
"""


def sync_kube_dns(namespaces: Iterable[str], api_port: int, kubelet_port: int,
                  backends: list[str]) -> None:
    """Reprogram the VIP in the host and in the given namespaces (nodes, running pods); atomic per
    namespace."""
    run(["nft", "-f", "-"], input_text=host_rules(api_port, kubelet_port, backends))
    for netns in namespaces:
        set_vip_in(netns, backends)


def set_vip_in(netns: str, backends: list[str]) -> None:
    run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input_text=node_rules(backends))




def add_pod(uid: str, ip: str, node_netns: str, resolv_conf: str | None = None) -> str:
    netns, veth = layout.pod_netns(uid), layout.pod_veth(uid)
    delete_pod(uid)
    run(["ip", "netns", "add", netns])
    _write_netns_etc(netns, resolv_conf)
    run(["ip", "-n", node_netns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "-n", node_netns, "link", "set", veth, "up"])
    run(["ip", "-n", node_netns, "route", "replace", f"{ip}/32", "dev", veth])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "addr", "add", f"{ip}/32", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "route", "add", POD_GATEWAY, "dev", "eth0", "scope", "link"])
    # Everything the testbed has is inside 10/8; still no default route.
    run(["ip", "-n", netns, "route", "add", "10.0.0.0/8", "via", POD_GATEWAY, "dev", "eth0"])
    return netns


def set_pod_link(uid: str, node_netns: str, up: bool) -> None:
    """The node's end of the pod's veth: down makes the pod unreachable (packets to it are lost)."""
    run(["ip", "-n", node_netns, "link", "set", layout.pod_veth(uid), "up" if up else "down"])
    if up:
        # Bringing the link down dropped the /32 route through it.
        addr = run(["ip", "-n", layout.pod_netns(uid), "-4", "-o", "addr", "show", "dev", "eth0"]).stdout.split()
        ip = addr[3].split("/")[0] if len(addr) > 3 else ""
        if ip:
            run(["ip", "-n", node_netns, "route", "replace", f"{ip}/32", "dev", layout.pod_veth(uid)])


def delete_pod(uid: str) -> None:
    # Deleting the namespace destroys the veth pair, and with it the node's /32 route.
    _delete_netns(layout.pod_netns(uid))


def _delete_netns(netns: str) -> None:
    ok(["ip", "netns", "del", netns])
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def testbed_namespaces() -> list[str]:
    proc = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(layout.PREFIX)]


def destroy_all() -> None:
    """Remove everything network-side the testbed may have left, found by name."""
    for netns in testbed_namespaces():
        _delete_netns(netns)
    if NETNS_ETC.is_dir():
        for leftover in NETNS_ETC.glob(layout.PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
    ok(["ip", "link", "del", layout.BRIDGE])
    ok(["nft", "delete", "table", "ip", layout.NFT_TABLE])
    # veths whose namespace end vanished first disappear with it; any host end left is removed here.
    proc = run(["ip", "-o", "link", "show"], check=False)
    for line in proc.stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(("aksp", "aksdnsn", layout.UPSTREAM_VETH)):
                ok(["ip", "link", "del", name])
