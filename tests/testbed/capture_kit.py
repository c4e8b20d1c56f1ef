"""What the capture tests share: a job environment on the testbed, traffic that starts once the capture
runs, and the check that nothing was left behind (pods, running capture containers, processes, files)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aksdns import grammar
from aksdns.commands import CaptureCommand
from workers.jobenv import JobEnv
from workers.report import Report

NAMESPACE = "aksdns"
CLIENT = "capture-client"
TSHARK = shutil.which("tshark") or "tshark"
CAPINFOS = shutil.which("capinfos") or "capinfos"


@dataclass
class Run:
    """One capture job run in-process against the testbed (what the worker runs)."""

    testbed: Any
    workdir: Path
    out: Path
    progress: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    capturing: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    delivered: dict[str, Path] = field(default_factory=dict)
    max_bytes: int = 100 * 1024 * 1024
    image: str = "aksdns:test"  # not in container storage: capture containers run as processes

    def env(self) -> JobEnv:
        def progress(text: str) -> None:
            self.progress.append(text)
            if text.startswith("capturing —"):
                self.capturing.set()

        def deliver(path: Path, filename: str, _title: str) -> str:
            self.out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.out / filename)
            self.delivered[filename] = self.out / filename
            return filename

        return JobEnv(cluster="testbed", namespace=NAMESPACE, kubeconfig=str(self.testbed.worker_kubeconfig),
                      probe_image=self.image, workdir=self.workdir, progress=progress, deliver_file=deliver,
                      post_report=self.reports.append, stop_requested=self.stop.is_set, job_id="test-job",
                      requested_by="U0TEST", capture_max_bytes=self.max_bytes)

    def execute(self, text: str) -> Report:
        from workers.jobs import capture

        command = grammar.parse(text)
        assert isinstance(command, CaptureCommand)
        return capture.execute(command, self.env())

    def in_background(self, text: str) -> Callable[..., Report]:
        """Run the job in a thread; the returned function waits for its report (or raises its error)."""
        box: dict[str, Any] = {}

        def body() -> None:
            try:
                box["report"] = self.execute(text)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc

        thread = threading.Thread(target=body, daemon=True)
        thread.start()

        def wait(timeout: float = 180.0) -> Report:
            thread.join(timeout)
            assert not thread.is_alive(), "the capture job did not end"
            if "error" in box:
                raise box["error"]
            report: Report = box["report"]
            return report

        return wait

    def pcapng(self) -> Path:
        return next(p for name, p in self.delivered.items() if name.endswith(".pcapng"))


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0, every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def tshark_fields(path: Path, *fields: str, display_filter: str = "dns") -> list[list[str]]:
    args = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    if display_filter:
        args += ["-Y", display_filter]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


def interface_names(path: Path) -> list[str]:
    """The file's Interface Description Blocks' names as Wireshark's capinfos reads them, packets or not."""
    out = subprocess.run([CAPINFOS, str(path)], capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("=", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("Name =")]


# ---- nothing left behind --------------------------------------------------------------------------------


def capture_pods(testbed: Any) -> list[str]:
    pods = testbed.kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods",
                            labelSelector="app.kubernetes.io/managed-by=aksdns,aksdns.io/role=capture")["items"]
    return [p["metadata"]["name"] for p in pods]


def running_capture_containers(testbed: Any) -> list[str]:
    """aksdns capture containers (ephemeral) that have not terminated, in any pod."""
    out = []
    for pod in testbed.kube.get("/api/v1/pods")["items"]:
        statuses = {s["name"]: s for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []}
        for c in pod["spec"].get("ephemeralContainers") or []:
            if not c["name"].startswith("aksdns-capture-"):
                continue
            state = (statuses.get(c["name"]) or {}).get("state") or {}
            if "terminated" not in state:
                out.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}:{c['name']}")
    return out


def capture_processes() -> list[str]:
    """tcpdumps the capture started (its flags) and capture agents, anywhere on this machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(words).decode(errors="replace")
        if ("tcpdump" in text and "--immediate-mode" in text and "-B 4096" in text) or (
                "capture-agent" in text and " hold " in text):
            found.append(f"{entry.name}: {text[:120]}")
    return found


def nothing_left(testbed: Any, timeout: float = 60.0) -> None:
    """No capture pod, no running capture container, no capture process (waits for deadlines)."""
    wait_for("capture pods gone", lambda: not capture_pods(testbed), timeout)
    wait_for("capture containers ended", lambda: not running_capture_containers(testbed), timeout)
    wait_for("capture processes gone", lambda: not capture_processes(), timeout)


def spool_dirs(workdir: Path) -> list[Path]:
    return list(workdir.glob("capture*"))
