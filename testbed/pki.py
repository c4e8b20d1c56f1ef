"""Certificates and kubeconfigs for the testbed, made with the openssl command line tool.

EC P-256 keys keep generation fast (a few milliseconds each), so every `up` makes a fresh PKI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from testbed import layout
from testbed.sh import run

CERT_DAYS = "3650"


def _subject(common_name: str, groups: Sequence[str]) -> str:
    for part in (common_name, *groups):
        if "/" in part or "," in part or "=" in part:
            raise ValueError(f"unsupported character in certificate subject part: {part!r}")
    return "/CN=" + common_name + "".join(f"/O={g}" for g in groups)


def make_ca(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"), "-days", CERT_DAYS,
         "-subj", "/CN=aksdns-testbed-ca", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])


def make_cert(pki: Path, name: str, common_name: str, groups: Sequence[str] = (),
              ips: Sequence[str] = (), dns_names: Sequence[str] = ()) -> tuple[Path, Path]:
    """A leaf certificate signed by the testbed CA; client and server usage both allowed."""
    key, crt = pki / f"{name}.key", pki / f"{name}.crt"
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", str(key), "-out", str(crt), "-days", CERT_DAYS,
           "-subj", _subject(common_name, groups),
           "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
           "-addext", "basicConstraints=critical,CA:FALSE",
           "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
           "-addext", "extendedKeyUsage=serverAuth,clientAuth"]
    sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns_names]
    if sans:
        cmd += ["-addext", "subjectAltName=" + ",".join(sans)]
    run(cmd)
    key.chmod(0o600)
    return crt, key


def make_service_account_keys(pki: Path) -> None:
    # RSA: the signing algorithm every Kubernetes client and verifier supports.
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", str(pki / "sa.key")])
    run(["openssl", "pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")])


def write_kubeconfig(path: Path, server: str, ca: Path, user: str, *, cert: Path | None = None,
                     key: Path | None = None, token: str | None = None) -> Path:
    user_entry: dict[str, str] = {}
    if cert is not None and key is not None:
        user_entry = {"client-certificate": str(cert), "client-key": str(key)}
    if token is not None:
        user_entry["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "aksdns-testbed",
                      "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": "aksdns-testbed",
                      "context": {"cluster": "aksdns-testbed", "user": user}}],
        "current-context": "aksdns-testbed",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def make_control_plane_pki(pki: Path) -> None:
    make_ca(pki)
    make_service_account_keys(pki)
    make_cert(pki, "apiserver", "kube-apiserver",
              ips=["127.0.0.1", layout.GATEWAY_IP, "10.0.0.1"],
              dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                         f"kubernetes.default.svc.{layout.CLUSTER_DOMAIN}"])
    make_cert(pki, "admin", "aksdns-testbed-admin", groups=["system:masters"])
    make_cert(pki, "kube-controller-manager", "system:kube-controller-manager")
    make_cert(pki, "kube-scheduler", "system:kube-scheduler")
    make_cert(pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
              groups=["system:masters"])
    # kwok manages node and pod status for every node: the admin group keeps its RBAC simple.
    make_cert(pki, "kwok", "kwok-controller", groups=["system:masters"])
    make_cert(pki, "kwok-serving", "kwok-kubelet",
              ips=["127.0.0.1", *(n.ip for n in layout.node_specs())])
    # CoreDNS authenticates as its ServiceAccount's user name, so AKS's system:coredns RBAC applies.
    make_cert(pki, "coredns", "system:serviceaccount:kube-system:coredns",
              groups=["system:serviceaccounts", "system:serviceaccounts:kube-system"])
