"""Bearer-token users for RBAC tests: a TokenReview webhook the testbed's API server consults.

`Testbed.token_kubeconfig(user, groups)` mints a token that carries the identity itself, signed with a
key in the run directory (``tbt.<base64url(json)>.<hmac>``); this webhook verifies the signature and
answers the TokenReview with that user and those groups. So any user/groups combination works at run
time, without restarting the API server (a static --token-auth-file is read only at start).

Usage: python -m testbed.authn --port N --cert F --key F --secret F   (HTTPS on 127.0.0.1 only)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

PREFIX = "tbt."
MAX_BODY = 64 * 1024


def _sign(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:40]


def mint(secret: bytes, user: str, groups: Sequence[str]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"u": user, "g": list(groups)}).encode()).decode().rstrip("=")
    return f"{PREFIX}{payload}.{_sign(secret, payload)}"


def verify(secret: bytes, token: str) -> tuple[str, list[str]] | None:
    if not token.startswith(PREFIX) or token.count(".") != 2:
        return None
    payload, signature = token[len(PREFIX):].split(".")
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(data["u"]), [str(g) for g in data["g"]]
    except (ValueError, KeyError, TypeError):
        return None


def review(secret: bytes, body: dict[str, Any]) -> dict[str, Any]:
    token = str((body.get("spec") or {}).get("token", ""))
    identity = verify(secret, token)
    status: dict[str, Any] = {"authenticated": False}
    if identity is not None:
        user, groups = identity
        status = {"authenticated": True,
                  "user": {"username": user, "uid": f"testbed-{user}", "groups": groups}}
    return {"apiVersion": body.get("apiVersion", "authentication.k8s.io/v1"), "kind": "TokenReview",
            "status": status}


def serve(port: int, cert: Path, key: Path, secret: bytes) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            out = json.dumps(review(secret, body if isinstance(body, dict) else {})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: Any) -> None:
            return  # tokens must not land in logs

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"token webhook on https://127.0.0.1:{port}/authenticate", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.authn")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--secret", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.port, args.cert, args.key, args.secret.read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
