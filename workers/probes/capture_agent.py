"""The capture agent: what runs in a capture container (an ephemeral container or a capture pod).

``aksdns probe capture-agent hold --run R --deadline S`` is the container's command. It captures
nothing itself: the worker execs ``tcpdump -w -`` in the container (started by the container runtime,
tcpdump gets the container's NET_RAW and NET_ADMIN; a child of this Python process would not, under
``allowPrivilegeEscalation: false``) and reads its output over the exec stream. The agent bounds the
container's life: it ends at its deadline, or when told to stop, and as PID 1 of the container it first
ends every process exec'd into it (tcpdump flushes and prints its counters on SIGTERM). An ephemeral
container cannot be removed through the API, so this deadline is what ends a capture whose worker died.

``capture-agent stop --run R`` (exec'd by the worker: the Stop button, the end of the capture) signals
the holder of run R. ``capture-agent iface --ip A`` prints the interface this network namespace routes
pod IP A through (a node's veth to the pod, or the bridge port behind it), for captures at the node.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

TERMINATION_LOG = "/dev/termination-log"
STOP_GRACE_S = 3.0
WATCH_S = 1.0
ORPHAN_S = 5.0  # no tcpdump this long after one ran: the worker is gone
PROC = Path("/proc")


# ---- hold ------------------------------------------------------------------------------------------------


def _others() -> list[int]:
    me = os.getpid()
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            out.append(int(entry.name))
    return out


def end_container_processes(grace_s: float = STOP_GRACE_S) -> int:
    """As PID 1 of the container: SIGTERM everything else in it, SIGKILL what is left after the grace.

    Only as PID 1: then every other process in this PID namespace was started in this container. A
    holder that is not PID 1 (a pod sharing its process namespace) leaves them to the runtime.
    """
    if os.getpid() != 1:
        return 0
    pids = _others()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:  # PID 1 reaps the orphans
                pass
        except ChildProcessError:
            pass
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            break
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def _tcpdumps() -> int:
    count = 0
    for pid in _others():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "tcpdump":
                count += 1
        except OSError:
            continue
    return count


def hold(run: str, deadline_s: float, termination_log: str) -> int:
    stop = threading.Event()
    reason = {"why": "deadline"}

    def on_signal(signum: int, _frame: object) -> None:
        reason["why"] = "stopped"
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.time()
    print(json.dumps({"agent": "ready", "run": run, "deadline_s": deadline_s, "pid": os.getpid()}), flush=True)
    end = time.monotonic() + deadline_s
    seen = False
    idle_since: float | None = None
    while not stop.wait(min(WATCH_S, max(0.0, end - time.monotonic()))):
        if time.monotonic() >= end:
            break
        if os.getpid() != 1:
            continue  # only PID 1 knows that every process it sees is this container's
        if _tcpdumps():
            seen, idle_since = True, None
        elif seen:
            # tcpdump ended without a stop: its worker's stream closed (a worker that died): end now,
            # not at the deadline.
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= ORPHAN_S:
                reason["why"] = "its capture stream closed"
                break
    ended = end_container_processes()
    out = {"agent": "done", "run": run, "ended": reason["why"], "seconds": round(time.time() - started, 1),
           "ended_processes": ended}
    line = json.dumps(out)
    print(line, flush=True)
    try:
        Path(termination_log).write_text(line)
    except OSError:
        pass  # a read-only or missing termination path: the log has it
    return 0


def _holders(run: str) -> list[int]:
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv]
        named = any(w == "capture-agent" or w.endswith("capture_agent") for w in words)
        if named and "hold" in words and run in words:
            try:
                if words[words.index("--run") + 1] == run:
                    found.append(int(entry.name))
            except (ValueError, IndexError):
                continue
    return found


def stop(run: str) -> int:
    """Signal the holder of ``run``; exit 0 when one was found, 3 when none runs (already ended)."""
    holders = _holders(run)
    for pid in holders:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    print(json.dumps({"stopped": len(holders)}), flush=True)
    return 0 if holders else 3


# ---- iface -----------------------------------------------------------------------------------------------


def _routes(text: str) -> list[tuple[str, int, int]]:
    """(interface, destination, mask) of /proc/net/route, addresses as host-order integers."""
    out = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        # The kernel prints each address's bytes in network order as a host-order (little-endian) word.
        dest = struct.unpack("<I", bytes.fromhex(cols[1]))[0]
        mask = struct.unpack("<I", bytes.fromhex(cols[7]))[0]
        out.append((cols[0], dest, mask))
    return out


def route_interface(route_text: str, ip: str) -> str | None:
    """The interface of the most specific route that holds ``ip``."""
    addr = struct.unpack("!I", socket.inet_aton(ip))[0]
    best: tuple[int, str] | None = None
    for iface, dest, mask in _routes(route_text):
        if addr & mask == dest & mask and (best is None or mask > best[0]):
            best = (mask, iface)
    return best[1] if best else None


def arp_mac(arp_text: str, ip: str) -> str | None:
    for line in arp_text.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 6 and cols[0] == ip and cols[3] != "00:00:00:00:00:00":
            return cols[3].lower()
    return None


def bridge_port(bridge: str, mac: str, sys_net: Path = Path("/sys/class/net")) -> str | None:
    """The bridge port (a pod's veth) a MAC address was learned on (kubenet's cbr0)."""
    try:
        fdb = (sys_net / bridge / "brforward").read_bytes()
    except OSError:
        return None
    ports = {}
    for port in (sys_net / bridge / "brif").iterdir():
        try:
            ports[int((port / "port_no").read_text(), 16)] = port.name
        except (OSError, ValueError):
            continue
    want = bytes.fromhex(mac.replace(":", ""))
    for off in range(0, len(fdb) - 15, 16):  # struct __fdb_entry: mac[6], port_no, is_local, ageing u32, port_hi
        entry = fdb[off:off + 16]
        if entry[:6] == want and not entry[7]:
            return ports.get(entry[6] | (entry[12] << 8))
    return None


def find_interface(ip: str, proc_net: Path = Path("/proc/net"),
                   sys_net: Path = Path("/sys/class/net")) -> dict[str, str]:
    """Where a pod's traffic crosses this node: its veth (a /32 route, or the bridge port); else ``any``."""
    try:
        iface = route_interface((proc_net / "route").read_text(), ip)
    except OSError:
        iface = None
    if iface and (sys_net / iface / "bridge").exists():
        mac = arp_mac((proc_net / "arp").read_text(), ip) if (proc_net / "arp").exists() else None
        port = bridge_port(iface, mac, sys_net) if mac else None
        if port:
            return {"iface": port, "how": f"bridge {iface} port"}
        return {"iface": "any", "how": f"behind bridge {iface} (port not learned)"}
    if iface and iface not in ("lo",) and not iface.startswith(("eth", "en")):
        return {"iface": iface, "how": "route"}
    return {"iface": "any", "how": "no per-pod route"}


# ---- entry -----------------------------------------------------------------------------------------------


def agent_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aksdns probe capture-agent")
    sub = parser.add_subparsers(dest="what", required=True)
    h = sub.add_parser("hold", help="the capture container's main process")
    h.add_argument("--run", required=True)
    h.add_argument("--deadline", type=float, required=True, help="seconds until the container ends by itself")
    h.add_argument("--termination-log", default=TERMINATION_LOG)
    s = sub.add_parser("stop", help="end the capture container of a run")
    s.add_argument("--run", required=True)
    i = sub.add_parser("iface", help="the interface a pod IP is routed through on this node")
    i.add_argument("--ip", required=True)
    args = parser.parse_args(argv)
    if args.what == "hold":
        return hold(args.run, max(1.0, min(args.deadline, 3600.0)), args.termination_log)
    if args.what == "stop":
        return stop(args.run)
    print(json.dumps(find_interface(args.ip)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(agent_main(sys.argv[1:]))
