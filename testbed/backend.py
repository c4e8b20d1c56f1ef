"""A Service backend for the testbed: a TCP listener a really-run pod runs (``python -m testbed.backend``).

It accepts on ``--port`` (every address of the pod's namespace), answers each connection with one
line naming itself, and closes it; it runs until the runner stops it (pod deleted, deadline).
"""

from __future__ import annotations

import argparse
import os
import socketserver
import sys


class _Hello(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        name = os.environ.get("POD_NAME", "backend")
        port = self.request.getsockname()[1]
        try:
            self.request.sendall(f"aksdns testbed backend {name} port {port}\n".encode())
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.backend")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with _Server(("0.0.0.0", args.port), _Hello) as server:  # noqa: S104 - inside the pod's own namespace
        print(f"backend: listening on :{args.port}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
