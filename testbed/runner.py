"""The testbed's "container runtime": makes the pods that must really run, run.

kwok plays the kubelets (scheduling results, pod IPs, Running/Ready status, `kubectl logs` through its
kubelet endpoint). This runner, one process polling the API server twice a second, adds the parts kwok
cannot fake:

* CoreDNS pods (kube-system, label k8s-app=kube-dns): one real ``coredns`` process per pod, in a network
  namespace of its own holding the pod IP, with the Corefile rendered from the ``coredns`` and
  ``coredns-custom`` ConfigMaps (re-rendered and reloaded with SIGUSR1 when they change) and a
  kubeconfig for the kubernetes plugin. A crash is restarted with back-off and shows in the pod status
  (restartCount, lastState, Ready=False), as kubelet would show it.
* Pods to execute: on a testbed node, phase Running, and either annotated ``testbed.aksdns.dev/run:
  "true"`` or whose first container's command[0] is one of RUNNABLE_COMMANDS (``aksdns``). Each
  container's command+args runs once, in the node's network namespace for hostNetwork pods (so it sees
  the node's /etc/resolv.conf) or in a pod namespace holding the pod IP otherwise, found on PATH (the
  runner's PATH with the Python environment's bin directory first). Output goes to a CRI-format log
  file that kwok serves for `kubectl logs`; on exit the pod status gets the real exit code and
  termination message, phase Succeeded or Failed. A run is killed after the pod's
  activeDeadlineSeconds (default RUN_TIMEOUT_S). hostPath volumes come from the node's directory
  (``testbed.nodefs``), bound over the mountPath in the command's own mount namespace.
* Pods whose every container image is in this machine's container storage (the aksdns image that
  `scripts/image` builds): the same, but each container runs from that image through podman, inside the
  pod's network namespace, with the pod's command, env, user, capabilities and read-only root (container
  mode, testbed/containers.py). This is how the chart's bot and worker, and the probe pods they create,
  run as real containers on the testbed.
* The kube-dns Service VIP: nftables DNAT to the Ready endpoints of the kube-dns EndpointSlices, in the
  host and in every node namespace.
* Fault annotations on CoreDNS pods (``testbed.aksdns.dev/fault``): ``dead`` kills the process and takes
  the pod's link down (queries time out, the API still says Ready); ``crashloop`` kills it and reports
  CrashLoopBackOff with a growing restartCount (Ready=False, so the endpoint leaves the VIP).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

from testbed import containerexec, containers, layout, metrics, net, nodefs, pki, procs
from testbed.containers import TokenFile
from testbed.kube import JSON, ApiError, Kube
from testbed.state import State

POLL_S = 0.5
RUN_TIMEOUT_S = 600
CRASHLOOP_PERIOD_S = 10.0
MAX_MESSAGE_BYTES = 4096
LOGS_API = "/apis/kwok.x-k8s.io/v1alpha1"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CriLog:
    """Copies a process's stdout/stderr into a CRI-format log file (what kubelet's reader, and so kwok,
    parses for `kubectl logs`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # closed by close()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def attach(self, stream: IO[bytes], name: str) -> None:
        t = threading.Thread(target=self._pump, args=(stream, name), daemon=True)
        t.start()
        self._threads.append(t)

    def _pump(self, stream: IO[bytes], name: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            with self._lock:
                self._file.write(f"{stamp} {name} F {line}\n")
                self._file.flush()
        stream.close()

    def tail_text(self, max_bytes: int = 2048) -> str:
        lines = []
        try:
            for line in self.path.read_text(errors="replace").splitlines()[-80:]:
                parts = line.split(" ", 3)
                lines.append(parts[3] if len(parts) == 4 else line)
        except OSError:
            return ""
        return "\n".join(lines)[-max_bytes:]

    def close(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)
        with self._lock:
            self._file.close()


def spawn(cmd: list[str], log: CriLog, pid_file: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    log.attach(proc.stdout, "stdout")
    log.attach(proc.stderr, "stderr")
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid} {procs._start_time(proc.pid) or ''}\n")
    return proc


def stop_proc(proc: subprocess.Popen[bytes] | None, pid_file: Path | None = None, grace_s: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL after the grace period; reaped through Popen so that its real
    exit status (the signal) is kept."""
    if proc is not None and proc.poll() is None:
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # spawn() starts every process in a session of its own
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=max(wait_s, 0.05))
                break
            except subprocess.TimeoutExpired:
                continue
    if pid_file is not None:
        pid_file.unlink(missing_ok=True)


def render_corefile(corefile: str, pod_dir: Path) -> str:
    """Adapt the ConfigMap's Corefile to a process outside a container: the kubernetes plugin gets the
    pod's kubeconfig, and custom/ imports point at the rendered coredns-custom keys."""
    kubeconfig = f"kubeconfig {pod_dir / 'kubeconfig'}"
    lines: list[str] = []
    for line in corefile.splitlines():
        words = line.split()
        if words and words[0] == "kubernetes":
            indent = line[: len(line) - len(line.lstrip())]
            if line.rstrip().endswith("{"):
                lines += [line, f"{indent}  {kubeconfig}"]
            else:
                lines += [line.rstrip() + " {", f"{indent}  {kubeconfig}", f"{indent}}}"]
            continue
        lines.append(re.sub(r"(\bimport\s+)(?:/etc/coredns/)?custom/",
                            lambda m: f"{m.group(1)}{pod_dir}/custom/", line))
    return "\n".join(lines) + "\n"


@dataclass
class Instance:
    """One CoreDNS pod's real process."""

    uid: str
    namespace: str
    name: str
    node: str
    ip: str
    dir: Path
    netns: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log: CriLog | None = None
    fault: str = ""
    restarts: int = 0
    next_start: float = 0.0
    last_exit: int | None = None
    last_patch: float = 0.0
    status_ready: bool = True
    config_hash: str = ""
    cpu_sample: tuple[float, float] | None = None  # (monotonic time, CPU seconds) of the last usage report
    last_reason: str = "Error"  # how the next termination is reported (OOMKilled for the oom knob)
    reported_reason: str = "Error"  # the last termination's reason as the pod status says it
    finished_at: str = ""
    log_rotate: bool = False  # the container ended: its log becomes the previous log at the next start

    @property
    def pid_file(self) -> Path:
        return self.dir.parent.parent / "pids" / f"coredns-{self.uid[:8]}.pid"


@dataclass
class Job:
    """One run of a pod's containers."""

    uid: str
    namespace: str
    name: str
    dir: Path
    deadline: float
    containers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, CriLog] = field(default_factory=dict)
    started_at: str = ""
    netns: str = ""
    done: bool = False
    mode: str = "process"        # or "container" (testbed/containers.py)
    token_at: float = 0.0        # when the projected ServiceAccount tokens were last written (container mode)
    tokens: list[TokenFile] = field(default_factory=list)
    sa: str = ""                 # the pod's ServiceAccount


class Runner:
    def __init__(self, state: State) -> None:
        self.state = state
        self.kube: Kube = state.admin(timeout=10)
        self.nodes = {n.name: n for n in state.nodes()}
        self.instances: dict[str, Instance] = {}
        self.jobs: dict[str, Job] = {}
        self.finished: set[str] = set()
        self.backends: list[str] | None = None
        self.config_hash = ""
        self.corefile = ""
        self.custom: dict[str, str] = {}
        self.stopping = threading.Event()
        self.node_ready: dict[str, bool] = {}
        self.venv_bin = str(Path(state.python).parent)
        self.images = containers.ImageCache()
        self.last_usage = 0.0
        # Exec into containers and ephemeral containers (testbed/containerexec.py).
        self.ephemerals = containerexec.Ephemerals(state.run, state.python, self.kube, spawn, stop_proc, CriLog,
                                                   self._env, now_rfc3339, image_config=self.images.config,
                                                   lookup=self._lookup)

    # ---- main loop -------------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep serving: a passing API hiccup must not stop the runtime
                print(f"runner: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self.stopping.wait(POLL_S)
        self.shutdown()

    def tick(self) -> None:
        self.sync_configmaps()
        self.node_ready = {
            n["metadata"]["name"]: any(c.get("type") == "Ready" and c.get("status") == "True"
                                       for c in n.get("status", {}).get("conditions") or [])
            for n in self.kube.get("/api/v1/nodes")["items"]
        }
        pods = self.kube.get("/api/v1/pods")["items"]
        live = {p["metadata"]["uid"] for p in pods}
        for pod in pods:
            if pod["spec"].get("nodeName") not in self.nodes or pod["metadata"].get("deletionTimestamp"):
                continue
            try:
                if self.is_coredns(pod):
                    self.sync_coredns(pod)
                elif pod["metadata"]["uid"] in self.jobs or pod["metadata"]["uid"] in self.finished:
                    continue
                elif self.is_runnable(pod) or self.is_container_pod(pod):
                    self.sync_job(pod)
            except Exception as exc:  # one pod's trouble must not starve the others
                print(f"runner: pod {pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}: "
                      f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                self.fail_job(pod, exc)
        for uid in [u for u in self.instances if u not in live]:
            self.remove_instance(uid)
        for uid in [u for u in self.jobs if u not in live]:
            self.remove_job(uid)
        for job in list(self.jobs.values()):
            self.poll_job(job)
        self.ephemerals.tick([p for p in pods if p["spec"].get("nodeName") in self.nodes], self.sandbox)
        self.sync_vip()
        if time.monotonic() - self.last_usage >= metrics.USAGE_PERIOD_S:
            self.last_usage = time.monotonic()
            self.report_usage()

    def report_usage(self) -> None:
        """Each CoreDNS process's real CPU rate and memory → its kwok ResourceUsage (metrics.k8s.io)."""
        for inst in list(self.instances.values()):
            if inst.proc is None or inst.proc.poll() is not None:
                inst.cpu_sample = None
                continue
            cpu, rss = metrics.cpu_seconds(inst.proc.pid), metrics.rss_bytes(inst.proc.pid)
            if cpu is None or rss is None:
                continue
            now = time.monotonic()
            last, inst.cpu_sample = inst.cpu_sample, (now, cpu)
            if last is None or now <= last[0]:
                continue
            rate_m = round(1000 * (cpu - last[1]) / (now - last[0]))
            try:
                metrics.put_usage(self.kube, metrics.usage_object(inst.namespace, inst.name, "coredns", rate_m, rss))
            except ApiError as exc:
                print(f"runner: usage of {inst.name}: {exc}", file=sys.stderr, flush=True)

    def shutdown(self) -> None:
        self.ephemerals.stop_all()
        for uid in list(self.instances):
            self.remove_instance(uid)
        for uid in list(self.jobs):
            self.remove_job(uid)
        containers.remove_all()

    # ---- CoreDNS ---------------------------------------------------------------------------------
    @staticmethod
    def is_coredns(pod: JSON) -> bool:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        return bool(meta.get("namespace") == "kube-system" and labels.get("k8s-app") == "kube-dns")

    def sync_configmaps(self) -> None:
        core = self.kube.get_or_none("/api/v1/namespaces/kube-system/configmaps/coredns") or {}
        custom = self.kube.get_or_none("/api/v1/namespaces/kube-system/configmaps/coredns-custom") or {}
        corefile = (core.get("data") or {}).get("Corefile", "")
        # AKS imports only these two key shapes from coredns-custom.
        keys = {k: v for k, v in (custom.get("data") or {}).items() if k.endswith((".override", ".server"))}
        digest = hashlib.sha256(repr((corefile, sorted(keys.items()))).encode()).hexdigest()
        if digest == self.config_hash:
            return
        self.config_hash, self.corefile, self.custom = digest, corefile, keys
        for inst in self.instances.values():
            self.write_config(inst)
            if inst.proc is not None and inst.proc.poll() is None:
                # CoreDNS re-reads its Corefile on SIGUSR1 (and keeps the old one if the new is invalid).
                os.killpg(inst.proc.pid, signal.SIGUSR1)

    def write_config(self, inst: Instance) -> None:
        custom_dir = inst.dir / "custom"
        custom_dir.mkdir(parents=True, exist_ok=True)
        for old in custom_dir.iterdir():
            if old.name not in self.custom:
                old.unlink()
        for key, value in self.custom.items():
            (custom_dir / key).write_text(value)
        (inst.dir / "Corefile").write_text(render_corefile(self.corefile, inst.dir))
        inst.config_hash = self.config_hash

    def sync_coredns(self, pod: JSON) -> None:
        meta, status = pod["metadata"], pod.get("status", {})
        ip = status.get("podIP")
        if not ip or status.get("phase") != "Running":
            return
        uid = meta["uid"]
        inst = self.instances.get(uid)
        if inst is None:
            inst = Instance(uid=uid, namespace=meta["namespace"], name=meta["name"],
                            node=pod["spec"]["nodeName"], ip=ip, dir=self.state.pods / f"{meta['name']}-{uid[:8]}")
            self.instances[uid] = inst
            self.prepare_instance(inst)
        fault = (meta.get("annotations") or {}).get(layout.FAULT_ANNOTATION, "")
        if fault != inst.fault:
            self.apply_fault(inst, fault)
        if inst.fault == "crashloop":
            if time.monotonic() - inst.last_patch >= CRASHLOOP_PERIOD_S:
                inst.restarts += 1
                self.patch_crashloop(inst, exit_code=1)
            return
        if inst.fault == "dead":
            return
        if inst.proc is not None and inst.proc.poll() is not None:
            # The process died by itself (a bad Corefile, say): restart with back-off, like kubelet.
            code = inst.proc.returncode
            inst.last_exit = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as kubelet
            inst.proc = None
            inst.restarts += 1
            inst.next_start = time.monotonic() + min(2.0 * 2 ** min(inst.restarts, 4), 30.0)
            inst.log_rotate = True
            self.patch_crashloop(inst, exit_code=inst.last_exit, reason=inst.last_reason)
            inst.last_reason = "Error"
        if inst.proc is None and time.monotonic() >= inst.next_start:
            self.start_coredns(inst)
            if not inst.status_ready:
                self.patch_running(inst)
        elif inst.proc is not None and time.monotonic() - inst.last_patch > 1.0:
            # On a NotReady node the node controller marks pods not Ready (after its grace period; the
            # runner does it at once for CoreDNS pods), and a kubelet reports them Ready again once the
            # node is back. kwok does neither, so the runner does, for CoreDNS pods.
            node_ok = self.node_ready.get(inst.node, False)
            if node_ok != self._pod_ready(pod):
                if node_ok:
                    self.patch_running(inst)
                else:
                    self._patch_status(inst.namespace, inst.name, {"conditions": self._conditions(False)})
                    inst.status_ready = False
                inst.last_patch = time.monotonic()

    @staticmethod
    def _pod_ready(pod: JSON) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in pod.get("status", {}).get("conditions") or [])

    def prepare_instance(self, inst: Instance) -> None:
        inst.dir.mkdir(parents=True, exist_ok=True)
        inst.netns = net.add_pod(inst.uid, inst.ip, self.nodes[inst.node].netns)
        server = f"https://{layout.GATEWAY_IP}:{layout.API_GATEWAY_PORT}"
        pki.write_kubeconfig(inst.dir / "kubeconfig", server, self.state.pki / "ca.crt",
                             "system:serviceaccount:kube-system:coredns",
                             cert=self.state.pki / "coredns.crt", key=self.state.pki / "coredns.key")
        self.write_config(inst)
        inst.log = CriLog(inst.dir / "coredns.log")
        self.ensure_logs_cr(inst.namespace, inst.name, inst.uid, {"coredns": inst.log.path},
                            previous={"coredns": inst.dir / "coredns.previous.log"})
        containerexec.register(self.state.run, inst.uid, "coredns", netns=inst.netns)

    def start_coredns(self, inst: Instance) -> None:
        assert inst.log is not None
        if inst.log_rotate:
            # As kubelet: a new container gets a new log; the ended one's is what `logs --previous` reads.
            inst.log.close(timeout=1)
            previous = inst.log.path.with_name("coredns.previous.log")
            inst.log.path.replace(previous)
            inst.log = CriLog(inst.log.path)
            inst.log_rotate = False
        cmd = ["ip", "netns", "exec", inst.netns, self.state.coredns_binary, "-conf",
               str(inst.dir / "Corefile")]
        inst.proc = spawn(cmd, inst.log, inst.pid_file, cwd=inst.dir)

    def apply_fault(self, inst: Instance, fault: str) -> None:
        previous, inst.fault = inst.fault, fault
        if fault == "oom":
            # The kernel's OOM killer sends SIGKILL: a real death; kubelet reports it OOMKilled, exit 137.
            inst.last_reason = "OOMKilled"
            if inst.proc is not None:
                os.killpg(inst.proc.pid, signal.SIGKILL)
            return
        if fault == "loop":
            # The pod's resolv.conf names CoreDNS itself: `forward . /etc/resolv.conf` loops and the loop
            # plugin makes CoreDNS exit (coredns.io/plugins/loop#troubleshooting); kubelet restarts it.
            net.write_resolv_conf(inst.netns, "nameserver 127.0.0.1\n")
            stop_proc(inst.proc, inst.pid_file, grace_s=0.0)
            inst.proc = None
            inst.next_start = 0.0
            return
        if previous == "loop":
            net.write_resolv_conf(inst.netns)
        if fault in ("dead", "crashloop"):
            # A crash, not a graceful stop: no lameduck period.
            stop_proc(inst.proc, inst.pid_file, grace_s=0.0)
            inst.proc = None
        if fault == "dead":
            net.set_pod_link(inst.uid, self.nodes[inst.node].netns, up=False)
        elif fault == "crashloop":
            inst.restarts += 1
            self.patch_crashloop(inst, exit_code=1)
        if not fault:
            if previous == "dead":
                net.set_pod_link(inst.uid, self.nodes[inst.node].netns, up=True)
            inst.next_start = 0.0

    def _container_status(self, inst: Instance, state: JSON, ready: bool, last: JSON | None) -> JSON:
        cs: JSON = {"name": "coredns", "image": "mcr.microsoft.com/oss/v2/kubernetes/coredns:v1.12.1-1",
                    "imageID": "", "containerID": f"containerd://{inst.uid.replace('-', '')}{inst.restarts:04d}",
                    "ready": ready, "started": ready, "restartCount": inst.restarts, "state": state}
        if last is not None:
            cs["lastState"] = last
        return cs

    def _conditions(self, ready: bool) -> list[JSON]:
        stamp = now_rfc3339()
        value = "True" if ready else "False"
        conds: list[JSON] = [{"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                             {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp}]
        for kind in ("Ready", "ContainersReady"):
            cond: JSON = {"type": kind, "status": value, "lastTransitionTime": stamp}
            if not ready:
                cond.update(reason="ContainersNotReady", message="containers with unready status: [coredns]")
            conds.append(cond)
        return conds

    def patch_crashloop(self, inst: Instance, exit_code: int, reason: str = "Error") -> None:
        stamp = now_rfc3339()
        waiting = {"waiting": {"reason": "CrashLoopBackOff",
                               "message": f"back-off restarting failed container coredns in pod {inst.name}"}}
        last = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": stamp, "finishedAt": stamp}}
        inst.reported_reason = reason
        inst.finished_at = stamp
        self._patch_status(inst.namespace, inst.name, {
            "conditions": self._conditions(False),
            "containerStatuses": [self._container_status(inst, waiting, False, last)],
        })
        inst.status_ready = False
        inst.last_patch = time.monotonic()

    def patch_running(self, inst: Instance) -> None:
        last = None
        if inst.restarts:
            code = inst.last_exit if inst.last_exit is not None else 1
            last = {"terminated": {"exitCode": code, "reason": inst.reported_reason,
                                   "finishedAt": inst.finished_at or now_rfc3339()}}
        self._patch_status(inst.namespace, inst.name, {
            "conditions": self._conditions(True),
            "containerStatuses": [self._container_status(
                inst, {"running": {"startedAt": now_rfc3339()}}, True, last)],
        })
        inst.status_ready = True

    def _patch_status(self, namespace: str, name: str, status: JSON) -> None:
        try:
            self.kube.merge_patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": status})
        except ApiError as exc:
            if exc.status != 404:
                raise

    def remove_instance(self, uid: str) -> None:
        inst = self.instances.pop(uid)
        self.ephemerals.stop_pod(uid)
        # Short grace: CoreDNS's 5 s lameduck would make every teardown slow.
        stop_proc(inst.proc, inst.pid_file, grace_s=0.5)
        if inst.log is not None:
            inst.log.close()
        net.delete_pod(uid)
        if not self.stopping.is_set():
            shutil.rmtree(inst.dir, ignore_errors=True)

    # ---- Service VIP -----------------------------------------------------------------------------
    def sync_vip(self) -> None:
        slices = self.kube.get("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices",
                               labelSelector="kubernetes.io/service-name=kube-dns")["items"]
        backends = sorted({
            addr
            for s in slices for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready", True)
            for addr in ep.get("addresses", [])
        })
        if backends != self.backends:
            net.sync_kube_dns(self.vip_namespaces(), self.state.api_port, self.state.kubelet_port, backends)
            self.backends = backends

    def vip_namespaces(self) -> list[str]:
        # Pods reach the VIP through their node's rules (prerouting), as with kube-proxy.
        return [n.netns for n in self.nodes.values()]

    # ---- pods to execute -------------------------------------------------------------------------
    @staticmethod
    def is_runnable(pod: JSON) -> bool:
        if (pod["metadata"].get("annotations") or {}).get(layout.RUN_ANNOTATION) == "true":
            return True
        containers = pod["spec"].get("containers") or []
        command = containers[0].get("command") or [] if containers else []
        return bool(command) and os.path.basename(command[0]) in layout.RUNNABLE_COMMANDS

    def is_container_pod(self, pod: JSON) -> bool:
        images = [c.get("image", "") for c in pod["spec"].get("containers") or []]
        return self.images.has_all(images)

    def sync_job(self, pod: JSON) -> None:
        meta, status = pod["metadata"], pod.get("status", {})
        uid = meta["uid"]
        if uid in self.jobs or uid in self.finished:
            return
        if status.get("phase") != "Running" or not status.get("podIP"):
            return  # wait for kwok's pod-ready stage, or it would overwrite our terminated status
        if any("terminated" in (cs.get("state") or {}) for cs in status.get("containerStatuses") or []):
            self.finished.add(uid)
            return
        self.start_job(pod)

    def _env(self, pod: JSON, container: JSON) -> dict[str, str]:
        spec, status, meta = pod["spec"], pod.get("status", {}), pod["metadata"]
        fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "metadata.uid": meta["uid"], "spec.nodeName": spec.get("nodeName", ""),
                  "spec.serviceAccountName": spec.get("serviceAccountName", ""),
                  "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", "")}
        env = {"PATH": f"{self.venv_bin}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
               "HOME": "/root", "LANG": "C.UTF-8",
               "HOSTNAME": spec["nodeName"] if spec.get("hostNetwork") else meta["name"],
               "KUBERNETES_SERVICE_HOST": layout.GATEWAY_IP,
               "KUBERNETES_SERVICE_PORT": str(layout.API_GATEWAY_PORT)}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif (ref := (item.get("valueFrom") or {}).get("fieldRef")) and ref.get("fieldPath") in fields:
                env[item["name"]] = fields[ref["fieldPath"]]
        return env

    def start_job(self, pod: JSON) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
        uid = meta["uid"]
        job_dir = self.state.pods / f"{meta['namespace']}_{meta['name']}_{uid[:8]}"
        job_dir.mkdir(parents=True, exist_ok=True)
        deadline = float(spec.get("activeDeadlineSeconds") or RUN_TIMEOUT_S)
        job = Job(uid=uid, namespace=meta["namespace"], name=meta["name"], dir=job_dir,
                  deadline=time.monotonic() + deadline, started_at=now_rfc3339())
        self.jobs[uid] = job
        container_mode = self.is_container_pod(pod)
        if spec.get("hostNetwork"):
            job.netns = self.nodes[spec["nodeName"]].netns
        else:
            policy = spec.get("dnsPolicy") or "ClusterFirst"
            resolv = net.cluster_first_resolv_conf(meta["namespace"]) if policy == "ClusterFirst" else None
            job.netns = net.add_pod(uid, status["podIP"], self.nodes[spec["nodeName"]].netns, resolv)
        logs = {c["name"]: job_dir / f"{c['name']}.log" for c in spec["containers"]}
        self.ensure_logs_cr(job.namespace, job.name, uid, logs)
        if container_mode:
            self.start_containers(pod, job, logs)
            return
        for c in spec["containers"]:
            argv = list(c.get("command") or []) + list(c.get("args") or [])
            log = CriLog(logs[c["name"]])
            job.logs[c["name"]] = log
            if not argv:
                argv = ["/bin/false"]  # an image entrypoint cannot be known here
            podexec = [self.state.python, "-m", "testbed.podexec",
                       "--termination-log", str(job_dir / f"{c['name']}.termination-log"),
                       "--message-path", c.get("terminationMessagePath") or "/dev/termination-log"]
            if c.get("workingDir"):
                podexec += ["--workdir", c["workingDir"]]
            podexec += [f"--bind={b}" for b in nodefs.binds(pod, c, self.state.run)]  # hostPath volumes
            # PID 1 of a PID namespace of its own, as in a container (exec'd processes end with it).
            cmd = ["ip", "netns", "exec", job.netns, *containerexec.in_container([*podexec, "--", *argv])]
            job.containers[c["name"]] = spawn(cmd, log, self.state.pids / f"job-{uid[:8]}-{c['name']}.pid",
                                              env=self._env(pod, c))
            containerexec.register(self.state.run, uid, c["name"], netns=job.netns,
                                   leader=job.containers[c["name"]].pid)

    # ---- container mode (testbed/containers.py) --------------------------------------------------
    def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = "configmaps" if kind == "configmap" else "secrets"
        obj = self.kube.get_or_none(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        if obj is None:
            return None
        if kind == "secret":
            data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
            return {**data, **(obj.get("stringData") or {})}
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}

    def _token(self, job: Job, token: containers.TokenFile) -> str:
        """A TokenRequest bound to the pod, as kubelet makes for a projected serviceAccountToken."""
        spec: JSON = {"expirationSeconds": token.expiration_s,
                      "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": job.name, "uid": job.uid}}
        if token.audience:
            spec["audiences"] = [token.audience]
        resp = self.kube.create(f"/api/v1/namespaces/{job.namespace}/serviceaccounts/{job.sa}/token",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        job.token_at = time.monotonic()
        return str(resp["status"]["token"])

    def start_containers(self, pod: JSON, job: Job, logs: dict[str, Path]) -> None:
        """Each container of the pod as `podman run` of its image (see testbed/containers.py)."""
        job.mode = "container"
        spec, meta = pod["spec"], pod["metadata"]
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        resolv = net.NETNS_ETC / job.netns / "resolv.conf"
        if spec.get("hostNetwork") and policy == "ClusterFirstWithHostNet":
            resolv = job.dir / "resolv.conf"
            resolv.write_text(net.cluster_first_resolv_conf(meta["namespace"]))
        job.sa = spec.get("serviceAccountName") or "default"
        job.tokens = containers.token_files(pod, job.dir)
        volumes = containers.prepare_volumes(pod, job.dir, self._lookup, lambda t: self._token(job, t))
        deadline = int(spec.get("activeDeadlineSeconds") or RUN_TIMEOUT_S)
        run = containers.PodRun(uid=job.uid, namespace=meta["namespace"], name=meta["name"],
                                node=spec["nodeName"], netns=job.netns, resolv_conf=resolv, files=job.dir,
                                deadline_s=deadline, volumes=volumes)
        argvs = {}
        for c in spec["containers"]:
            config = self.images.config(c["image"]) or containers.ImageConfig()
            env = containers.container_env(pod, c, self._lookup)
            argvs[c["name"]] = containers.run_argv(pod, c, run, env, config)
            (job.dir / f"{c['name']}.termination-log").touch()
        for c in spec["containers"]:
            log = CriLog(logs[c["name"]])
            job.logs[c["name"]] = log
            job.containers[c["name"]] = spawn(argvs[c["name"]], log,
                                              self.state.pids / f"job-{job.uid[:8]}-{c['name']}.pid")
            containerexec.register(self.state.run, job.uid, c["name"], netns=job.netns,
                                   podman=containers.container_name(job.uid, c["name"]))

    def poll_job(self, job: Job) -> None:
        if job.done:
            return
        if job.tokens and time.monotonic() - job.token_at > 0.8 * min(t.expiration_s for t in job.tokens):
            # kubelet refreshes projected tokens at 80 % of their life
            containers.refresh_tokens(job.tokens, lambda t: self._token(job, t))
        timed_out = time.monotonic() > job.deadline
        if timed_out:
            for name, proc in job.containers.items():
                stop_proc(proc, self.state.pids / f"job-{job.uid[:8]}-{name}.pid")
        if any(p.poll() is None for p in job.containers.values()):
            return
        job.done = True
        finished = now_rfc3339()
        statuses: list[JSON] = []
        all_ok = True
        pod = self.kube.get_or_none(f"/api/v1/namespaces/{job.namespace}/pods/{job.name}")
        images = {c["name"]: c.get("image", "") for c in (pod or {}).get("spec", {}).get("containers", [])}
        policies = {c["name"]: c.get("terminationMessagePolicy", "File")
                    for c in (pod or {}).get("spec", {}).get("containers", [])}
        if job.mode == "container":
            containers.remove(job.uid, list(job.containers))
        for name, proc in job.containers.items():
            (self.state.pids / f"job-{job.uid[:8]}-{name}.pid").unlink(missing_ok=True)
            job.logs[name].close()
            code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
            all_ok = all_ok and code == 0
            try:
                message = (job.dir / f"{name}.termination-log").read_bytes()[:MAX_MESSAGE_BYTES].decode(
                    errors="replace")
            except OSError:
                message = ""
            if not message and code != 0 and policies.get(name) == "FallbackToLogsOnError":
                message = job.logs[name].tail_text()
            reason = "DeadlineExceeded" if timed_out else ("Completed" if code == 0 else "Error")
            term: JSON = {"exitCode": code, "reason": reason, "startedAt": job.started_at,
                          "finishedAt": finished,
                          "containerID": f"containerd://{job.uid.replace('-', '')}{name}"}
            if message:
                term["message"] = message
            statuses.append({"name": name, "image": images.get(name, ""), "imageID": "",
                             "containerID": term["containerID"], "ready": False, "started": False,
                             "restartCount": 0, "state": {"terminated": term}})
        stamp = now_rfc3339()
        conditions = [{"type": t, "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp}
                      for t in ("Ready", "ContainersReady")]
        patch: JSON = {"phase": "Succeeded" if all_ok else "Failed", "conditions": conditions,
                       "containerStatuses": statuses}
        if timed_out:
            patch.update(reason="DeadlineExceeded", message="Pod was active on the node longer than the "
                                                           "specified deadline")
        self._patch_status(job.namespace, job.name, patch)
        self.ephemerals.stop_pod(job.uid)
        if job.netns.startswith(layout.PREFIX + "pod-"):
            net.delete_pod(job.uid)
        self.finished.add(job.uid)

    def fail_job(self, pod: JSON, exc: Exception) -> None:
        """A pod the runner could not start: report it as a container that failed to start."""
        uid = pod["metadata"]["uid"]
        if uid in self.finished or not (self.is_runnable(pod) or self.is_container_pod(pod)):
            return
        job = self.jobs.pop(uid, None)
        if job is not None:
            for name, proc in job.containers.items():
                stop_proc(proc, self.state.pids / f"job-{uid[:8]}-{name}.pid")
            if job.mode == "container":
                containers.remove(uid, [c["name"] for c in pod["spec"].get("containers") or []])
            if job.netns.startswith(layout.PREFIX + "pod-"):
                net.delete_pod(uid)
        self.finished.add(uid)
        stamp = now_rfc3339()
        statuses = [{"name": c["name"], "image": c.get("image", ""), "ready": False, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 128, "reason": "StartError", "startedAt": stamp,
                                              "finishedAt": stamp, "message": f"testbed runner: {exc}"[:1024]}}}
                    for c in pod["spec"].get("containers") or []]
        self._patch_status(pod["metadata"]["namespace"], pod["metadata"]["name"],
                           {"phase": "Failed", "containerStatuses": statuses})

    def remove_job(self, uid: str) -> None:
        job = self.jobs.pop(uid)
        self.ephemerals.stop_pod(uid)
        for name, proc in job.containers.items():
            stop_proc(proc, self.state.pids / f"job-{uid[:8]}-{name}.pid")
        if job.mode == "container":
            containers.remove(uid, list(job.containers))
        for log in job.logs.values():
            log.close(timeout=1)
        if job.netns.startswith(layout.PREFIX + "pod-"):
            net.delete_pod(uid)
        # The pod is gone, and its logs with it (as on a node): keeps a long-running testbed's disk bounded.
        shutil.rmtree(job.dir, ignore_errors=True)

    # ---- exec and ephemeral containers (testbed/containerexec.py) ----------------------------------
    def sandbox(self, uid: str) -> tuple[str, Path] | None:
        """A really-run pod's network namespace and directory (None: the runner does not run it)."""
        if uid in self.instances:
            return self.instances[uid].netns, self.instances[uid].dir
        job = self.jobs.get(uid)
        if job is not None and not job.done:
            return job.netns, job.dir
        return None

    # ---- kwok logs -------------------------------------------------------------------------------
    def ensure_logs_cr(self, namespace: str, name: str, uid: str, files: dict[str, Path],
                       previous: dict[str, Path] | None = None) -> None:
        """Point kwok's kubelet endpoint at the pod's log files; owned by the pod so it goes with it."""
        body: JSON = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
            "metadata": {"name": name, "namespace": namespace,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]},
            "spec": {"logs": [{"containers": [c], "logsFile": str(p), "follow": True,
                               **({"previousLogsFile": str(previous[c])} if previous and c in previous else {})}
                              for c, p in files.items()]},
        }
        for p in (previous or {}).values():
            p.touch()
        for p in files.values():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
        self.kube.apply(f"{LOGS_API}/namespaces/{namespace}/logs", name, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.runner")
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    state = State.load(args.run_dir)
    if state is None:
        print(f"runner: no testbed state in {args.run_dir}", file=sys.stderr)
        return 2
    runner = Runner(state)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        runner.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    left = containers.remove_all()  # a runner that was killed leaves its containers behind
    if left:
        print(f"runner: removed {left} container(s) a previous runner left", flush=True)
    print("runner: started", flush=True)
    runner.run()
    print("runner: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
