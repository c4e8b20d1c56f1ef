"""Container mode of the testbed's pod runner: a pod's containers run from the real image, with podman.

A pod qualifies when every one of its containers names an image that this machine's container storage
holds (the image `scripts/image` builds, say `localhost/aksdns:0.1.0`): a kubelet runs what it has.
Everything else keeps the host-process runner (testbed/runner.py). For a qualifying pod each container
becomes one `podman run` (attached, so its output feeds the pod's CRI log and its exit code the pod
status), with what a kubelet would give it:

* the pod's network namespace (its own with the pod IP, or the node's for hostNetwork) and the
  resolv.conf its dnsPolicy gives (the node's, or ClusterFirst's pointing at kube-dns);
* command and args (replacing the image's ENTRYPOINT and CMD as Kubernetes does), env with envFrom,
  configMapKeyRef, secretKeyRef, fieldRef and $(VAR) expansion, KUBERNETES_SERVICE_HOST/PORT;
* the securityContext: runAsUser/runAsGroup/fsGroup/supplementalGroups, runAsNonRoot (checked as the
  kubelet checks it), capabilities on top of containerd's default set, allowPrivilegeEscalation
  (no_new_privs), readOnlyRootFilesystem, privileged. One difference is undone: podman raises the
  capabilities it adds for a non-root user into the ambient set, which Kubernetes runtimes never do (a
  non-root container process there holds no capability unless a file capability grants it). Such a
  container starts through the image's `setpriv`, which clears the ambient and inheritable sets before it
  executes the container's own command, so the testbed fails where a cluster would;
* volumes: emptyDir, configMap, secret and projected (the ServiceAccount admission's kube-api-access
  volume: a TokenRequest token bound to the pod, refreshed at 80 % of its life as kubelet does, the
  cluster CA and the namespace); the termination-message file at terminationMessagePath; the memory
  limit;
* a deadline (activeDeadlineSeconds, or the runner's default) enforced by conmon as well.

Every container is named `aksdns-tb-<pod uid>-<container>` and labelled, so a runner that died is
cleaned up by the next one (`remove_all`). The builder here is pure (pod JSON in, argv out); the
functions that call podman or the API server are at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import layout, nodefs

JSON = dict[str, Any]
PODMAN = "podman"
RUNTIME = "/usr/sbin/runc"  # crun fails on this machine (cgroups in hybrid mode)
ULIMITS = ("nofile=4096:4096", "nproc=4096:4096")  # below the host's: containers may not raise limits
MANAGED_LABEL = "testbed.aksdns.dev/managed"
POD_UID_LABEL = "testbed.aksdns.dev/pod-uid"
NAME_PREFIX = "aksdns-tb-"
TOKEN_SECONDS = 3607  # the ServiceAccount admission's default for kube-api-access tokens
# containerd's default capability set (what a Kubernetes container has before add/drop).
DEFAULT_CAPS = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class ContainerConfigError(RuntimeError):
    """What kubelet reports as CreateContainerConfigError: the pod cannot start as specified."""


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's configuration a runtime uses to start it."""

    user: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


# ---- pure: pod JSON -> podman argv ---------------------------------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, the rest stays."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def container_name(uid: str, container: str) -> str:
    return f"{NAME_PREFIX}{uid[:8]}-{container}"


def memory_bytes(quantity: str) -> int | None:
    m = _QUANTITY.match(str(quantity))
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def capabilities(security: JSON, privileged: bool) -> list[str]:
    """The container's capability set: containerd's defaults, minus drop, plus add (as podman flags)."""
    if privileged:
        return ["--privileged"]
    caps = security.get("capabilities") or {}
    drop = {c.upper().removeprefix("CAP_") for c in caps.get("drop") or []}
    add = {c.upper().removeprefix("CAP_") for c in caps.get("add") or []}
    have = set() if "ALL" in drop else set(DEFAULT_CAPS) - drop
    have |= add
    return ["--cap-drop=all", *[f"--cap-add={c}" for c in sorted(have)]]


def user_args(pod_sc: JSON, c_sc: JSON, image_user: str) -> list[str]:
    """--user and --group-add from the securityContexts; runAsNonRoot checked like kubelet does."""
    uid = c_sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = c_sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    non_root = c_sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
    if non_root:
        if uid is None:
            name = image_user.split(":", 1)[0]
            if not name or name == "root":
                raise ContainerConfigError("container has runAsNonRoot and image will run as root")
            if not name.isdigit():
                raise ContainerConfigError(f"container has runAsNonRoot and image has non-numeric user "
                                           f"({name}), cannot verify user is non-root")
            if int(name) == 0:
                raise ContainerConfigError("container has runAsNonRoot and image will run as root")
        elif int(uid) == 0:
            raise ContainerConfigError("container's runAsUser breaks non-root policy")
    args: list[str] = []
    if uid is not None:
        args.append(f"--user={uid}:{gid}" if gid is not None else f"--user={uid}")
    elif gid is not None:
        args.append(f"--user={image_user.split(':', 1)[0] or 0}:{gid}")
    groups = [*(pod_sc.get("supplementalGroups") or [])]
    if pod_sc.get("fsGroup") is not None:
        groups.append(pod_sc["fsGroup"])
    args += [f"--group-add={g}" for g in dict.fromkeys(groups)]
    return args


def effective_uid(pod: JSON, container: JSON, image_user: str) -> int:
    c_sc = container.get("securityContext") or {}
    uid = c_sc.get("runAsUser", (pod["spec"].get("securityContext") or {}).get("runAsUser"))
    if uid is not None:
        return int(uid)
    name = image_user.split(":", 1)[0]
    return int(name) if name.isdigit() else 0  # a named user: root unless proven otherwise


def added_capabilities(container: JSON) -> list[str]:
    caps = (container.get("securityContext") or {}).get("capabilities") or {}
    return [c.upper().removeprefix("CAP_") for c in caps.get("add") or []]


def security_args(pod: JSON, container: JSON, image_user: str) -> list[str]:
    pod_sc = pod["spec"].get("securityContext") or {}
    c_sc = container.get("securityContext") or {}
    privileged = bool(c_sc.get("privileged", False))
    args = user_args(pod_sc, c_sc, image_user) + capabilities(c_sc, privileged)
    if c_sc.get("allowPrivilegeEscalation") is False:
        args.append("--security-opt=no-new-privileges")
    if c_sc.get("readOnlyRootFilesystem"):
        # Kubernetes mounts nothing writable by itself; podman would add tmpfs on /tmp, /run, /var/tmp.
        args += ["--read-only", "--read-only-tmpfs=false"]
    return args


@dataclass(frozen=True)
class PodRun:
    """What the runner prepared for a pod: where its files live and which namespace it joins."""

    uid: str
    namespace: str
    name: str
    node: str
    netns: str
    resolv_conf: Path
    files: Path                      # the pod's directory on the host (volumes, token, messages)
    deadline_s: int
    volumes: dict[str, Path] = field(default_factory=dict)   # volume name -> host directory


def process_argv(container: JSON, env: Mapping[str, str], image: ImageConfig) -> list[str]:
    """The container's process as Kubernetes composes it: command replaces ENTRYPOINT, args replace CMD."""
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        return command + args
    return [*image.entrypoint, *(args if "args" in container else image.cmd)]


def run_argv(pod: JSON, container: JSON, run: PodRun, env: Mapping[str, str], image: ImageConfig) -> list[str]:
    """`podman run …` for one container of the pod (pure)."""
    image_user = image.user
    spec = pod["spec"]
    host_network = bool(spec.get("hostNetwork"))
    name = container["name"]
    argv = [PODMAN, "run", "--rm", f"--name={container_name(run.uid, name)}", f"--runtime={RUNTIME}",
            f"--label={MANAGED_LABEL}=true", f"--label={POD_UID_LABEL}={run.uid}",
            f"--label=io.kubernetes.pod.namespace={run.namespace}", f"--label=io.kubernetes.pod.name={run.name}",
            f"--label=io.kubernetes.container.name={name}",
            "--pull=never", "--init=false", "--sig-proxy=true", f"--timeout={run.deadline_s}",
            *[f"--ulimit={u}" for u in ULIMITS],
            f"--network=ns:/run/netns/{run.netns}",
            f"--hostname={run.node if host_network else run.name}",
            f"--volume={run.resolv_conf}:/etc/resolv.conf:ro"]
    argv += security_args(pod, container, image_user)
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if limit and memory_bytes(limit):
        argv.append(f"--memory={memory_bytes(limit)}")
    if container.get("workingDir"):
        argv.append(f"--workdir={container['workingDir']}")
    message = container.get("terminationMessagePath") or "/dev/termination-log"
    argv.append(f"--volume={run.files / (name + '.termination-log')}:{message}:rw")
    for mount in container.get("volumeMounts") or []:
        host = run.volumes.get(mount["name"])
        if host is None:
            raise ContainerConfigError(f"volume {mount['name']!r} of {name} is not defined")
        source = host / mount["subPath"] if mount.get("subPath") else host
        mode = "ro" if mount.get("readOnly") else "rw"
        argv.append(f"--volume={source}:{mount['mountPath']}:{mode}")
    for key, value in env.items():
        argv.append(f"--env={key}={value}")
    if added_capabilities(container) and effective_uid(pod, container, image_user) != 0:
        # No ambient capabilities, as under containerd or CRI-O (see the module docstring).
        argv += ["--entrypoint=/usr/bin/setpriv", container["image"], "--ambient-caps=-all", "--inh-caps=-all",
                 "--", *process_argv(container, env, image)]
        return argv
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        argv.append(f"--entrypoint={command[0]}")
    argv.append(container["image"])
    argv += command[1:] + args if command else args
    return argv


def container_env(pod: JSON, container: JSON, lookup: Callable[[str, str, str], Mapping[str, str] | None]
                  ) -> dict[str, str]:
    """The container's environment as kubelet builds it. `lookup(kind, namespace, name)` returns a
    ConfigMap's or Secret's data (decoded), or None when it does not exist."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {"KUBERNETES_SERVICE_HOST": layout.GATEWAY_IP,
                           "KUBERNETES_SERVICE_PORT": str(layout.API_GATEWAY_PORT)}
    for source in container.get("envFrom") or []:
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(key)
            if ref is None:
                continue
            data = lookup(kind, ns, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f"{kind} {ref['name']!r} not found")
            prefix = source.get("prefix", "")
            env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
            continue
        value_from = item.get("valueFrom") or {}
        if (ref := value_from.get("fieldRef")) is not None:
            env[name] = downward_field(pod, ref.get("fieldPath", ""))
            continue
        for kind, key in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
            ref = value_from.get(key)
            if ref is None:
                continue
            data = lookup(kind, ns, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    break
                what = f"{kind} {ref['name']!r}" if data is None else f"key {ref['key']!r} in {kind} {ref['name']!r}"
                raise ContainerConfigError(f"couldn't find {what}")
            env[name] = data[ref["key"]]
            break
        else:
            env.setdefault(name, "")
    return env


def downward_field(pod: JSON, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    values = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", ""),
              "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", "")}
    return str(values.get(path, ""))


@dataclass(frozen=True)
class TokenFile:
    """A projected ServiceAccount token the runner writes (and rewrites before it expires)."""

    path: Path
    expiration_s: int
    audience: str


def token_files(pod: JSON, files: Path) -> list[TokenFile]:
    out = []
    for vol in pod["spec"].get("volumes") or []:
        for source in (vol.get("projected") or {}).get("sources") or []:
            if (tok := source.get("serviceAccountToken")) is not None:
                out.append(TokenFile(files / "volumes" / vol["name"] / tok["path"],
                                     int(tok.get("expirationSeconds") or TOKEN_SECONDS), tok.get("audience", "")))
    return out


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


# ---- I/O: podman and the pod's files --------------------------------------------------------------


class ImageCache:
    """Whether container storage holds an image, and its configuration; asked once a while per reference."""

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[float, ImageConfig | None]] = {}

    def config(self, ref: str) -> ImageConfig | None:
        """The image's configuration, or None when the image is not here."""
        now = time.monotonic()
        hit = self._seen.get(ref)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        found: ImageConfig | None = None
        if ref and shutil.which(PODMAN) is not None:
            proc = subprocess.run([PODMAN, "image", "inspect", "--format", "{{json .Config}}", ref],
                                  capture_output=True, text=True, timeout=30, check=False)
            if proc.returncode == 0:
                cfg = json.loads(proc.stdout or "{}") or {}
                found = ImageConfig(user=str(cfg.get("User") or ""), entrypoint=tuple(cfg.get("Entrypoint") or ()),
                                    cmd=tuple(cfg.get("Cmd") or ()))
        self._seen[ref] = (now, found)
        return found

    def has_all(self, images: Sequence[str]) -> bool:
        return bool(images) and all(self.config(i) is not None for i in images)


def prepare_volumes(pod: JSON, files: Path, lookup: Callable[[str, str, str], Mapping[str, str] | None],
                    token: Callable[[TokenFile], str]) -> dict[str, Path]:
    """Host directories for the pod's volumes: emptyDir (world-writable, as kubelet makes it),
    configMap and secret (their keys as files), projected (tokens from `token`, configMaps, secrets,
    downward API fields)."""
    out: dict[str, Path] = {}
    tokens = {t.path: t for t in token_files(pod, files)}
    ns = pod["metadata"]["namespace"]
    for vol in pod["spec"].get("volumes") or []:
        path = files / "volumes" / vol["name"]
        path.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in vol:
            path.chmod(0o777)
        elif "configMap" in vol or "secret" in vol:
            kind, ref = ("configmap", vol["configMap"]) if "configMap" in vol else ("secret", vol["secret"])
            name = ref.get("name") or ref.get("secretName", "")
            data = lookup(kind, ns, name)
            if data is None:
                if ref.get("optional"):
                    out[vol["name"]] = path
                    continue
                raise ContainerConfigError(f"{kind} {name!r} not found")
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            mode = int(ref.get("defaultMode", 0o644))
            for item in items:
                target = path / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data.get(item["key"], ""))
                target.chmod(int(item.get("mode", mode)))
            path.chmod(0o755)
        elif "projected" in vol:
            mode = int(vol["projected"].get("defaultMode", 0o644))
            for source in vol["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    target = path / source["serviceAccountToken"]["path"]
                    _write(target, token(tokens[target]), mode)
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"].get("items") or []:
                        value = downward_field(pod, (item.get("fieldRef") or {}).get("fieldPath", ""))
                        _write(path / item["path"], value, int(item.get("mode", mode)))
                elif "configMap" in source or "secret" in source:
                    kind = "configmap" if "configMap" in source else "secret"
                    ref = source.get("configMap") or source.get("secret") or {}
                    data = lookup(kind, ns, ref.get("name", ""))
                    if data is None:
                        if ref.get("optional"):
                            continue
                        raise ContainerConfigError(f"{kind} {ref.get('name')!r} not found")
                    for item in ref.get("items") or [{"key": k, "path": k} for k in data]:
                        _write(path / item["path"], data.get(item["key"], ""), int(item.get("mode", mode)))
            path.chmod(0o755)
        elif "hostPath" in vol:
            # The node's own directory (testbed.nodefs), as in process mode: e.g. ipam's read-only store.
            try:
                out[vol["name"]] = nodefs.host_path(pod, vol, files.parent.parent)
            except ValueError as exc:
                raise ContainerConfigError(str(exc)) from None
            continue
        else:
            kind = next((k for k in vol if k != "name"), "?")
            raise ContainerConfigError(f"volume type {kind} is not supported by the testbed's container mode")
        out[vol["name"]] = path
    return out


def refresh_tokens(tokens: Sequence[TokenFile], token: Callable[[TokenFile], str]) -> None:
    for t in tokens:
        _write(t.path, token(t), 0o644)


def remove(uid: str, names: Sequence[str]) -> None:
    """Remove the pod's containers (they may be left by a podman run that was killed)."""
    if shutil.which(PODMAN) is None or not names:
        return
    subprocess.run([PODMAN, "rm", "--force", "--time=2", "--ignore", *[container_name(uid, n) for n in names]],
                   capture_output=True, timeout=60, check=False)


def remove_all() -> int:
    """Remove every container the testbed runner made (a runner that crashed left them). Returns how many."""
    if shutil.which(PODMAN) is None:
        return 0
    proc = subprocess.run([PODMAN, "ps", "--all", "--quiet", "--filter", f"label={MANAGED_LABEL}=true"],
                          capture_output=True, text=True, timeout=60, check=False)
    ids = proc.stdout.split()
    if ids:
        subprocess.run([PODMAN, "rm", "--force", "--time=2", "--ignore", *ids], capture_output=True, timeout=120,
                       check=False)
    return len(ids)
