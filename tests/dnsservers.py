"""Real DNS servers on loopback for tests: a scriptable dnspython server, bind9 and dnsmasq.

Load with ``pytest_plugins = ["tests.dnsservers"]`` in tests/conftest.py.

Fixtures
- ``dns_server_factory``: ``make(mode, *, delay=0.0, records=None, host=, port=0)``; modes are
  ``answer``, ``silent`` (never answers), ``late`` (answers after ``delay``), ``servfail``,
  ``nxdomain``, ``refused``, ``truncate`` (UDP answers carry TC and no records; TCP gives
  the full answer) and ``truncate-notcp`` (TC on UDP, nothing listens on TCP: TCP/53
  blocked).  Every server listens on UDP *and* TCP on one free 127.0.0.1 port and is
  stopped at teardown.
- ``answering_server``, ``silent_server``, ``late_server`` (0.5 s), ``servfail_server``,
  ``truncating_server``: one of each, function scope.
- ``closed_port``: a DnsServer on a loopback port nothing listens on (ICMP port unreachable).
- ``bind9_server`` (session): Debian's ``named`` authoritative for ``aksdns.test.`` (see
  ``ZONE_RECORDS``), recursion off and no forwarders, so it never leaves loopback.
- ``dnsmasq_forwarder`` (session): dnsmasq forwarding only ``aksdns.test`` to bind9, no
  resolv.conf, no cache: the CoreDNS -> upstream layering in miniature.

Servers bind loopback only and nothing here sends a packet to any other address.  Child
processes run in their own session and their process group is killed at teardown, even
when a test or the start-up itself fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from aksdns.commands import DnsServer
from console import embedded

LOOPBACK = "127.0.0.1"
DEFAULT_A = "10.53.0.1"  # what an "answer" FakeDnsServer gives for any A name (data only)
DEFAULT_AAAA = "fd53::1"
MODES = ("answer", "silent", "late", "servfail", "nxdomain", "refused", "truncate", "truncate-notcp")
START_TIMEOUT_S = 15.0

# ------------------------------------------------------------------- ports and processes


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = LOOPBACK) -> int:
    """A port free for both UDP and TCP on ``host`` right now (kernel-chosen)."""
    for _ in range(50):
        with socket.socket(_family(host), socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(_family(host), socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP+TCP port on loopback")


def _bound_pair(host: str, port: int = 0) -> tuple[socket.socket, socket.socket]:
    """UDP and listening TCP sockets on the same port (0: a free one), held open (no race)."""
    for _ in range(50 if port == 0 else 1):
        udp = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            udp.bind((host, port))
        except OSError:
            udp.close()
            raise
        chosen = udp.getsockname()[1]
        tcp = socket.socket(_family(host), socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((host, chosen))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        tcp.listen(128)
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp
    raise RuntimeError("no free UDP+TCP port on loopback")


# One implementation of "stop a process group" for the product and its tests.
kill_group = embedded.stop


def wait_until_answers(
    server: DnsServer, qname: str, proc: subprocess.Popen[bytes], log: Path, rdtype: str = "SOA"
) -> None:
    """Poll ``server`` until it answers ``qname`` with NOERROR; fail fast with the log.

    Any other rcode means the daemon is up but its zone did not load (named keeps running
    without a broken zone and REFUSEs it), so waiting longer would not help.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    query = dns.message.make_query(qname, rdtype)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}: {_tail(log)}")
        try:
            response = dns.query.udp(query, server.host, port=server.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
            continue
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"{server} answered {qname} with {dns.rcode.to_text(response.rcode())}: {_tail(log)}")
        return
    raise RuntimeError(f"{server} did not answer {qname} within {START_TIMEOUT_S} s: {_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: kill_group reaches its children too
            preexec_fn=_die_with_parent,
        )
    try:
        yield proc
    finally:
        kill_group(proc)


# ------------------------------------------------------------------- scriptable server


@dataclass
class FakeDnsServer:
    """A dnspython DNS server on loopback UDP+TCP with one scripted behaviour.

    ``delay`` holds back every answer (UDP and TCP) of any answering mode; ``late`` is
    ``answer`` with a delay.  ``port`` 0 picks a free port.

    Runs its own asyncio loop in a daemon thread, so the code under test can use
    ``asyncio.run`` in the test's thread.  ``records`` maps an A name (with trailing dot) to
    addresses; when given, other names are NXDOMAIN.  Without it every A name gets
    ``DEFAULT_A`` and every AAAA name ``DEFAULT_AAAA``.
    """

    mode: str = "answer"
    delay: float = 0.0
    records: dict[str, list[str]] | None = None
    host: str = LOOPBACK
    port: int = 0
    udp_queries: int = 0
    tcp_queries: int = 0
    server: DnsServer = field(init=False)
    _loop: asyncio.AbstractEventLoop = field(init=False, repr=False)
    _thread: threading.Thread = field(init=False, repr=False)
    _closers: list[Callable[[], Any]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")

    # -- lifecycle
    def start(self) -> FakeDnsServer:
        udp, tcp = _bound_pair(self.host, self.port)
        self.server = DnsServer(self.host, udp.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def setup() -> None:
            transport, _ = await self._loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
            self._closers.append(transport.close)
            if self.mode == "truncate-notcp":
                tcp.close()  # TCP/53 "blocked": the retry after TC is refused
            else:
                srv = await asyncio.start_server(self._serve_tcp, sock=tcp)
                self._closers.append(srv.close)

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(setup())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"fakedns-{self.server}", daemon=True)
        self._thread.start()
        if not ready.wait(5.0):
            raise RuntimeError("fake DNS server did not start")
        return self

    def stop(self) -> None:
        if not hasattr(self, "_loop") or self._loop.is_closed():
            return

        def shutdown() -> None:
            for close in self._closers:
                close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_later(0.05, self._loop.stop)

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> FakeDnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers (pure given the mode)
    def response_for(self, query: dns.message.Message, *, tcp: bool) -> dns.message.Message | None:
        if self.mode == "silent":
            return None
        response = dns.message.make_response(query)
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if self.mode == "refused":
            response.set_rcode(dns.rcode.REFUSED)
            return response
        if self.mode == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        if self.mode in ("truncate", "truncate-notcp") and not tcp:
            response.flags |= dns.flags.TC
            return response
        question = query.question[0]
        name = question.name.to_text()
        rdtype = question.rdtype
        if self.records is not None:
            addresses = self.records.get(name)
            if addresses is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                return response
        else:
            addresses = [DEFAULT_A] if rdtype == dns.rdatatype.A else [DEFAULT_AAAA]
        if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            wanted = [a for a in addresses if (":" in a) == (rdtype == dns.rdatatype.AAAA)]
            if wanted:
                response.answer.append(dns.rrset.from_text_list(name, 30, "IN", dns.rdatatype.to_text(rdtype), wanted))
        return response

    def _delay_for(self) -> float:
        return self.delay

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(2)
                wire = await reader.readexactly(struct.unpack("!H", header)[0])
                self.tcp_queries += 1
                try:
                    query = dns.message.from_wire(wire)
                except dns.exception.DNSException:
                    continue
                response = self.response_for(query, tcp=True)
                if response is None:
                    continue  # silent: hold the connection, never answer
                await asyncio.sleep(self._delay_for())
                out = response.to_wire()
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: FakeDnsServer) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport is a DatagramTransport in behaviour, not always by class.
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner.udp_queries += 1
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        response = self.owner.response_for(query, tcp=False)
        if response is None or self.transport is None:
            return
        wire = response.to_wire()
        delay = self.owner._delay_for()
        transport = self.transport
        if delay:
            asyncio.get_running_loop().call_later(delay, _send_if_open, transport, wire, addr)
        else:
            transport.sendto(wire, addr)


def _send_if_open(transport: asyncio.DatagramTransport, wire: bytes, addr: tuple[str, int]) -> None:
    if not transport.is_closing():
        transport.sendto(wire, addr)


# ------------------------------------------------------------------- bind9 and dnsmasq

ZONE = "aksdns.test."
# name -> (type, values); TXT "big" is over 512 bytes so a UDP answer without EDNS has TC set.
ZONE_RECORDS: dict[str, tuple[str, list[str]]] = {
    "www.aksdns.test.": ("A", ["10.53.1.10"]),
    "multi.aksdns.test.": ("A", ["10.53.1.11", "10.53.1.12", "10.53.1.13"]),
    "v6.aksdns.test.": ("AAAA", ["fd53:1::10"]),
    "alias.aksdns.test.": ("CNAME", ["www.aksdns.test."]),
    "big.aksdns.test.": ("TXT", [f'"{"x" * 200} {i}"' for i in range(6)]),
    "*.bench.aksdns.test.": ("A", ["10.53.2.1"]),  # any name the benchmark makes up
}


def zone_file() -> str:
    lines = [
        "$TTL 30",
        f"@ IN SOA ns.{ZONE} hostmaster.{ZONE} 1 3600 600 86400 30",
        f"@ IN NS ns.{ZONE}",
        f"ns.{ZONE} IN A {LOOPBACK}",
    ]
    for name, (rdtype, values) in ZONE_RECORDS.items():
        lines += [f"{name} IN {rdtype} {value}" for value in values]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RealServer:
    """A running Debian DNS daemon: where it listens and what it serves."""

    server: DnsServer
    kind: str  # "bind9" | "dnsmasq"
    zone: str = ZONE
    log: Path | None = None
    also: tuple[DnsServer, ...] = ()  # more ports the same daemon listens on (benchmarks)


def named_conf(workdir: Path, host: str, ports: Sequence[int]) -> str:
    # recursion no + no forwarders: named only answers from its zone and REFUSEs the rest,
    # so it never tries the root servers (there is no route to them anyway).
    listen = "\n    ".join(f"listen-on port {port} {{ {host}; }};" for port in ports)
    return f"""
options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    {listen}
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ none; }};
    automatic-interface-scan no;
}};
controls {{ }};
zone "{ZONE.rstrip(".")}" {{ type primary; file "{workdir}/db.zone"; }};
"""


@contextlib.contextmanager
def run_bind9(workdir: Path, host: str = LOOPBACK, *, ports: int = 1) -> Iterator[RealServer]:
    """named serving ZONE on ``ports`` free ports of ``host`` (one daemon, several endpoints)."""
    named = shutil.which("named") or "/usr/sbin/named"
    if not Path(named).exists():
        pytest.skip("bind9 (named) is not installed: apt-get install -y bind9")
    workdir.mkdir(parents=True, exist_ok=True)
    chosen: list[int] = []
    while len(chosen) < ports:
        port = free_port(host)
        if port not in chosen:
            chosen.append(port)
    (workdir / "db.zone").write_text(zone_file())
    conf = workdir / "named.conf"
    conf.write_text(named_conf(workdir, host, chosen))
    log = workdir / "named.log"
    # -g: foreground, log to stderr; -4: IPv4 only; -n 1: one worker thread is plenty here.
    with _process([named, "-g", "-4", "-n", "1", "-c", str(conf)], log) as proc:
        servers = [DnsServer(host, p) for p in chosen]
        for server in servers:
            wait_until_answers(server, ZONE, proc, log)
        yield RealServer(servers[0], "bind9", log=log, also=tuple(servers[1:]))


@contextlib.contextmanager
def run_dnsmasq(workdir: Path, upstream: DnsServer, host: str = LOOPBACK) -> Iterator[RealServer]:
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not Path(binary).exists():
        pytest.skip("dnsmasq is not installed: apt-get install -y dnsmasq-base")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    log = workdir / "dnsmasq.log"
    argv = [
        binary,
        "--keep-in-foreground",
        "--conf-file=/dev/null",  # ignore /etc/dnsmasq.conf
        "--no-resolv",  # no upstream from resolv.conf: forward only what --server says
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        f"--listen-address={host}",
        f"--port={port}",
        "--cache-size=0",  # every query reaches the upstream: latency and faults stay visible
        f"--server=/{ZONE.rstrip('.')}/{upstream.host}#{upstream.port}",
        f"--pid-file={workdir}/dnsmasq.pid",
        "--user=root",
        "--log-facility=-",
    ]
    with _process(argv, log) as proc:
        server = DnsServer(host, port)
        wait_until_answers(server, ZONE, proc, log)
        yield RealServer(server, "dnsmasq", log=log)


# ------------------------------------------------------------------- fixtures


@pytest.fixture
def dns_server_factory() -> Iterator[Callable[..., FakeDnsServer]]:
    started: list[FakeDnsServer] = []

    def make(
        mode: str = "answer",
        *,
        delay: float = 0.0,
        records: dict[str, list[str]] | None = None,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> FakeDnsServer:
        server = FakeDnsServer(mode=mode, delay=delay, records=records, host=host, port=port)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def answering_server(dns_server_factory: Callable[..., FakeDnsServer]) -> FakeDnsServer:
    return dns_server_factory("answer")


@pytest.fixture
def silent_server(dns_server_factory: Callable[..., FakeDnsServer]) -> FakeDnsServer:
    return dns_server_factory("silent")


@pytest.fixture
def late_server(dns_server_factory: Callable[..., FakeDnsServer]) -> FakeDnsServer:
    return dns_server_factory("late", delay=0.5)


@pytest.fixture
def servfail_server(dns_server_factory: Callable[..., FakeDnsServer]) -> FakeDnsServer:
    return dns_server_factory("servfail")


@pytest.fixture
def truncating_server(dns_server_factory: Callable[..., FakeDnsServer]) -> FakeDnsServer:
    return dns_server_factory("truncate")


@pytest.fixture
def closed_port() -> DnsServer:
    """Nothing listens here: UDP gets ICMP port unreachable, TCP gets RST."""
    return DnsServer(LOOPBACK, free_port())


@pytest.fixture(scope="session")
def bind9_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with run_bind9(tmp_path_factory.mktemp("bind9")) as server:
        yield server


@pytest.fixture(scope="session")
def dnsmasq_forwarder(tmp_path_factory: pytest.TempPathFactory, bind9_server: RealServer) -> Iterator[RealServer]:
    with run_dnsmasq(tmp_path_factory.mktemp("dnsmasq"), bind9_server.server) as server:
        yield server


# ------------------------------------------------------------------- out-of-process use


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.dnsservers MODE[:DELAY]...``: serve fake servers from another process.

    Benchmarks use this so the servers' work does not share the client's GIL.  Prints
    ``MODE HOST PORT`` per server, then ``ready``; serves until stdin closes.
    """
    import sys

    servers = []
    for spec in argv if argv is not None else sys.argv[1:]:
        mode, _, delay = spec.partition(":")
        servers.append(FakeDnsServer(mode=mode, delay=float(delay or 0)).start())
    for fake in servers:
        print(fake.mode, fake.server.host, fake.server.port, flush=True)
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        for fake in servers:
            fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
