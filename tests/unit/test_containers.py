"""The testbed's container mode, pure part: a pod's container → `podman run` argv, env as kubelet builds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed import containers
from testbed.containers import ContainerConfigError, ImageConfig, PodRun

Doc = dict[str, Any]


def pod(container: Doc, **spec: Any) -> Doc:
    return {"metadata": {"name": "tb-aksdns-worker-1", "namespace": "ns1", "uid": "0123456789abcdef"},
            "spec": {"nodeName": "node-a", "containers": [container], **spec},
            "status": {"podIP": "10.244.0.9", "hostIP": "10.224.0.4"}}


def run(tmp_path: Path, **kw: Any) -> PodRun:
    base: dict[str, Any] = {"uid": "0123456789abcdef", "namespace": "ns1", "name": "tb-aksdns-worker-1",
                            "node": "node-a", "netns": "aksdns-pod-01234567", "resolv_conf": tmp_path / "resolv.conf",
                            "files": tmp_path, "deadline_s": 600}
    base.update(kw)
    return PodRun(**base)


def flags(argv: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]


IMAGE = ImageConfig(user="10001:10001", entrypoint=("/usr/bin/tini", "--", "aksdns"), cmd=("worker",))
CHART_SC = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}
POD_SC = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}


def test_chart_worker_becomes_a_hardened_podman_run(tmp_path: Path) -> None:
    c = {"name": "worker", "image": "localhost/aksdns:0.1.0", "args": ["worker", "--cluster", "c1"],
         "securityContext": CHART_SC, "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
         "resources": {"limits": {"memory": "1Gi"}}}
    p = pod(c, securityContext=POD_SC, volumes=[{"name": "tmp", "emptyDir": {}}])
    argv = containers.run_argv(p, c, run(tmp_path, volumes={"tmp": tmp_path / "v"}), {"A": "1"}, IMAGE)
    assert argv[:2] == ["podman", "run"]
    assert "--network=ns:/run/netns/aksdns-pod-01234567" in argv
    assert flags(argv, "user") == ["10001:10001"] and flags(argv, "group-add") == ["10001"]
    assert "--cap-drop=all" in argv and not flags(argv, "cap-add")
    assert "--security-opt=no-new-privileges" in argv
    assert "--read-only" in argv and "--read-only-tmpfs=false" in argv
    assert f"{tmp_path / 'v'}:/tmp:rw" in flags(argv, "volume")
    assert f"{tmp_path / 'resolv.conf'}:/etc/resolv.conf:ro" in flags(argv, "volume")
    assert f"{tmp_path / 'worker.termination-log'}:/dev/termination-log:rw" in flags(argv, "volume")
    assert flags(argv, "memory") == [str(2**30)]
    assert flags(argv, "env") == ["A=1"]
    assert flags(argv, "label")[:2] == ["testbed.aksdns.dev/managed=true",
                                        "testbed.aksdns.dev/pod-uid=0123456789abcdef"]
    # No command: the image's ENTRYPOINT stays and args replace CMD, as in Kubernetes.
    assert not flags(argv, "entrypoint")
    assert argv[-4:] == ["localhost/aksdns:0.1.0", "worker", "--cluster", "c1"]


def test_command_replaces_the_entrypoint_and_args_follow(tmp_path: Path) -> None:
    c = {"name": "probe", "image": "img", "command": ["aksdns", "probe"], "args": ["--x", "$(NODE_NAME)"]}
    argv = containers.run_argv(pod(c, hostNetwork=True), c, run(tmp_path, netns="aksdns-vmss00000m"),
                               {"NODE_NAME": "node-a"}, IMAGE)
    assert flags(argv, "entrypoint") == ["aksdns"]
    assert argv[-4:] == ["img", "probe", "--x", "node-a"]
    assert flags(argv, "hostname") == ["node-a"]  # hostNetwork: the node's name
    # Without a securityContext: containerd's default capabilities, as a kubelet would give.
    assert set(flags(argv, "cap-add")) == set(containers.DEFAULT_CAPS)


def test_capture_context_adds_exactly_net_raw_and_net_admin(tmp_path: Path) -> None:
    sc = {**CHART_SC, "allowPrivilegeEscalation": True,
          "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}}
    c = {"name": "capture", "image": "img", "command": ["tcpdump"], "securityContext": sc}
    argv = containers.run_argv(pod(c, securityContext=POD_SC), c, run(tmp_path), {}, IMAGE)
    assert sorted(flags(argv, "cap-add")) == ["NET_ADMIN", "NET_RAW"]
    assert "--security-opt=no-new-privileges" not in argv
    # podman would put the added capabilities in the ambient set of the non-root user; Kubernetes does
    # not, so the process starts through setpriv, which clears it, then runs the container's command.
    assert flags(argv, "entrypoint") == ["/usr/bin/setpriv"]
    assert argv[argv.index("img"):] == ["img", "--ambient-caps=-all", "--inh-caps=-all", "--", "tcpdump"]


def test_setpriv_keeps_the_image_entrypoint_when_the_pod_gives_only_args(tmp_path: Path) -> None:
    sc = {"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}, "runAsUser": 10001}
    c = {"name": "c", "image": "img", "args": ["probe"], "securityContext": sc}
    argv = containers.run_argv(pod(c), c, run(tmp_path), {}, IMAGE)
    assert argv[argv.index("img"):] == ["img", "--ambient-caps=-all", "--inh-caps=-all", "--",
                                        "/usr/bin/tini", "--", "aksdns", "probe"]
    # Root gets added capabilities in Kubernetes too: no setpriv then.
    root = {**c, "securityContext": {**sc, "runAsUser": 0}}
    assert "--entrypoint=/usr/bin/setpriv" not in containers.run_argv(pod(root), root, run(tmp_path), {}, IMAGE)


@pytest.mark.parametrize(("pod_sc", "c_sc", "image_user", "message"), [
    ({"runAsNonRoot": True}, {}, "", "image will run as root"),
    ({"runAsNonRoot": True}, {}, "root", "image will run as root"),
    ({"runAsNonRoot": True}, {}, "aksdns", "non-numeric user"),
    ({}, {"runAsNonRoot": True, "runAsUser": 0}, "10001", "breaks non-root policy"),
])
def test_run_as_non_root_is_checked_like_kubelet(pod_sc: Doc, c_sc: Doc, image_user: str, message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        containers.user_args(pod_sc, c_sc, image_user)


def test_container_security_context_overrides_the_pod_one() -> None:
    assert containers.user_args({"runAsUser": 10001, "runAsGroup": 10001}, {"runAsUser": 0}, "") == [
        "--user=0:10001"]
    assert containers.user_args({"runAsNonRoot": True}, {}, "10001:10001") == []


def test_env_from_config_maps_secrets_fields_and_expansion() -> None:
    data = {("configmap", "ns1", "cfg"): {"AKSDNS_CLUSTER": "c1", "X": "from-cm"},
            ("secret", "ns1", "redis"): {"redis-password": "s3cret"}}

    def lookup(kind: str, ns: str, name: str) -> dict[str, str] | None:
        return data.get((kind, ns, name))

    c = {"name": "w", "image": "img", "envFrom": [{"configMapRef": {"name": "cfg"}}],
         "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "redis-password"}}},
                 {"name": "REDIS_URL", "value": "redis://:$(REDIS_PASSWORD)@host:6379/0"},
                 {"name": "LITERAL", "value": "$$(REDIS_PASSWORD) $(UNDEFINED)"},
                 {"name": "X", "value": "override"},
                 {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": True}}}]}
    env = containers.container_env(pod(c), c, lookup)
    assert env["REDIS_URL"] == "redis://:s3cret@host:6379/0"
    assert env["LITERAL"] == "$(REDIS_PASSWORD) $(UNDEFINED)"
    assert env["AKSDNS_CLUSTER"] == "c1" and env["X"] == "override" and env["NODE"] == "node-a"
    assert env["KUBERNETES_SERVICE_HOST"] and env["KUBERNETES_SERVICE_PORT"]
    assert "OPT" not in env

    missing = {**c, "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "slack", "key": "SLACK_BOT_TOKEN"}}}]}
    with pytest.raises(ContainerConfigError, match="secret 'slack'"):
        containers.container_env(pod(missing), missing, lookup)


def test_volumes_emptydir_and_config_map(tmp_path: Path) -> None:
    p = pod({"name": "w", "image": "img"},
            volumes=[{"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}, {"name": "cfg", "configMap": {"name": "c"}}])
    vols = containers.prepare_volumes(p, tmp_path, lambda kind, ns, name: {"Corefile": ".:53 {}"}, lambda t: "")
    assert vols["tmp"].stat().st_mode & 0o777 == 0o777
    assert (vols["cfg"] / "Corefile").read_text() == ".:53 {}"
    host = pod({"name": "w", "image": "img"}, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    with pytest.raises(ContainerConfigError, match="hostPath '/' is not allowed"):  # only paths in the node's dir
        containers.prepare_volumes(host, tmp_path, lambda *a: None, lambda t: "")


def test_projected_service_account_volume(tmp_path: Path) -> None:
    """The kube-api-access volume the ServiceAccount admission adds: token, cluster CA, namespace."""
    vol = {"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}
    p = pod({"name": "w", "image": "img"}, volumes=[vol])
    asked: list[int] = []

    def token(t: containers.TokenFile) -> str:
        asked.append(t.expiration_s)
        return "tok"

    vols = containers.prepare_volumes(p, tmp_path, lambda kind, ns, name: {"ca.crt": "PEM"}, token)
    root = vols["kube-api-access-x"]
    assert (root / "token").read_text() == "tok" and asked == [3607]
    assert (root / "ca.crt").read_text() == "PEM" and (root / "namespace").read_text() == "ns1"
    assert (root / "token").stat().st_mode & 0o777 == 0o644  # readable by the container's user
    assert containers.token_files(p, tmp_path) == [containers.TokenFile(root / "token", 3607, "")]


def test_memory_quantities() -> None:
    assert containers.memory_bytes("128Mi") == 128 * 2**20
    assert containers.memory_bytes("1G") == 10**9
    assert containers.memory_bytes("lots") is None
