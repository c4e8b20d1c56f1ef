"""One capture run: its targets' capture containers, their byte streams into rings, and the clean-up.

Per target, most native first (``workers.probes.capture_pods``): an ephemeral container in the pod;
where refused, a capture pod on its node at the pod's veth; for a node, a capture pod in its host
network. tcpdump is exec'd in the capture container and its pcap stream read while it captures
(``workers.probes.podstream``) into the target's ring on the worker's disk (``workers.capture.ring``),
or, with ``--live``, decoded into rows as it arrives. Every target runs in a thread of its own; the
caller's loop shows progress and ends the capture at its duration or when asked to stop.

Whatever happens, the capture containers end: the worker stops their agents and deletes capture pods
(the pod runner deletes what it created in ``finally``); a worker that dies leaves them to their own
deadlines and to the janitor.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aksdns.errors import AksDnsError, ClusterError
from workers.capture.pcapio import PcapStream, Record, StreamInfo
from workers.capture.ring import Ring
from workers.evidence.capture import Mechanism, Role, Target, TargetResult
from workers.probes import capture_pods as cp
from workers.probes import pods
from workers.probes.kube import Clients
from workers.probes.podstream import ExecStream, open_exec, run_exec

LINKTYPES = {"EN10MB": 1, "LINUX_SLL": 113, "LINUX_SLL2": 276, "RAW": 101, "NULL": 0}
_LISTENING = re.compile(r"listening on (\S+), link-type (\S+)")
_KERNEL_DROPS = re.compile(r"(\d+) packets? dropped by kernel")
START_WAIT_S = 25.0  # a capture container's start on a real node (image pull included); the testbed needs ~1 s
LISTEN_WAIT_S = 10.0
DRAIN_S = 5.0  # after a stop: tcpdump's last packets and its counters
EXEC_ATTEMPTS = 4
EXEC_RETRY_S = 0.75


@dataclass(frozen=True)
class CaptureConfig:
    """What every target of one run captures, and where the worker's pods go."""

    agent: cp.AgentSpec
    namespace: str  # the release namespace (capture pods)
    filter: str
    snaplen: int
    cap_bytes: int
    live: bool = False
    start_wait_s: float = START_WAIT_S


def tcpdump_argv(iface: str, snaplen: int, expression: str) -> list[str]:
    """tcpdump writing pcap to stdout, one packet at a time; the filter is one argument, never a shell's."""
    return ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-B", "4096", "-s", str(snaplen), "-w", "-",
            expression]


@dataclass
class TargetRun:
    """One target's capture, from its container's start to its clean-up."""

    clients: Clients
    runner: pods.PodRunner
    target: Target
    config: CaptureConfig
    spool: Path
    on_records: Callable[[TargetRun, list[Record]], None] | None = None  # --live: decoded by the caller
    result: TargetResult = field(init=False)
    ring: Ring = field(init=False)
    stream: ExecStream | None = None
    where: tuple[str, str, str] = ("", "", "")  # namespace, pod, container to exec in
    listening: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    live_parser: PcapStream = field(default_factory=PcapStream)

    def __post_init__(self) -> None:
        self.result = TargetResult(self.target)
        self.ring = Ring(self.spool / _safe(self.target.label), self.config.cap_bytes)

    # ---- start ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the capture container and tcpdump in it; on failure ``result.error`` says why."""
        try:
            self._start()
        except cp.TargetBusy as exc:
            self.result.error = exc.user_message
        except ClusterError as exc:
            self.result.error = exc.user_message
        except AksDnsError as exc:
            self.result.error = exc.message

    def _start(self) -> None:
        t, cfg = self.target, self.config
        if t.role is Role.NODE:
            self._start_pod(Mechanism.HOST, "eth0", cfg.filter)
            return
        busy = cp.busy_capture_pod(self.clients, cfg.namespace, t)
        if busy:
            raise cp.TargetBusy(f"{t.label} is already being captured ({busy})")
        name = cp.ephemeral_name(cfg.agent.run_id)
        try:
            cp.add_ephemeral(self.clients, t, cp.ephemeral_container(cfg.agent))
        except cp.EphemeralRefused as exc:
            self.result.fallback_reason = exc.user_message
            self._start_pod(Mechanism.NODE_VETH, "", cfg.filter)
            return
        self.result.mechanism = Mechanism.EPHEMERAL
        self.where = (t.namespace, t.name, name)
        why = cp.wait_ephemeral(self.clients, t, name, cfg.start_wait_s)
        if why:
            raise AksDnsError(why)
        self._tcpdump("any", cfg.filter)

    def _start_pod(self, mechanism: Mechanism, iface: str, expression: str) -> None:
        t, cfg = self.target, self.config
        body = cp.capture_pod(cfg.agent, t, cfg.namespace)
        name = body["metadata"]["name"]
        self.result.mechanism = mechanism
        cp.create_capture_pod(self.clients, body)
        self.runner.attempted.append(name)  # deleted with the run, whatever happens
        self.where = (cfg.namespace, name, cp.CONTAINER)
        why = cp.wait_pod_running(self.clients, cfg.namespace, name, cfg.start_wait_s)
        if why:
            raise AksDnsError(why)
        if mechanism is Mechanism.NODE_VETH:
            iface, how = self._veth()
            self.result.notes.append(f"the pod's traffic crosses {iface} on {t.node} ({how})")
            if iface == "any":
                expression = f"host {t.ip} and ({expression})"
        self._tcpdump(iface, expression)

    def _veth(self) -> tuple[str, str]:
        ns, pod, container = self.where
        argv = [*self.config.agent.command, "capture-agent", "iface", "--ip", self.target.ip]
        for attempt in range(EXEC_ATTEMPTS):
            out, stream = run_exec(self.clients.api, ns, pod, container, argv)
            if stream.result.ok or attempt == EXEC_ATTEMPTS - 1:
                break
            time.sleep(EXEC_RETRY_S)  # a container that just started may not take execs yet
        try:
            found = json.loads(out.decode(errors="replace").strip().splitlines()[-1])
            return str(found["iface"]), str(found.get("how", ""))
        except (ValueError, KeyError, IndexError):
            raise AksDnsError(f"could not find {self.target.label}'s interface on its node: "
                              f"{stream.stderr_text[-160:] or 'no answer'}") from None

    def _tcpdump(self, iface: str, expression: str) -> None:
        ns, pod, container = self.where
        self.result.interface = iface
        for attempt in range(EXEC_ATTEMPTS):
            self.listening.clear()
            self.ended.clear()
            self.stream = open_exec(self.clients.api, ns, pod, container,
                                    tcpdump_argv(iface, self.config.snaplen, expression))
            self.thread = threading.Thread(target=self._pump, name=f"capture-{self.target.label}", daemon=True)
            self.thread.start()
            self.listening.wait(LISTEN_WAIT_S)
            if self.result.started_ns:
                return
            self.stream.close()
            self.thread.join(DRAIN_S)
            if attempt < EXEC_ATTEMPTS - 1 and self.stream.result.ok is False and self.stream.result.exit_code in (
                    None, 126, 127):
                time.sleep(EXEC_RETRY_S)  # a container that just started may not take execs yet
                continue
            break
        err = self.stream.stderr_text.splitlines()[-1:] if self.stream else []
        detail = err[0][:200] if err else (self.stream.result.message[:200] if self.stream else "")
        raise AksDnsError(f"tcpdump did not start: {detail or 'no output'}")

    # ---- the stream -----------------------------------------------------------------------------------
    def _pump(self) -> None:
        stream = self.stream
        assert stream is not None
        seen_err = 0
        try:
            for chunk in stream.chunks():
                if not self.listening.is_set():
                    self._check_listening(stream)
                if not chunk:
                    continue
                if self.on_records is not None:
                    records = self.live_parser.feed(chunk)
                    self.result.packets += len(records)
                    self.result.bytes += sum(len(r.data) for r in records)
                    if records:
                        self.on_records(self, records)
                else:
                    self.ring.feed(chunk)
                    self.result.packets = self.ring.counts.packets
                    self.result.bytes = self.ring.counts.bytes
                if len(stream.stderr) != seen_err:
                    seen_err = len(stream.stderr)
                    self._check_listening(stream)
            self._check_listening(stream)
        except AksDnsError as exc:  # a damaged stream: keep what came before it
            self.result.error = exc.message
        finally:
            self.ring.close()
            self.ended.set()
            self.listening.set()

    def _check_listening(self, stream: ExecStream) -> None:
        text = stream.stderr_text
        m = _LISTENING.search(text)
        if m and not self.listening.is_set():
            self.result.started_ns = time.time_ns()
            linktype = LINKTYPES.get(m.group(2))
            if linktype is not None and self.ring.info is None:
                self.ring.default_info = StreamInfo(linktype, self.config.snaplen, False, False)
            self.listening.set()
        drops = _KERNEL_DROPS.search(text)
        if drops:
            self.result.kernel_dropped = int(drops.group(1))

    @property
    def capturing(self) -> bool:
        return self.listening.is_set() and not self.result.error and self.stream is not None

    # ---- the end --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Tell the agent to end (tcpdump flushes its last packets), then close the stream."""
        ns, pod, container = self.where
        if pod:
            try:
                run_exec(self.clients.api, ns, pod, container,
                         [*self.config.agent.command, "capture-agent", "stop", "--run", self.config.agent.run_id],
                         timeout_s=10.0)
            except ClusterError as exc:
                self.result.notes.append(f"could not stop the capture container ({exc.user_message}); "
                                         "it ends at its own deadline")
        self.ended.wait(DRAIN_S)
        if self.stream is not None:
            self.stream.close()
        if self.thread is not None:
            self.thread.join(DRAIN_S)
        if self.stream is not None:
            self._check_listening(self.stream)
        self.ring.close()
        if self.result.mechanism is Mechanism.EPHEMERAL:
            self.result.notes.append("its ephemeral container has ended (it stays listed in the pod, stopped)")


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def start_all(runs: list[TargetRun]) -> None:
    """Start every target at once (one after another would shift their windows by seconds)."""
    if not runs:
        return
    with ThreadPoolExecutor(max_workers=min(len(runs), 10), thread_name_prefix="capture-start") as pool:
        list(pool.map(lambda r: r.start(), runs))


def stop_all(runs: list[TargetRun]) -> None:
    started = [r for r in runs if r.where[1]]
    if not started:
        return
    with ThreadPoolExecutor(max_workers=min(len(started), 10), thread_name_prefix="capture-stop") as pool:
        list(pool.map(lambda r: r.stop(), started))


def wait_capture(runs: list[TargetRun], duration_s: float, stop_requested: Callable[[], bool],
                 progress: Callable[[float], None], every_s: float = 3.0) -> str:
    """Until the duration ends, Stop is pressed, or every stream has ended; returns which."""
    start = time.monotonic()
    last = 0.0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= duration_s:
            return "duration"
        if stop_requested():
            return "stopped"
        if all(r.ended.is_set() for r in runs if r.capturing or r.thread is not None):
            return "ended"
        if elapsed - last >= every_s:
            last = elapsed
            progress(elapsed)
        time.sleep(0.25)
