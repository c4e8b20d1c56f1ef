"""Network namespaces, veths, the bridge and nftables rules of the testbed.

Nodes are network namespaces, so `ip netns exec NODE` gives a process the node's addresses and, through
/etc/netns/NODE/resolv.conf, the node's resolv.conf (nameserver = the Azure DNS stand-in). Every
namespace, link and table is named with the testbed's prefix so `down` finds leftovers by name.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from testbed import layout
from testbed.sh import ok, run

NETNS_ETC = Path("/etc/netns")


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


def _add_namespace_on_bridge(netns: str, host_veth: str, ip: str, prefix_len: int,
                             resolv_conf: str | None = None) -> None:
    run(["ip", "netns", "add", netns])
    _write_netns_etc(netns, resolv_conf)
    run(["ip", "link", "add", host_veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", host_veth, "master", layout.BRIDGE, "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "addr", "add", f"{ip}/{prefix_len}", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    # On-link routes for the virtual network, the pod range and the Service range; deliberately no
    # default route, so nothing can leave the testbed.
    for cidr in (layout.VNET_CIDR, layout.POD_CIDR, layout.SERVICE_CIDR):
        run(["ip", "-n", netns, "route", "replace", cidr, "dev", "eth0"])


def create_base(nodes: Iterable[layout.NodeSpec], api_port: int, kubelet_port: int) -> None:
    run(["ip", "link", "add", layout.BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{layout.GATEWAY_IP}/16", "dev", layout.BRIDGE])
    run(["ip", "link", "set", layout.BRIDGE, "up"])
    for cidr in (layout.POD_CIDR, layout.SERVICE_CIDR):
        run(["ip", "route", "replace", cidr, "dev", layout.BRIDGE])
    # Lets nodes and pods reach the loopback-bound API server through the DNAT below.
    run(["sysctl", "-qw", f"net.ipv4.conf.{layout.BRIDGE}.route_localnet=1"])
    for node in nodes:
        _add_namespace_on_bridge(node.netns, node.veth, node.ip, 16)
    _add_namespace_on_bridge(layout.UPSTREAM_NETNS, layout.UPSTREAM_VETH, layout.UPSTREAM_IP, 16)
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
    return f"""table ip {layout.NFT_TABLE}
delete table ip {layout.NFT_TABLE}
table ip {layout.NFT_TABLE} {{
  chain output {{
    type nat hook output priority -100;
{kube_dns_rules(backends)}  }}
{_REJECT_UNSERVED}}}
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


def add_pod(uid: str, ip: str, resolv_conf: str | None = None) -> str:
    netns, veth = layout.pod_netns(uid), layout.pod_veth(uid)
    delete_pod(uid)
    _add_namespace_on_bridge(netns, veth, ip, 16, resolv_conf)
    return netns


def set_pod_link(uid: str, up: bool) -> None:
    run(["ip", "link", "set", layout.pod_veth(uid), "up" if up else "down"])


def delete_pod(uid: str) -> None:
    _delete_netns(layout.pod_netns(uid))
    ok(["ip", "link", "del", layout.pod_veth(uid)])


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
