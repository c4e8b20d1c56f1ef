"""The stand-in for the virtual network's DNS (Azure's 168.63.129.16) with run-time fault knobs.

It runs inside the testbed's own upstream network namespace, so nodes and CoreDNS reach it through
their resolv.conf exactly as AKS nodes reach Azure DNS. It answers a small fixed set of "external"
names with documentation addresses (RFC 5737; they are answers, never contacted) and NXDOMAIN for the
rest, with the SOA a recursive resolver would return.

Faults are read from a JSON state file whenever its mtime changes, so a test flips a knob by rewriting
the file, without a restart:
  {"drop_percent": 0-100, "delay_s": float, "rcode": null | "SERVFAIL" | "NXDOMAIN" | "REFUSED"}

Usage: python -m testbed.upstream --address 10.224.0.254 --port 53 --state FILE
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# Names the upstream knows; everything else is NXDOMAIN (the guide's db.contoso.com case).
RECORDS: dict[str, list[str]] = {
    "www.example.com.": ["192.0.2.10"],
    "example.com.": ["192.0.2.11"],
    "microsoft.com.": ["192.0.2.20"],
    "login.microsoftonline.com.": ["192.0.2.21"],
    "mcr.microsoft.com.": ["192.0.2.22"],
    "management.azure.com.": ["192.0.2.23"],
    "db.contoso.internal.": ["192.0.2.30"],
}
# Every name under this zone exists (a wildcard), so tests can ask names no cache has seen yet and still
# tell a healthy answer from an injected NXDOMAIN.
WILDCARD_ZONE = ".wild.example.com."
WILDCARD_ADDRESS = "192.0.2.50"
TTL = 60
# Bounds the work a flood of delayed queries can pile up; above it queries are dropped, as an overloaded
# resolver would.
MAX_IN_FLIGHT = 256


@dataclass
class Faults:
    drop_percent: float = 0.0
    delay_s: float = 0.0
    rcode: str | None = None


class FaultState:
    """Faults, re-read from the state file when it changes (cheap stat per query)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._mtime = -1.0
        self._faults = Faults()
        self._lock = threading.Lock()

    def current(self) -> Faults:
        if self._path is None:
            return self._faults
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            return Faults()
        with self._lock:
            if mtime != self._mtime:
                try:
                    raw = json.loads(self._path.read_text() or "{}")
                    self._faults = Faults(
                        drop_percent=float(raw.get("drop_percent", 0) or 0),
                        delay_s=float(raw.get("delay_s", 0) or 0),
                        rcode=raw.get("rcode") or None,
                    )
                except (ValueError, OSError):
                    # A half-written file: keep the previous faults, retry on the next query.
                    return self._faults
                self._mtime = mtime
            return self._faults


def answer(wire: bytes, faults: Faults) -> bytes | None:
    """Build the response to one query, or None to drop it."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # malformed packets are dropped, as real servers do
        return None
    response = dns.message.make_response(query, recursion_available=True)
    if faults.rcode:
        response.set_rcode(dns.rcode.from_text(faults.rcode))
        return response.to_wire()
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    qname = question.name.to_text().lower()
    addresses = RECORDS.get(qname)
    if addresses is None and qname.endswith(WILDCARD_ZONE):
        addresses = [WILDCARD_ADDRESS]
    if addresses is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(
            dns.rrset.from_text(".", TTL, "IN", "SOA",
                                "a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400")
        )
    elif question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", "A", *addresses))
    return response.to_wire()


class _Server:
    def __init__(self, faults: FaultState) -> None:
        self.faults = faults
        self.slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def respond(self, wire: bytes) -> bytes | None:
        faults = self.faults.current()
        if faults.drop_percent > 0 and random.uniform(0, 100) < faults.drop_percent:  # noqa: S311
            return None
        if faults.delay_s > 0:
            time.sleep(min(faults.delay_s, 60.0))
        return answer(wire, faults)


def serve(address: str, port: int, state: Path | None) -> None:
    server = _Server(FaultState(state))

    class UDPHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            reply = server.respond(data)
            if reply is not None:
                sock.sendto(reply, self.client_address)

    class TCPHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            conn.settimeout(10)
            try:
                header = conn.recv(2)
                if len(header) < 2:
                    return
                (length,) = struct.unpack("!H", header)
                data = b""
                while len(data) < length:
                    chunk = conn.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = server.respond(data)
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    class UDP(socketserver.ThreadingUDPServer):
        daemon_threads = True
        allow_reuse_address = True

        def process_request(self, request: object, client_address: object) -> None:
            if not server.slots.acquire(blocking=False):
                return
            super().process_request(request, client_address)  # type: ignore[arg-type]

        def process_request_thread(self, request: object, client_address: object) -> None:
            try:
                super().process_request_thread(request, client_address)  # type: ignore[arg-type]
            finally:
                server.slots.release()

    class TCP(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    udp = UDP((address, port), UDPHandler)
    tcp = TCP((address, port), TCPHandler)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=udp.shutdown, daemon=True).start()
        threading.Thread(target=tcp.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    print(f"upstream DNS stand-in serving on {address}:{port}", flush=True)
    udp.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.upstream")
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args(argv)
    serve(args.address, args.port, args.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
