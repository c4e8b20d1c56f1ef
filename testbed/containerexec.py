"""What the testbed's kubelet does beyond running a pod's containers: exec into them, and ephemeral
containers (`kubectl debug`).

The runner (testbed/runner.py) calls this module; kwok serves the kubelet API and hands exec requests
here. Three parts:

* **Containers as process trees.** A really-run container's command starts in a PID namespace of its
  own (``unshare --pid --fork --mount-proc``) inside its pod's network namespace, so, as in a real
  container, it is PID 1, sees only its own processes, and when it exits the kernel ends everything
  started in it (exec'd processes included). :func:`in_container` wraps an argv that way and
  :func:`register` records where the container lives (``run/exec/<pod uid>/<container>.json``).
* **Exec.** kwok runs an exec request's command on its own host, resolving it on its PATH. kwok's PATH
  starts with a directory of shims (:func:`write_shims`: ``aksdns``, ``tcpdump``, ...), and an ``Exec``
  object per pod (:func:`exec_object`) gives the command the container's identity in its environment;
  the shim (:func:`shim_main`) then enters that container (``nsenter`` into its PID, mount and network
  namespaces, or ``ip netns exec`` for a process that has none of its own) and executes the real
  program there. A container that is not running answers like a kubelet: an error, exit 126.
* **Ephemeral containers.** :class:`Ephemerals` starts each ephemeral container added to a pod the
  runner really runs (a CoreDNS pod, a job pod) inside that pod's network namespace, with its own CRI
  log (served by kwok for ``kubectl logs -c``), its status in ``ephemeralContainerStatuses`` (running,
  then terminated with exit code, reason and termination message), and exec like any container. It is
  stopped with the pod. Refusing ephemeral containers "as a policy would" is a testbed knob
  (:func:`refuse_policy`): a ValidatingAdmissionPolicy denying updates of pods/ephemeralcontainers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
EXEC_API = "/apis/kwok.x-k8s.io/v1alpha1"
TARGET_ENV = "TESTBED_EXEC_TARGET"  # "<pod uid>/<container>" in the environment kwok gives an exec
SHIMMED = ("aksdns", "tcpdump")  # the programs aksdns execs in containers
REFUSE_POLICY = "testbed-refuse-ephemeral-containers"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# kwok's Exec kind as a CRD, written here (not copied from kwok) with only what kwok reads.
EXEC_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "execs.kwok.x-k8s.io"},
    "spec": {
        "group": "kwok.x-k8s.io", "scope": "Namespaced",
        "names": {"kind": "Exec", "listKind": "ExecList", "plural": "execs", "singular": "exec"},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


# ---- containers as process trees ---------------------------------------------------------------------


def in_container(argv: list[str]) -> list[str]:
    """``argv`` as the PID 1 of a fresh PID namespace (with its own /proc), killed with its parent."""
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--", *argv]


def registry_dir(run_dir: Path) -> Path:
    return run_dir / "exec"


def _entry_path(run_dir: Path, uid: str, container: str) -> Path:
    return registry_dir(run_dir) / uid / f"{container}.json"


def register(run_dir: Path, uid: str, container: str, *, netns: str, leader: int | None = None,
             podman: str = "") -> None:
    """Where exec finds a container: the host pid of the ``unshare`` leading it (its child is the
    container's PID 1), or only a network namespace, or a podman container name."""
    path = _entry_path(run_dir, uid, container)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"netns": netns, "leader": leader, "podman": podman}))
    tmp.replace(path)


def unregister(run_dir: Path, uid: str, container: str | None = None) -> None:
    if container is None:
        shutil.rmtree(registry_dir(run_dir) / uid, ignore_errors=True)
    else:
        _entry_path(run_dir, uid, container).unlink(missing_ok=True)


def pid_one(leader: int) -> int | None:
    """The container's PID 1 as the host sees it: the one child of its ``unshare``."""
    try:
        children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


# ---- exec -----------------------------------------------------------------------------------------------


def write_shims(run_dir: Path, python: str) -> Path:
    """The directory kwok's PATH starts with: one shim per program aksdns execs in containers."""
    shims = run_dir / "exec-bin"
    shims.mkdir(parents=True, exist_ok=True)
    for name in SHIMMED:
        path = shims / name
        path.write_text(f"#!/bin/sh\nTESTBED_RUN_DIR='{run_dir}' TESTBED_EXEC_SHIMS='{shims}' "
                        f"exec {python} -m testbed.containerexec {name} \"$@\"\n")
        path.chmod(0o755)
    return shims


def exec_object(namespace: str, name: str, uid: str, containers: list[str]) -> JSON:
    """kwok's Exec for one pod: each container's exec carries its identity to the shim."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
        "metadata": {"name": name, "namespace": namespace,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]},
        "spec": {"execs": [{"containers": [c], "local": {"workDir": "/",
                                                           "envs": [{"name": TARGET_ENV, "value": f"{uid}/{c}"}]}}
                           for c in containers]},
    }


def _real_path(shims: Path) -> str:
    """PATH without the shim directory: the Python environment's bin first (as the runner gives pods)."""
    venv_bin = str(Path(sys.executable).parent)
    parts = [p for p in os.environ.get("PATH", SYSTEM_PATH).split(os.pathsep) if p and Path(p) != shims]
    return os.pathsep.join([venv_bin, *[p for p in parts if p != venv_bin]])


def shim_argv(entry: JSON, command: list[str]) -> list[str] | None:
    """How to run ``command`` inside the container ``entry`` describes (None: it is not running)."""
    if entry.get("podman"):
        return ["podman", "exec", "-i", str(entry["podman"]), *command]
    leader = entry.get("leader")
    if leader:
        pid = pid_one(int(leader))
        if pid is None:
            return None
        return ["nsenter", f"--target={pid}", "--pid", "--mount", "--net", "--", *command]
    netns = str(entry.get("netns") or "")
    if not netns or not Path(f"/run/netns/{netns}").exists():
        return None
    return ["ip", "netns", "exec", netns, *command]


def shim_main(argv: list[str]) -> int:
    """Entry of the shims: ``python -m testbed.containerexec PROGRAM ARGS...`` under kwok's exec."""
    program, args = argv[0], argv[1:]
    target = os.environ.get(TARGET_ENV, "")
    shims = Path(os.environ.get("TESTBED_EXEC_SHIMS", ""))
    run_dir = Path(os.environ.get("TESTBED_RUN_DIR", ""))
    uid, _, container = target.partition("/")
    if not uid or not container or not run_dir.is_dir():
        print(f"exec {program}: no container for this exec (kwok ran it without a target)", file=sys.stderr)
        return 126
    try:
        entry = json.loads(_entry_path(run_dir, uid, container).read_text())
    except (OSError, ValueError):
        entry = None
    argv_in = shim_argv(entry, [program, *args]) if entry else None
    if argv_in is None:
        print(f"container {container} is not running", file=sys.stderr)
        return 126
    env = {k: v for k, v in os.environ.items() if k != TARGET_ENV}
    env["PATH"] = _real_path(shims)
    os.execvpe(argv_in[0], argv_in, env)  # noqa: S606 - becomes the exec'd program; stdio stay kwok's
    return 127  # not reached


# ---- ephemeral containers -------------------------------------------------------------------------------


@dataclass
class Ephemeral:
    """One running ephemeral container."""

    uid: str
    name: str
    proc: subprocess.Popen[bytes]
    log: Any  # runner.CriLog
    pid_file: Path
    termination: Path
    started_at: str
    deadline: float
    podman: bool = False


@dataclass
class Ephemerals:
    """Starts, watches and stops the ephemeral containers of the pods the runner really runs."""

    run_dir: Path
    python: str
    kube: Any  # testbed.kube.Kube
    spawn: Callable[..., subprocess.Popen[bytes]]
    stop: Callable[..., None]
    new_log: Callable[[Path], Any]
    env_of: Callable[[JSON, JSON], dict[str, str]]
    now: Callable[[], str]
    max_run_s: float = 3600.0
    # Container mode (testbed/containers.py): an ephemeral container whose image container storage holds
    # runs from that image with podman, with its securityContext, in the pod's network namespace.
    image_config: Callable[[str], Any] | None = None  # image -> its configuration, or None when not here
    lookup: Callable[[str, str, str], Any] | None = None  # ConfigMap/Secret data for env (runner._lookup)
    running: dict[tuple[str, str], Ephemeral] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    exec_ready: dict[str, list[str]] = field(default_factory=dict)  # pods whose Exec object is current

    def tick(self, pods: list[JSON], sandbox: Callable[[str], tuple[str, Path] | None]) -> None:
        """Exec objects for really-run pods; start new ephemeral containers; report ended ones."""
        live = {p["metadata"]["uid"]: p for p in pods}
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            box = sandbox(meta["uid"])
            names = [c["name"] for c in pod["spec"].get("containers") or []]
            names += [c["name"] for c in pod["spec"].get("ephemeralContainers") or []]
            if box is not None and self.exec_ready.get(meta["uid"]) != names:
                try:
                    ensure_exec(self.kube, pod, names)
                    self.exec_ready[meta["uid"]] = names
                except Exception as exc:  # kwok's exec is a convenience: retried next tick
                    print(f"runner: exec object for {meta['name']}: {exc}", file=sys.stderr, flush=True)
            if pod["spec"].get("ephemeralContainers"):
                self.sync(pod, box)
        self.poll(live)
        for uid in [u for u in self.exec_ready if u not in live]:
            del self.exec_ready[uid]

    def sync(self, pod: JSON, box: tuple[str, Path] | None) -> None:
        """Start the pod's ephemeral containers not started yet, in the pod's sandbox."""
        meta = pod["metadata"]
        uid = meta["uid"]
        running = (pod.get("status") or {}).get("phase") == "Running"
        for spec in pod["spec"].get("ephemeralContainers") or []:
            key = (uid, spec["name"])
            if key in self.seen or (box is None and not running):
                continue  # started already, or the pod's sandbox is not up yet
            self.seen.add(key)
            if box is None:
                self._patch(pod, spec["name"], {"terminated": {
                    "exitCode": 128, "reason": "StartError", "startedAt": self.now(), "finishedAt": self.now(),
                    "message": "testbed: this pod has no sandbox (its containers are not really run)"}})
                continue
            self._start(pod, spec, box[0], box[1])

    def _start(self, pod: JSON, spec: JSON, netns: str, pod_dir: Path) -> None:
        meta = pod["metadata"]
        uid, name = meta["uid"], spec["name"]
        pod_dir.mkdir(parents=True, exist_ok=True)
        log_path = pod_dir / f"{name}.log"
        log = self.new_log(log_path)
        self._add_logs(meta["namespace"], meta["name"], name, log_path)
        termination = pod_dir / f"{name}.termination-log"
        termination.touch()
        pid_file = self.run_dir / "pids" / f"ephemeral-{uid[:8]}-{name}.pid"
        image = self.image_config(spec.get("image", "")) if self.image_config is not None else None
        if image is not None:
            from testbed import containers, net

            run = containers.PodRun(uid=uid, namespace=meta["namespace"], name=meta["name"],
                                    node=pod["spec"].get("nodeName", ""), netns=netns,
                                    resolv_conf=net.NETNS_ETC / netns / "resolv.conf", files=pod_dir,
                                    deadline_s=int(self.max_run_s))
            env = containers.container_env(pod, spec, self.lookup or (lambda *_a: None))
            proc = self.spawn(containers.run_argv(pod, spec, run, env, image), log, pid_file)
            register(self.run_dir, uid, name, netns=netns, podman=containers.container_name(uid, name))
        else:
            argv = list(spec.get("command") or []) + list(spec.get("args") or []) or ["/bin/false"]
            cmd = ["ip", "netns", "exec", netns, *in_container([
                self.python, "-m", "testbed.podexec", "--termination-log", str(termination),
                "--message-path", spec.get("terminationMessagePath") or "/dev/termination-log", "--", *argv])]
            proc = self.spawn(cmd, log, pid_file, env=self.env_of(pod, spec))
            register(self.run_dir, uid, name, netns=netns, leader=proc.pid)
        started = self.now()
        self.running[(uid, name)] = Ephemeral(uid, name, proc, log, pid_file, termination, started,
                                              time.monotonic() + self.max_run_s, podman=image is not None)
        self._patch(pod, name, {"running": {"startedAt": started}})

    def poll(self, pods: dict[str, JSON]) -> None:
        """Report ephemeral containers that ended; end those of pods that are gone."""
        for key, eph in list(self.running.items()):
            pod = pods.get(eph.uid)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                self._end(key, report=None)
                continue
            if time.monotonic() > eph.deadline:
                self.stop(eph.proc, eph.pid_file, grace_s=2.0)
            if eph.proc.poll() is not None:
                self._end(key, report=pod)

    def stop_pod(self, uid: str) -> None:
        """The pod is going away: its ephemeral containers end with it (before its netns goes)."""
        for key in [k for k in self.running if k[0] == uid]:
            self._end(key, report=None)
        self.seen = {k for k in self.seen if k[0] != uid}
        unregister(self.run_dir, uid)

    def stop_all(self) -> None:
        for key in list(self.running):
            self._end(key, report=None)

    def _end(self, key: tuple[str, str], report: JSON | None) -> None:
        eph = self.running.pop(key)
        self.stop(eph.proc, eph.pid_file, grace_s=2.0)
        if eph.podman:
            from testbed import containers

            containers.remove(eph.uid, [eph.name])
        eph.log.close(timeout=2)
        unregister(self.run_dir, eph.uid, eph.name)
        if report is None:
            return
        code = eph.proc.returncode if eph.proc.returncode is not None else 137
        code = code if code >= 0 else 128 - code
        try:
            message = eph.termination.read_bytes()[:4096].decode(errors="replace")
        except OSError:
            message = ""
        term: JSON = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": eph.started_at, "finishedAt": self.now()}
        if message:
            term["message"] = message
        self._patch(report, eph.name, {"terminated": term})

    # ---- API ------------------------------------------------------------------------------------------
    def _patch(self, pod: JSON, name: str, state: JSON) -> None:
        """Set one ephemeral container's status (the list is replaced whole, as a merge patch does)."""
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        current = self.kube.get_or_none(path)
        if current is None:
            return
        statuses = [s for s in (current.get("status") or {}).get("ephemeralContainerStatuses") or []
                    if s.get("name") != name]
        image = next((c.get("image", "") for c in current["spec"].get("ephemeralContainers") or []
                      if c["name"] == name), "")
        statuses.append({"name": name, "image": image, "imageID": "", "ready": False, "restartCount": 0,
                         "containerID": f"containerd://{meta['uid'].replace('-', '')}{name}"[:80],
                         "state": state})
        try:
            self.kube.merge_patch(f"{path}/status", {"status": {"ephemeralContainerStatuses": statuses}})
        except Exception as exc:  # the pod may be going away; the next poll sees it
            print(f"runner: ephemeral status of {meta['name']}/{name}: {exc}", file=sys.stderr, flush=True)

    def _add_logs(self, namespace: str, pod: str, container: str, path: Path) -> None:
        """Add the container to the pod's kwok Logs object (made by the runner) so `logs -c` serves it."""
        api = f"{EXEC_API}/namespaces/{namespace}/logs/{pod}"
        obj = self.kube.get_or_none(api)
        if obj is None:
            return
        entries = [e for e in (obj.get("spec") or {}).get("logs") or [] if container not in (e.get("containers") or [])]
        entries.append({"containers": [container], "logsFile": str(path), "follow": True})
        path.touch()
        self.kube.merge_patch(api, {"spec": {"logs": entries}})


def ensure_exec(kube: Any, pod: JSON, containers: list[str]) -> None:
    """Point kwok's exec for these containers of the pod at the shim (an Exec object owned by the pod)."""
    meta = pod["metadata"]
    api = f"{EXEC_API}/namespaces/{meta['namespace']}/execs"
    existing = kube.get_or_none(f"{api}/{meta['name']}")
    names = list(containers)
    if existing is not None:
        names = sorted({c for e in existing["spec"].get("execs") or [] for c in e.get("containers") or []}
                       | set(containers))
    kube.apply(api, meta["name"], exec_object(meta["namespace"], meta["name"], meta["uid"], names))


# ---- the knob ---------------------------------------------------------------------------------------------


def refuse_policy() -> list[JSON]:
    """A ValidatingAdmissionPolicy (and its binding) that denies adding ephemeral containers."""
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": REFUSE_POLICY},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["UPDATE"],
                                                          "resources": ["pods/ephemeralcontainers"]}]},
                  "validations": [{"expression": "false",
                                   "message": "ephemeral containers are not allowed in this cluster"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": REFUSE_POLICY},
         "spec": {"policyName": REFUSE_POLICY, "validationActions": ["Deny"]}},
    ]


if __name__ == "__main__":
    sys.exit(shim_main(sys.argv[1:]))
