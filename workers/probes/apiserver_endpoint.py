"""Reach one API server address stage by stage: resolve → TCP connect → TLS handshake → /readyz, /livez.

Sockets and ``ssl`` only (plus ``cryptography`` to read the certificate), so the same code runs in
the worker and in the node probe pods (``aksdns probe apiserver``). Each stage is timed and ends
with a kind of failure the rules understand (``workers.evidence.apiserver``): a dropped SYN is a
time-out, a reset is "refused", a certificate for another name is a name mismatch, and so on.
When verification fails the certificate is still read (a second, unverified handshake) so the
thread can say *which* certificate was presented.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any, TypeVar

from workers.evidence.apiserver import (
    EXPIRED,
    HANDSHAKE,
    NAME_MISMATCH,
    NO_ANSWER,
    NXDOMAIN,
    REFUSED,
    TIMEOUT,
    UNREACHABLE,
    UNTRUSTED,
    Certificate,
    EndpointProbe,
    HealthCheck,
    Stage,
)

RESOLVE_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 3.0
TLS_TIMEOUT_S = 3.0
HEALTH_TIMEOUT_S = 5.0
MAX_BODY = 64 * 1024  # /readyz?verbose is a few kB; never read more

# OpenSSL verify codes (x509_vfy.h) that mean "not the name the client asked for" / "expired" / "who signed this?"
_MISMATCH_CODES = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_EXPIRED_CODES = {9, 10}  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED
T = TypeVar("T")


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _bounded(fn: Callable[[], T], timeout_s: float) -> T:
    """getaddrinfo has no time-out of its own: run it in a thread and stop waiting."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aksdns-resolve")
    try:
        return pool.submit(fn).result(timeout=timeout_s)
    finally:
        pool.shutdown(wait=False)


def resolve(host: str, port: int, timeout_s: float = RESOLVE_TIMEOUT_S) -> tuple[Stage, tuple[str, ...]]:
    """The system resolver's answer for ``host`` (what kubectl and client-go use)."""
    started = time.monotonic()
    try:
        infos = _bounded(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s)
    except FutureTimeout:
        return Stage(False, _ms(started), NO_ANSWER, f"no answer within {timeout_s:g} s"), ()
    except socket.gaierror as exc:
        kind = NXDOMAIN if exc.errno == socket.EAI_NONAME else NO_ANSWER
        return Stage(False, _ms(started), kind, str(exc.strerror or exc)), ()
    addresses = tuple(dict.fromkeys(str(i[4][0]) for i in infos))
    return Stage(True, _ms(started), detail=", ".join(addresses)), addresses


def connect(address: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> tuple[Stage, socket.socket | None]:
    started = time.monotonic()
    try:
        sock = socket.create_connection((address, port), timeout=timeout_s)
    except TimeoutError:
        return Stage(False, _ms(started), TIMEOUT, f"no answer to SYN within {timeout_s:g} s"), None
    except ConnectionRefusedError:
        return Stage(False, _ms(started), REFUSED, "connection refused (RST)"), None
    except OSError as exc:
        kind = UNREACHABLE if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else REFUSED
        return Stage(False, _ms(started), kind, exc.strerror or str(exc)), None
    return Stage(True, _ms(started), detail=f"{address}:{port}"), sock


def tls_context(ca_pem: str | None, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _verify_kind(exc: ssl.SSLCertVerificationError) -> str:
    code = getattr(exc, "verify_code", 0)
    if code in _MISMATCH_CODES or "match" in str(getattr(exc, "verify_message", "")):
        return NAME_MISMATCH
    if code in _EXPIRED_CODES:
        return EXPIRED
    return UNTRUSTED


def handshake(
    sock: socket.socket, server_name: str, ca_pem: str | None, timeout_s: float = TLS_TIMEOUT_S
) -> tuple[Stage, bytes | None]:
    """A verifying TLS handshake on a connected socket; the peer's DER certificate when it succeeds."""
    started = time.monotonic()
    sock.settimeout(timeout_s)
    try:
        with tls_context(ca_pem).wrap_socket(sock, server_hostname=server_name.strip("[]")) as tls:
            der = tls.getpeercert(binary_form=True)
            version = tls.version() or ""
    except ssl.SSLCertVerificationError as exc:
        return Stage(False, _ms(started), _verify_kind(exc), str(exc.verify_message or exc)[:200]), None
    except TimeoutError:
        return Stage(False, _ms(started), HANDSHAKE, f"no TLS answer within {timeout_s:g} s"), None
    except (ssl.SSLError, OSError) as exc:
        return Stage(False, _ms(started), HANDSHAKE, (str(exc) or type(exc).__name__)[:200]), None
    return Stage(True, _ms(started), detail=version), der


def peer_certificate(address: str, port: int, server_name: str, timeout_s: float = TLS_TIMEOUT_S) -> bytes | None:
    """The certificate presented, without verifying it (to say which one failed verification)."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s) as raw:
            sni = None if is_address(server_name) else server_name
            with tls_context(None, verify=False).wrap_socket(raw, server_hostname=sni) as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


def describe_certificate(der: bytes, ca_pem: str | None, now: datetime | None = None) -> Certificate:
    """Subject, issuer, names, expiry and whether the cluster's CA issued it (pure; cryptography)."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    not_after = cert.not_valid_after_utc
    now = now or datetime.now(UTC)
    by_ca: bool | None = None
    if ca_pem:
        by_ca = False
        try:
            cas = x509.load_pem_x509_certificates(ca_pem.encode())
        except ValueError:
            cas = []
        for ca in cas:
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, Exception):  # noqa: S112 - InvalidSignature and friends: not this CA
                continue
            by_ca = True
            break
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        names=tuple(names),
        not_after=not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        days_left=(not_after - now).days,
        fingerprint=hashlib.sha256(der).hexdigest()[:16],
        issued_by_cluster_ca=by_ca,
    )


def parse_health(path: str, status: int, body: str, ms: float | None) -> HealthCheck:
    """`[-]etcd failed: reason withheld` lines → the failing checks; 401/403 say anonymous is refused."""
    failing = tuple(
        line[3:].split(" ", 1)[0] for line in body.splitlines() if line.startswith("[-]") and len(line) > 3
    )
    error = ""
    if status in (401, 403):
        error = f"health endpoints refused to this caller (HTTP {status})"
    elif status != 200 and not failing:
        error = f"HTTP {status}: {body.strip().splitlines()[0][:120] if body.strip() else 'no body'}"
    return HealthCheck(path=path, status=status, ms=ms, failing=failing, error=error)


def anonymous_health(
    address: str, port: int, server_name: str, ca_pem: str | None, path: str, timeout_s: float = HEALTH_TIMEOUT_S
) -> HealthCheck:
    """GET PATH?verbose without credentials (the API server grants these to system:unauthenticated)."""
    started = time.monotonic()
    ctx = tls_context(ca_pem)
    conn = http.client.HTTPSConnection(address, port, timeout=timeout_s, context=ctx)
    try:
        # Connect to the resolved address, verify the name the client uses.
        conn.sock = ctx.wrap_socket(
            socket.create_connection((address, port), timeout=timeout_s), server_hostname=server_name.strip("[]")
        )
        conn.request("GET", f"{path}?verbose", headers={"Accept": "text/plain", "User-Agent": "aksdns-probe"})
        resp = conn.getresponse()
        body = resp.read(MAX_BODY).decode(errors="replace")
        return parse_health(path, resp.status, body, _ms(started))
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        return HealthCheck(path=path, ms=_ms(started), error=(str(exc) or type(exc).__name__)[:160])
    finally:
        conn.close()


def probe(
    vantage: str,
    target: str,
    host: str,
    port: int,
    *,
    server_name: str = "",
    ca_pem: str | None = None,
    health: bool = True,
) -> EndpointProbe:
    """Every network stage towards ``host:port``; health checks anonymously when ``health``."""
    name = server_name or host
    base = EndpointProbe(vantage=vantage, target=target, host=host, port=port, server_name=name)
    resolved: Stage | None = None
    if is_address(host):
        addresses: tuple[str, ...] = (host.strip("[]"),)
    else:
        resolved, addresses = resolve(host, port)
        if not resolved.ok:
            return _replace(base, resolve=resolved)
    conn_stage, sock = connect(addresses[0], port)
    if sock is None:
        return _replace(base, addresses=addresses, resolve=resolved, connect=conn_stage)
    tls_stage, der = handshake(sock, name, ca_pem)
    if der is None and tls_stage.error != HANDSHAKE:
        der = peer_certificate(addresses[0], port, name)
    cert = describe_certificate(der, ca_pem) if der else None
    probe_ = _replace(base, addresses=addresses, resolve=resolved, connect=conn_stage, tls=tls_stage, certificate=cert)
    if health and tls_stage.ok:
        probe_ = _replace(
            probe_,
            readyz=anonymous_health(addresses[0], port, name, ca_pem, "/readyz"),
            livez=anonymous_health(addresses[0], port, name, ca_pem, "/livez"),
        )
    return probe_


def _replace(p: EndpointProbe, **changes: Any) -> EndpointProbe:
    return dataclasses.replace(p, **changes)
