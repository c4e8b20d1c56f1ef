"""A local stand-in for Azure Resource Manager and the Microsoft Entra token endpoint (HTTPS on loopback).

The Azure SDK (``azure-identity``'s ``WorkloadIdentityCredential`` and ``azure-mgmt-containerservice``)
is pointed at it exactly as it would be at Azure: the credential posts the projected service-account
token as a client assertion to ``/{tenant}/oauth2/v2.0/token`` and gets a bearer token; the client
GETs ``/subscriptions/…/managedClusters/NAME?api-version=…`` with it and gets the recorded cluster.
Like the Slack stand-in, it is the only replacement for a cloud API that cannot run here.

Served over TLS with a throwaway CA (``ca_path``) because azure-identity refuses authorities that are
not https and azure-core refuses bearer tokens over plain http.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).parent / "data" / "arm"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def recorded(name: str) -> dict[str, Any]:
    """A recorded managed cluster (tests/data/arm/NAME.json)."""
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def _pki(directory: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arm-standin-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


@dataclass
class ArmState:
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-case resource id → body
    federated_token: str = ""  # the assertion the token endpoint accepts
    issued: set[str] = field(default_factory=set)
    deny_read: bool = False  # answer 403 AuthorizationFailed to the cluster GET
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) seen
    lock: threading.Lock = field(default_factory=threading.Lock)


class ArmStandIn:
    """``with ArmStandIn(tmp) as arm: arm.add_cluster(id, body); arm.url; arm.ca_path``."""

    def __init__(self, directory: Path, federated_token: str = "") -> None:
        self.ca_path, cert, key = _pki(directory)
        self.state = ArmState(federated_token=federated_token or secrets.token_urlsafe(24))
        handler = _handler(self.state)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def add_cluster(self, resource_id: str, body: dict[str, Any]) -> None:
        with self.state.lock:
            self.state.clusters[resource_id.lower()] = {**body, "id": resource_id}

    def __enter__(self) -> ArmStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(state: ArmState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("x-ms-request-id", secrets.token_hex(8))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            with state.lock:
                state.requests.append(("POST", path))
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if not path.endswith("/oauth2/v2.0/token"):
                self._send(404, {"error": "not_found"})
                return
            if (form.get("client_assertion_type") != ASSERTION_TYPE
                    or form.get("client_assertion") != state.federated_token
                    or form.get("grant_type") != "client_credentials"):
                self._send(401, {"error": "invalid_client",
                                 "error_description": "AADSTS700211: No matching federated identity record found"})
                return
            token = secrets.token_urlsafe(32)
            with state.lock:
                state.issued.add(token)
            self._send(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                             "access_token": token})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            with state.lock:
                state.requests.append(("GET", url.path))
                authorized = self.headers.get("Authorization", "").removeprefix("Bearer ") in state.issued
                body = state.clusters.get(url.path.lower())
            if not authorized:
                self._send(401, {"error": {"code": "AuthenticationFailed", "message": "no valid bearer token"}})
            elif "api-version" not in parse_qs(url.query):
                self._send(400, {"error": {"code": "MissingApiVersionParameter", "message": "api-version"}})
            elif state.deny_read:
                self._send(403, {"error": {"code": "AuthorizationFailed", "message": (
                    "The client does not have authorization to perform action "
                    "'Microsoft.ContainerService/managedClusters/read'")}})
            elif body is None:
                self._send(404, {"error": {"code": "ResourceNotFound", "message": "not found"}})
            else:
                self._send(200, body)

    return Handler
