"""The testbed's parts that need no cluster: Corefile rendering, nftables rules, the upstream's answers,
paths. These run everywhere (no root, no binaries)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from testbed import layout, manifests, net, paths, versions
from testbed.runner import render_corefile
from testbed.upstream import Faults, answer


def test_aks_corefile_rendering_adds_kubeconfig_and_custom_paths(tmp_path: Path) -> None:
    out = render_corefile(manifests.AKS_COREFILE, tmp_path)
    lines = out.splitlines()
    k8s = next(i for i, line in enumerate(lines) if line.split()[:1] == ["kubernetes"])
    assert lines[k8s + 1].strip() == f"kubeconfig {tmp_path / 'kubeconfig'}"
    assert f"import {tmp_path}/custom/*.override" in out
    assert f"import {tmp_path}/custom/*.server" in out
    assert "forward . /etc/resolv.conf" in out


def test_blockless_kubernetes_line_gets_a_block(tmp_path: Path) -> None:
    out = render_corefile(".:53 {\n    kubernetes cluster.local\n    forward . 1.1.1.1\n}\n", tmp_path)
    assert "kubernetes cluster.local {" in out
    assert out.count("{") == out.count("}")


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_nft_rules_parse() -> None:
    for text in (net.host_rules(6443, 10250, ["10.244.0.2", "10.244.1.2"]), net.host_rules(6443, 10250, []),
                 net.node_rules(["10.244.0.2"]), net.node_rules([])):
        proc = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True,
                              timeout=10, check=False)
        if "Operation not permitted" in proc.stderr:
            pytest.skip("nft -c needs CAP_NET_ADMIN")
        assert proc.returncode == 0, proc.stderr


def _ask(name: str, faults: Faults) -> dns.message.Message:
    wire = answer(dns.message.make_query(name, "A").to_wire(), faults)
    assert wire is not None
    return dns.message.from_wire(wire)


def test_upstream_answers_and_faults() -> None:
    reply = _ask("www.example.com", Faults())
    assert [rr.to_text() for rr in reply.answer[0]] == ["192.0.2.10"]
    missing = _ask("db.contoso.com", Faults())
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority
    assert _ask("www.example.com", Faults(rcode="SERVFAIL")).rcode() == dns.rcode.SERVFAIL


def test_address_plan_is_private_and_consistent() -> None:
    nodes = layout.node_specs()
    assert [n.ip for n in nodes] == ["10.224.0.4", "10.224.0.5", "10.224.0.6"]
    assert all(len(n.veth) <= 15 for n in nodes)
    assert len(layout.pod_veth("0123456789abcdef")) <= 15
    assert layout.AZURE_DNS_IP not in net.resolv_conf_text().split("nameserver", 1)[1]


def test_binary_lookup_honours_cache_dir_and_kubebuilder_assets(tmp_path: Path) -> None:
    env = {"AKSDNS_CACHE_DIR": str(tmp_path / "cache")}
    assert paths.binary("helm", env) is None
    helm = paths.component_dir("helm", versions.HELM, env) / "helm"
    helm.parent.mkdir(parents=True)
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    assert paths.binary("helm", env) == helm
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "etcd").write_text("#!/bin/sh\n")
    (assets / "etcd").chmod(0o755)
    assert paths.binary("etcd", {**env, "KUBEBUILDER_ASSETS": str(assets)}) == assets / "etcd"
    with pytest.raises(KeyError):
        paths.binary("docker", env)


def test_token_minting_round_trip_and_tamper() -> None:
    from testbed import authn

    secret = b"k" * 32
    token = authn.mint(secret, "alice", ["g1", "g2"])
    assert authn.verify(secret, token) == ("alice", ["g1", "g2"])
    assert authn.verify(b"other" * 8, token) is None
    assert authn.verify(secret, token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    ok = authn.review(secret, {"apiVersion": "authentication.k8s.io/v1", "spec": {"token": token}})
    assert ok["status"]["authenticated"] and ok["status"]["user"]["username"] == "alice"
    assert not authn.review(secret, {"spec": {"token": "nope"}})["status"]["authenticated"]
