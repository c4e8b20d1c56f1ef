"""Exec in a pod's container and read its output as a byte stream (pods/exec over a WebSocket).

Used for capture agents: ``tcpdump -w -`` runs in the capture container (exec'd by the container
runtime, so it gets the container's capabilities) and its binary stdout comes back frame by frame.
Frames are handed on one at a time, never collected (the kubernetes client's ``stream()`` keeps all
output in memory and patches the shared ApiClient, which other threads use at the same time), so the
worker's memory stays bounded however long the capture. Closing the stream closes the exec; the
runtime's pipe then fails on the program's next write.

Kubernetes calls: create/get pods/exec (the WebSocket upgrade is a GET that also needs create).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import certifi
import websocket
from kubernetes.stream.ws_client import V4_CHANNEL_PROTOCOL, V5_CHANNEL_PROTOCOL, get_websocket_url

from aksdns.errors import ClusterError

STDOUT, STDERR, ERROR, CLOSE = 1, 2, 3, 255
STDERR_KEEP = 16384
POLL_S = 0.5


@dataclass
class ExecResult:
    """How the exec'd program ended: its status as the kubelet reports it on the error channel."""

    ok: bool | None = None  # None: the stream ended without a status
    message: str = ""
    exit_code: int | None = None


@dataclass
class ExecStream:
    """One exec'd program's stdout, read frame by frame."""

    sock: Any  # websocket.WebSocket
    what: str
    stderr: bytearray = field(default_factory=bytearray)
    result: ExecResult = field(default_factory=ExecResult)
    closed: threading.Event = field(default_factory=threading.Event)

    def chunks(self, stop: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
        """Stdout data until the program ends, the connection drops or ``stop()`` says so; an empty
        chunk when only stderr grew (the caller may look at it)."""
        self.sock.settimeout(POLL_S)
        while not self.closed.is_set():
            if stop():
                return
            try:
                opcode, frame = self.sock.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError, ssl.SSLError):
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
            data = frame.data
            if not data:
                continue
            channel, body = data[0], data[1:]
            if channel == STDOUT:
                if body:
                    yield bytes(body)
            elif channel == STDERR:
                room = STDERR_KEEP - len(self.stderr)
                if room > 0:
                    self.stderr += body[:room]
                    yield b""
            elif channel == ERROR:
                self.result = _status(bytes(body))
            elif channel == CLOSE:
                continue

    def read_all(self, limit: int = 1 << 20, timeout_s: float = 30.0) -> bytes:
        """All of a short program's stdout (bounded), for small helper commands."""
        out = bytearray()
        timer = threading.Timer(timeout_s, self.close)
        timer.start()
        try:
            for chunk in self.chunks():
                out += chunk[: max(0, limit - len(out))]
        finally:
            timer.cancel()
        return bytes(out)

    def close(self) -> None:
        self.closed.set()
        try:
            self.sock.close(timeout=1)
        except (websocket.WebSocketException, OSError, ssl.SSLError):
            pass

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()


def _status(body: bytes) -> ExecResult:
    """The kubelet's final Status object: Success, or Failure with the exit code in its details."""
    try:
        status = json.loads(body.decode(errors="replace") or "{}")
    except ValueError:
        return ExecResult(False, body.decode(errors="replace")[:200])
    if status.get("status") == "Success":
        return ExecResult(True, "", 0)
    code = None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                code = int(cause.get("message"))
            except (TypeError, ValueError):
                code = None
    return ExecResult(False, str(status.get("message", ""))[:300], code)


def _connect(configuration: Any, url: str, headers: dict[str, str], timeout_s: float) -> Any:
    """The WebSocket to the API server, with the client's TLS settings and a handshake time-out
    (what kubernetes.stream.ws_client.create_websocket does, plus the time-out)."""
    sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_NONE}
    if url.startswith("wss://") and configuration.verify_ssl:
        sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": configuration.ssl_ca_cert or certifi.where()}
        if configuration.assert_hostname is not None:
            sslopt["check_hostname"] = configuration.assert_hostname
    if configuration.cert_file:
        sslopt["certfile"] = configuration.cert_file
    if configuration.key_file:
        sslopt["keyfile"] = configuration.key_file
    if configuration.tls_server_name:
        sslopt["server_hostname"] = configuration.tls_server_name
    header = [f"{k}: {v}" for k, v in headers.items()]
    header.append(f"sec-websocket-protocol: {V5_CHANNEL_PROTOCOL},{V4_CHANNEL_PROTOCOL}")
    sock = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True)
    sock.connect(url, header=header, timeout=timeout_s)  # type: ignore[no-untyped-call]
    return sock


def open_exec(api: Any, namespace: str, pod: str, container: str, argv: list[str],
              timeout_s: float = 15.0) -> ExecStream:
    """Start ``argv`` in a container and return its output stream (ClusterError when refused)."""
    configuration = api.configuration
    query = [("container", container), ("stdout", "true"), ("stderr", "true"), ("stdin", "false"), ("tty", "false")]
    query += [("command", word) for word in argv]
    url = get_websocket_url(  # type: ignore[no-untyped-call]
        f"{configuration.host}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/exec", query)
    headers: dict[str, str] = {}
    if configuration.refresh_api_key_hook is not None:
        configuration.refresh_api_key_hook(configuration)
    for auth in configuration.auth_settings().values():  # the bearer token, as the generated client sends it
        if auth.get("in") == "header" and auth.get("value"):
            headers[str(auth["key"]).lower()] = str(auth["value"])
    what = f"exec in {namespace}/{pod} ({container})"
    try:
        sock = _connect(configuration, url, headers, timeout_s)
    except websocket.WebSocketBadStatusException as exc:
        status = getattr(exc, "status_code", None)
        raise ClusterError(f"the worker may not {what} (HTTP {status})" if status in (401, 403)
                           else f"cannot {what}: HTTP {status}", status=status) from None
    except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
        raise ClusterError(f"cannot {what}: {type(exc).__name__}") from None
    return ExecStream(sock, what)


def run_exec(api: Any, namespace: str, pod: str, container: str, argv: list[str],
             timeout_s: float = 30.0) -> tuple[bytes, ExecStream]:
    """A short program's output and how it ended."""
    stream = open_exec(api, namespace, pod, container, argv)
    try:
        return stream.read_all(timeout_s=timeout_s), stream
    finally:
        stream.close()
