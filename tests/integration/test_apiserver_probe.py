"""The `aksdns probe apiserver` program (what node probe pods run) against real TLS servers on loopback.

Each stage's failure kinds come from real sockets and OpenSSL: a certificate for another name, one
from a foreign CA, a closed port; the health checks parse a real `[-]etcd failed` body.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.dnsservers import free_port
from workers.probes.apiserver_nodes import parse_output

NOW = datetime.datetime.now(datetime.UTC)


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(hours=1))
            .not_valid_after(NOW + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], names: list[x509.GeneralName],
          tmp: Path, stem: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(ca[0].subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(hours=1)).not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False).sign(ca[1], hashes.SHA256()))
    crt, k = tmp / f"{stem}.crt", tmp / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return crt, k


class Health(BaseHTTPRequestHandler):
    def log_message(self, *_a: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/livez"):
            status, body = 500, "[+]ping ok\n[-]etcd failed: reason withheld\nlivez check failed\n"
        else:
            status, body = 200, "[+]ping ok\n[+]etcd ok\nreadyz check passed\n"
        raw = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _serve(crt: Path, key: Path) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("apiserver-tls")
    cluster_ca, foreign_ca = _ca("cluster-ca"), _ca("Contoso Firewall CA")
    ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    good = _serve(*_leaf(cluster_ca, [ip, x509.DNSName("kubernetes.default.svc")], tmp, "good"))
    foreign = _serve(*_leaf(foreign_ca, [ip], tmp, "foreign"))
    try:
        yield {"ca": cluster_ca[0].public_bytes(serialization.Encoding.PEM).decode(), "good": good[1],
               "foreign": foreign[1], "tmp": tmp}
    finally:
        for server, _ in (good, foreign):
            server.shutdown()


def run_probe(servers: dict[str, object], *targets: str) -> dict[str, dict[str, object]]:
    tmp = servers["tmp"]
    assert isinstance(tmp, Path)
    term = tmp / "termination-log"
    argv = [sys.executable, "-m", "console.cli", "probe", "apiserver", "--no-pod-environment", "--node", "node-a",
            "--termination-log", str(term)]
    for t in targets:
        argv += ["--target", t]
    env = {"PATH": "/usr/bin:/bin", "AKSDNS_CA_PEM": str(servers["ca"])}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    probes, error = parse_output(term.read_text(), "node-a")
    assert error == "" and probes
    return {p.target: json.loads(json.dumps(p.__dict__, default=lambda o: o.__dict__)) for p in probes}


def test_every_stage_and_each_failure_kind(servers: dict[str, object]) -> None:
    closed = free_port()
    found = run_probe(
        servers,
        f"good|127.0.0.1|{servers['good']}|",
        f"by name|localhost|{servers['good']}|kubernetes.default.svc",
        f"wrong name|127.0.0.1|{servers['good']}|apiserver.contoso.internal",
        f"foreign|127.0.0.1|{servers['foreign']}|",
        f"closed|127.0.0.1|{closed}|",
    )
    good = found["good"]
    assert good["connect"]["ok"] and good["tls"]["ok"] and good["resolve"] is None
    assert good["certificate"]["issued_by_cluster_ca"] is True
    assert "kubernetes.default.svc" in good["certificate"]["names"]
    assert good["readyz"]["status"] == 200 and good["readyz"]["failing"] == []
    assert good["livez"]["status"] == 500 and good["livez"]["failing"] == ["etcd"]
    assert found["by name"]["resolve"]["ok"] and found["by name"]["tls"]["ok"]
    wrong = found["wrong name"]
    assert wrong["tls"]["error"] == "name_mismatch" and wrong["certificate"]["names"] == ["kubernetes.default.svc",
                                                                                          "127.0.0.1"]
    assert wrong["readyz"] is None  # no health check through a connection that failed verification
    foreign = found["foreign"]
    assert foreign["tls"]["error"] == "untrusted" and foreign["certificate"]["issued_by_cluster_ca"] is False
    assert found["closed"]["connect"]["error"] == "refused" and found["closed"]["tls"]["error"] == "skipped"


def test_unknown_kind_is_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "console.cli", "probe", "nope"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2 and "apiserver" in proc.stderr and "Traceback" not in proc.stderr
