"""The chart on a real API server: helm install (default, worker-only, capture), server-side dry run,
and what the worker's ServiceAccount may and may not do.

kwok plays the kubelets, so images are never pulled: "Running" and "Ready" come from kwok, which is
what these tests need (the API server, admission, RBAC and the controllers are real).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_chart import CHART, OPERATOR_KINDS, REPO, helm_binary, render

Doc = dict[str, Any]
KUBE_SYSTEM = "kube-system"
SLACK_SECRET = "aksdns-slack"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    worker_sa: str
    sa_kubeconfig: Path


def kubectl(testbed: Any, *args: str, kubeconfig: Path | None = None, check: bool = True,
            stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    from testbed.paths import binary

    exe = binary("kubectl")
    assert exe is not None
    proc = subprocess.run([str(exe), f"--kubeconfig={kubeconfig or testbed.kubeconfig}", *args],
                          capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc


def helm(testbed: Any, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    exe = helm_binary()
    if exe is None:
        pytest.skip("helm not built: run `testbed/build.sh helm`")
    proc = subprocess.run([str(exe), f"--kubeconfig={testbed.kubeconfig}", *args],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc


def make_namespace(testbed: Any, namespace: str, pod_security: str = "privileged") -> None:
    """The namespace as the README (Install on AKS) tells platform engineers to make it."""
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {
        "pod-security.kubernetes.io/enforce": pod_security, "pod-security.kubernetes.io/warn": "restricted"}}}
    kubectl(testbed, "apply", "-f", "-", stdin=json.dumps(manifest))


def drop_namespace(testbed: Any, namespace: str) -> None:
    kubectl(testbed, "delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)


def install(testbed: Any, name: str, namespace: str, values: Sequence[Path] = (), sets: Sequence[str] = ()) -> Release:
    # Leftovers of an interrupted run (the testbed outlives test sessions) would make `helm install` fail.
    if kubectl(testbed, "get", "namespace", namespace, check=False).returncode == 0:
        helm(testbed, "uninstall", name, "--namespace", namespace, "--wait", check=False)
        kubectl(testbed, "delete", "namespace", namespace, "--wait=true", "--timeout=90s", check=False, timeout=120)
    make_namespace(testbed, namespace)
    kubectl(testbed, "-n", namespace, "create", "secret", "generic", SLACK_SECRET,
            "--from-literal=SLACK_BOT_TOKEN=xoxb-test", "--from-literal=SLACK_APP_TOKEN=xapp-test")
    args = ["install", name, str(CHART), "--namespace", namespace, "--wait", "--timeout", "180s"]
    for f in values:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    helm(testbed, *args)
    sa = f"{name}-aksdns-worker"
    return Release(name, namespace, sa, testbed.service_account_kubeconfig(namespace, sa))


def uninstall(testbed: Any, release: Release) -> None:
    helm(testbed, "uninstall", release.name, "--namespace", release.namespace, "--wait", check=False)
    drop_namespace(testbed, release.namespace)


@pytest.fixture(scope="module")
def default_release(testbed: Any) -> Iterator[Release]:
    release = install(testbed, "tb", "chart-default")
    yield release
    uninstall(testbed, release)


@pytest.fixture(scope="module")
def worker_only_release(testbed: Any) -> Iterator[Release]:
    release = install(testbed, "tbw", "chart-worker-only", [CHART / "ci" / "worker-only-values.yaml"])
    yield release
    uninstall(testbed, release)


@pytest.fixture(scope="module")
def capture_release(testbed: Any) -> Iterator[Release]:
    sets = ["capture.enabled=true", f"slack.existingSecret={SLACK_SECRET}"]
    release = install(testbed, "tbc", "chart-capture", sets=sets)
    yield release
    uninstall(testbed, release)


def release_pods(testbed: Any, release: Release) -> list[Doc]:
    out = kubectl(testbed, "-n", release.namespace, "get", "pods", "-o", "json",
                  "-l", f"app.kubernetes.io/instance={release.name}").stdout
    pods: list[Doc] = json.loads(out)["items"]
    return pods


def wait_running(testbed: Any, release: Release, components: set[str], timeout_s: float = 90) -> list[Doc]:
    deadline = time.monotonic() + timeout_s
    while True:
        pods = release_pods(testbed, release)
        running = {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods
                   if p["status"].get("phase") == "Running"}
        if components <= running or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert components <= running, f"{release.name}: Running {running}, want {components}"
    return pods


# --- installs ------------------------------------------------------------------------------------


def test_default_install_runs_bot_worker_and_redis(testbed: Any, default_release: Release) -> None:
    pods = wait_running(testbed, default_release, {"bot", "worker", "redis"})
    assert len([p for p in pods if p["metadata"]["labels"]["app.kubernetes.io/component"] == "bot"]) == 1
    status = helm(testbed, "status", default_release.name, "-n", default_release.namespace, "-o", "json").stdout
    assert json.loads(status)["info"]["status"] == "deployed"
    notes = json.loads(status)["info"]["notes"]
    assert "kubectl auth can-i --list" in notes and "pod-security.kubernetes.io/enforce=privileged" in notes


def test_worker_only_install_runs_just_the_worker(testbed: Any, worker_only_release: Release) -> None:
    pods = wait_running(testbed, worker_only_release, {"worker"})
    assert {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods} == {"worker"}
    cm = json.loads(kubectl(testbed, "-n", worker_only_release.namespace, "get", "configmap",
                            f"{worker_only_release.name}-aksdns-config", "-o", "json").stdout)
    assert cm["data"]["AKSDNS_CLUSTER"] == "aks-prod-2"
    assert cm["data"]["AKSDNS_NAMESPACE"] == worker_only_release.namespace


def test_capture_install_runs(testbed: Any, capture_release: Release) -> None:
    wait_running(testbed, capture_release, {"bot", "worker", "redis"})


def test_upgrade_keeps_the_generated_redis_password(testbed: Any, default_release: Release) -> None:
    def password() -> str:
        out = kubectl(testbed, "-n", default_release.namespace, "get", "secret",
                      f"{default_release.name}-aksdns-redis", "-o", "jsonpath={.data.redis-password}").stdout
        return out

    before = password()
    helm(testbed, "upgrade", default_release.name, str(CHART), "-n", default_release.namespace,
         "--reuse-values", "--set", "settings.logLevel=DEBUG", "--wait", "--timeout", "180s")
    assert password() == before


@pytest.mark.parametrize("values", [None, *sorted((CHART / "ci").glob("*-values.yaml"))],
                         ids=lambda v: "default" if v is None else v.stem)
def test_server_side_dry_run_accepts_every_object(testbed: Any, values: Path | None) -> None:
    """The API server (strict field validation, admission) accepts every object of every variant."""
    namespace = "chart-dryrun"
    make_namespace(testbed, namespace)
    docs = [d for d in render([values] if values else [], namespace=namespace, release="dry")
            if d["kind"] not in OPERATOR_KINDS]  # their CRDs are not installed in the testbed
    proc = kubectl(testbed, "apply", "--dry-run=server", "--validate=strict", "-f", "-",
                   stdin=yaml.safe_dump_all(docs), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs)


# --- the worker's ServiceAccount -----------------------------------------------------------------


def can_i(testbed: Any, release: Release, verb: str, resource: str, namespace: str | None,
          name: str | None = None) -> bool:
    """A SelfSubjectAccessReview made with the release's worker token.

    `resource` is "pods", "pods/log" or "endpointslices.discovery.k8s.io" (group after the first dot);
    `namespace` None asks about every namespace (a cluster-wide grant).
    """
    kind, _, sub = resource.partition("/")
    plural, _, group = kind.partition(".")
    attributes: dict[str, str] = {"verb": verb, "resource": plural, "group": group}
    if sub:
        attributes["subresource"] = sub
    if namespace:
        attributes["namespace"] = namespace
    if name:
        attributes["name"] = name
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": attributes}}
    proc = kubectl(testbed, "create", "--validate=false", "-f", "-", "-o", "json", kubeconfig=release.sa_kubeconfig,
                   stdin=json.dumps(review))
    allowed: bool = json.loads(proc.stdout)["status"].get("allowed", False)
    return allowed


def documented_calls(doc: str = "check.md") -> list[tuple[str, str, str]]:
    """(verb, resource, namespace) rows of a command doc's "Kubernetes API calls" table."""
    text = (REPO / "docs" / doc).read_text()
    section = text.split("## Kubernetes API calls", 1)[1].split("\n## ", 1)[0]
    calls = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in {"verb", ""} or set(cells[0]) <= {"-", " "}:
            continue
        resource = re.sub(r"\s*\(([^)]+)\)", r".\1", cells[1])  # endpointslices (discovery.k8s.io)
        calls.append((cells[0], resource, cells[2]))
    assert calls, f"docs/{doc} lists no API calls"
    return calls


@pytest.mark.parametrize("doc", ["check.md", "ipam.md", "service.md"])
def test_the_worker_may_make_every_documented_call(testbed: Any, default_release: Release, doc: str) -> None:
    for verb, resource, where in documented_calls(doc):
        namespace = {"kube-system": KUBE_SYSTEM, "release namespace": default_release.namespace}.get(where)
        if resource == "configmaps":
            for name in ("coredns", "coredns-custom"):
                assert can_i(testbed, default_release, verb, resource, KUBE_SYSTEM, name), (verb, resource, name)
            continue
        assert can_i(testbed, default_release, verb, resource, namespace), (verb, resource, where)


WORKER_ALLOWED: list[tuple[str, str, str | None]] = [
    ("list", "pods", None), ("watch", "pods", None), ("get", "pods/log", KUBE_SYSTEM),
    ("list", "services", None), ("list", "endpoints", None), ("list", "endpointslices.discovery.k8s.io", None),
    ("list", "nodes", None), ("list", "events", None), ("list", "pods.metrics.k8s.io", KUBE_SYSTEM),
    ("list", "nodes.metrics.k8s.io", None),
    ("create", "selfsubjectaccessreviews.authorization.k8s.io", None),
    ("create", "selfsubjectrulesreviews.authorization.k8s.io", None),
]

WORKER_REFUSED: list[tuple[str, str, str | None]] = [
    ("create", "pods", KUBE_SYSTEM), ("create", "pods", "default"), ("delete", "pods", KUBE_SYSTEM),
    ("get", "secrets", None), ("list", "secrets", KUBE_SYSTEM), ("get", "configmaps", "default"),
    ("list", "configmaps", KUBE_SYSTEM), ("update", "configmaps", KUBE_SYSTEM),
    ("create", "deployments.apps", None), ("patch", "deployments.apps", KUBE_SYSTEM),
    ("delete", "services", KUBE_SYSTEM), ("patch", "nodes", None), ("update", "pods", None),
    ("create", "pods/exec", KUBE_SYSTEM), ("update", "pods/ephemeralcontainers", KUBE_SYSTEM),
    ("create", "pods/portforward", None), ("create", "serviceaccounts/token", None),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
    ("impersonate", "users", None), ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
    ("*", "*", None),
]


@pytest.mark.parametrize(("verb", "resource", "namespace"), WORKER_ALLOWED)
def test_worker_is_allowed(testbed: Any, default_release: Release, verb: str, resource: str,
                           namespace: str | None) -> None:
    assert can_i(testbed, default_release, verb, resource, namespace)


@pytest.mark.parametrize(("verb", "resource", "namespace"), WORKER_REFUSED)
def test_worker_is_refused(testbed: Any, default_release: Release, verb: str, resource: str,
                           namespace: str | None) -> None:
    assert not can_i(testbed, default_release, verb, resource, namespace)


def test_worker_may_create_and_delete_pods_only_in_its_namespace(testbed: Any, default_release: Release) -> None:
    ns = default_release.namespace
    assert can_i(testbed, default_release, "create", "pods", ns)
    assert can_i(testbed, default_release, "delete", "pods", ns)
    assert not can_i(testbed, default_release, "create", "pods", None)  # not cluster-wide
    assert not can_i(testbed, default_release, "create", "pods/exec", ns)  # capture is off


def test_bot_service_account_may_do_nothing(testbed: Any, default_release: Release) -> None:
    bot = Release(default_release.name, default_release.namespace, f"{default_release.name}-aksdns-bot",
                  testbed.service_account_kubeconfig(default_release.namespace, f"{default_release.name}-aksdns-bot"))
    for verb, resource, namespace in [("list", "pods", None), ("get", "pods", bot.namespace),
                                      ("list", "nodes", None), ("get", "configmaps", KUBE_SYSTEM)]:
        assert not can_i(testbed, bot, verb, resource, namespace), (verb, resource)


def test_capture_rights_only_with_capture_enabled(testbed: Any, capture_release: Release,
                                                   default_release: Release) -> None:
    ns = capture_release.namespace
    assert can_i(testbed, capture_release, "create", "pods/exec", ns)
    assert can_i(testbed, capture_release, "get", "pods/exec", ns)
    assert can_i(testbed, capture_release, "update", "pods/ephemeralcontainers", KUBE_SYSTEM)
    assert not can_i(testbed, capture_release, "patch", "pods/ephemeralcontainers", KUBE_SYSTEM)
    assert can_i(testbed, capture_release, "create", "pods/exec", KUBE_SYSTEM)
    assert not can_i(testbed, capture_release, "update", "pods/ephemeralcontainers", "default")
    assert not can_i(testbed, capture_release, "create", "pods/exec", "default")
    assert not can_i(testbed, capture_release, "create", "pods", KUBE_SYSTEM)
    # Releases never share rights: the default release's worker still has none of these.
    assert not can_i(testbed, default_release, "update", "pods/ephemeralcontainers", KUBE_SYSTEM)


# --- real calls with the worker's token ----------------------------------------------------------


def test_worker_discovery_calls_succeed_with_its_token(testbed: Any, default_release: Release) -> None:
    """The check job's own discovery code, run with the chart's ServiceAccount token."""
    kube = pytest.importorskip("workers.probes.kube")
    clients = kube.connect(str(default_release.sa_kubeconfig))
    assert kube.list_coredns_pods(clients)
    assert kube.get_service(clients) is not None
    assert kube.list_nodes(clients)
    kube.read_custom_dns(clients)  # coredns + coredns-custom ConfigMaps


def probe_image(testbed: Any, release: Release) -> str:
    out = kubectl(testbed, "-n", release.namespace, "get", "configmap", f"{release.name}-aksdns-config",
                  "-o", "jsonpath={.data.AKSDNS_PROBE_IMAGE}").stdout
    assert out
    return out


def probe_pod(namespace: str, node: str, image: str) -> Doc:
    """A node probe pod exactly as the worker builds it."""
    node_probe = pytest.importorskip("workers.probes.node_probe")
    plan = node_probe.ProbePlan(job_id=node_probe.new_job_id(), namespace=namespace, image=image,
                                command=("aksdns", "probe"), names=("kubernetes.default.svc.cluster.local",))
    pod: Doc = node_probe.probe_pod_manifest(plan, node, 0)
    return pod


def create_as_worker(testbed: Any, release: Release, pod: Doc) -> subprocess.CompletedProcess[str]:
    """Server-side dry run: authorization and admission (Pod Security, the pod guard) really run."""
    return kubectl(testbed, "create", "--dry-run=server", "-f", "-", kubeconfig=release.sa_kubeconfig,
                   stdin=json.dumps(pod), check=False)


def test_worker_token_creates_probe_pods_only_in_its_namespace(testbed: Any, default_release: Release) -> None:
    ns = default_release.namespace
    pod = probe_pod(ns, testbed.nodes[0], probe_image(testbed, default_release))
    ok = create_as_worker(testbed, default_release, pod)
    assert ok.returncode == 0, ok.stderr
    elsewhere = {**pod, "metadata": {**pod["metadata"], "namespace": KUBE_SYSTEM}}
    refused = create_as_worker(testbed, default_release, elsewhere)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()


def test_the_janitor_runs_with_the_worker_token(testbed: Any, default_release: Release) -> None:
    kube = pytest.importorskip("workers.probes.kube")
    pods = pytest.importorskip("workers.probes.pods")
    clients = kube.connect(str(default_release.sa_kubeconfig))
    assert pods.janitor(clients.core, default_release.namespace) >= 0


def test_hostnetwork_probe_pods_need_a_privileged_namespace(testbed: Any, default_release: Release) -> None:
    """Why the README (Install on AKS) labels the namespace: Pod Security `baseline` refuses probe pods."""
    namespace = "chart-baseline"
    make_namespace(testbed, namespace, pod_security="baseline")
    try:
        pod = probe_pod(namespace, testbed.nodes[0], probe_image(testbed, default_release))
        proc = kubectl(testbed, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
        assert proc.returncode != 0 and "hostNetwork" in proc.stderr, proc.stderr
    finally:
        drop_namespace(testbed, namespace)


def _container(pod: Doc, **security: Any) -> Doc:
    c = dict(pod["spec"]["containers"][0])
    c["securityContext"] = {**c.get("securityContext", {}), **security}
    return {**pod, "spec": {**pod["spec"], "containers": [c]}}


def test_pod_guard_refuses_what_probe_pods_never_need(testbed: Any, default_release: Release) -> None:
    pod = probe_pod(default_release.namespace, testbed.nodes[0], probe_image(testbed, default_release))
    spec = pod["spec"]
    bad = {
        "another image": {**pod, "spec": {**spec, "containers": [{**spec["containers"][0], "image": "busybox:1"}]}},
        "privileged": _container(pod, privileged=True, allowPrivilegeEscalation=True),
        "NET_ADMIN without capture": _container(pod, capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}),
        "a hostPath": {**pod, "spec": {**spec, "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}},
        "hostPID": {**pod, "spec": {**spec, "hostPID": True}},
        "a token": {**pod, "spec": {**spec, "automountServiceAccountToken": True}},
        "no deadline": {**pod, "spec": {k: v for k, v in spec.items() if k != "activeDeadlineSeconds"}},
    }
    for what, body in bad.items():
        proc = create_as_worker(testbed, default_release, body)
        assert proc.returncode != 0 and "ValidatingAdmissionPolicy" in proc.stderr, (what, proc.stderr)


def ipam_probe_pod(namespace: str, node: str, image: str) -> Doc:
    """An `ipam` store probe pod exactly as the worker builds it (the read-only store hostPath)."""
    ipam_store = pytest.importorskip("workers.probes.ipam_store")
    node_pods = pytest.importorskip("workers.probes.node_pods")
    plan = ipam_store.plan(node_pods.PodJob("guardtest01", namespace, image, ("aksdns", "probe")))
    pod: Doc = node_pods.pod_manifest(plan, node, 0, [])
    return pod


def test_pod_guard_allows_the_ipam_store_probe_and_nothing_wider(testbed: Any, default_release: Release) -> None:
    """The one hostPath the guard allows: /var/lib/cni/networks, read-only, type Directory, role ipam-probe."""
    pod = ipam_probe_pod(default_release.namespace, testbed.nodes[0], probe_image(testbed, default_release))
    ok = create_as_worker(testbed, default_release, pod)
    assert ok.returncode == 0, ok.stderr
    spec, meta = pod["spec"], pod["metadata"]
    c = spec["containers"][0]
    store = spec["volumes"][0]
    bad = {
        "another role": {**pod, "metadata": {**meta, "labels": {**meta["labels"], "aksdns.io/role": "node-dns-probe"}}},
        "no role": {**pod, "metadata": {**meta, "labels": {k: v for k, v in meta["labels"].items()
                                                             if k != "aksdns.io/role"}}},
        "writable mount": {**pod, "spec": {**spec, "containers": [
            {**c, "volumeMounts": [{**c["volumeMounts"][0], "readOnly": False}]}]}},
        "mount without readOnly": {**pod, "spec": {**spec, "containers": [
            {**c, "volumeMounts": [{k: v for k, v in c["volumeMounts"][0].items() if k != "readOnly"}]}]}},
        "the root": {**pod, "spec": {**spec, "volumes": [{**store, "hostPath": {"path": "/", "type": "Directory"}}]}},
        "a parent": {**pod, "spec": {**spec, "volumes": [
            {**store, "hostPath": {"path": "/var/lib/cni", "type": "Directory"}}]}},
        "a way out": {**pod, "spec": {**spec, "volumes": [
            {**store, "hostPath": {"path": "/var/lib/cni/networks/../../..", "type": "Directory"}}]}},
        "created if missing": {**pod, "spec": {**spec, "volumes": [
            {**store, "hostPath": {"path": "/var/lib/cni/networks", "type": "DirectoryOrCreate"}}]}},
        "a second host path": {**pod, "spec": {**spec, "volumes": [
            store, {"name": "etc", "hostPath": {"path": "/etc", "type": "Directory"}}]}},
    }
    for what, body in bad.items():
        proc = create_as_worker(testbed, default_release, body)
        # Kubernetes itself refuses '..' in a hostPath before admission (the guard would refuse it too).
        by = ["ValidatingAdmissionPolicy", *(["must not contain '..'"] if what == "a way out" else [])]
        assert proc.returncode != 0 and any(b in proc.stderr for b in by), (what, proc.stderr)


def capture_pod(namespace: str, node: str, image: str) -> Doc:
    """A capture pod exactly as the worker builds it (the fallback where ephemeral containers are refused)."""
    cp = pytest.importorskip("workers.probes.capture_pods")
    from workers.evidence.capture import Role, Target

    agent = cp.AgentSpec("chartrun", image, ("aksdns", "probe"), cp.agent_deadline(30))
    pod: Doc = cp.capture_pod(agent, Target(Role.CLIENT, "default", "web", node, "10.244.0.9"), namespace)
    return pod


def test_pod_guard_lets_capture_pods_add_exactly_net_raw_and_net_admin(testbed: Any,
                                                                      capture_release: Release) -> None:
    image = probe_image(testbed, capture_release)
    capture = capture_pod(capture_release.namespace, testbed.nodes[0], image)
    proc = create_as_worker(testbed, capture_release, capture)
    assert proc.returncode == 0, proc.stderr
    more = _container(capture, capabilities={"drop": ["ALL"], "add": ["NET_RAW", "SYS_ADMIN"]})
    refused = create_as_worker(testbed, capture_release, more)
    assert refused.returncode != 0 and "NET_RAW and NET_ADMIN" in refused.stderr, refused.stderr
    # Only capture pods: a probe pod may not add them, even with capture on.
    probe = _container(probe_pod(capture_release.namespace, testbed.nodes[0], image),
                       capabilities={"drop": ["ALL"], "add": ["NET_RAW"]})
    refused = create_as_worker(testbed, capture_release, probe)
    assert refused.returncode != 0 and "only capture pods" in refused.stderr, refused.stderr


def test_uninstall_removes_cluster_scoped_objects(testbed: Any) -> None:
    release = install(testbed, "tbu", "chart-uninstall")
    name = f"{release.namespace}-{release.name}-aksdns-worker-read"
    assert kubectl(testbed, "get", "clusterrole", name, check=False).returncode == 0
    uninstall(testbed, release)
    assert kubectl(testbed, "get", "clusterrole", name, check=False).returncode != 0
    assert kubectl(testbed, "-n", KUBE_SYSTEM, "get", "role",
                   f"{release.namespace}-{release.name}-aksdns-worker-coredns-config", check=False).returncode != 0


# What every authenticated user has (system:basic-user and friends): not the chart's doing.
EVERYONE = {
    ("authorization.k8s.io", "selfsubjectaccessreviews", "create", ()),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "create", ()),
    ("authentication.k8s.io", "selfsubjectreviews", "create", ()),
}
READ = ("get", "list", "watch")
Rule = tuple[str, str, str, tuple[str, ...]]  # (apiGroup, resource, verb, resourceNames)


def granted_rules(testbed: Any, release: Release, namespace: str) -> set[Rule]:
    """Every (group, resource, verb, resourceNames) the worker token holds in `namespace`
    (SelfSubjectRulesReview: cluster-wide grants included)."""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "spec": {"namespace": namespace}}
    proc = kubectl(testbed, "create", "--validate=false", "-f", "-", "-o", "json",
                   kubeconfig=release.sa_kubeconfig, stdin=json.dumps(review))
    status = json.loads(proc.stdout)["status"]
    assert not status.get("incomplete"), status
    out: set[Rule] = set()
    for rule in status["resourceRules"]:
        for group in rule.get("apiGroups", [""]):
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb, tuple(sorted(rule.get("resourceNames", [])))))
    return out - EVERYONE


def expected_rules(namespace: str, release_ns: str, capture: bool = False) -> set[Rule]:
    rules = {("", r, v, ()) for r in ("pods", "services", "endpoints", "nodes", "events") for v in READ}
    rules.add(("", "pods/log", "get", ()))
    rules |= {("metrics.k8s.io", r, v, ()) for r in ("pods", "nodes") for v in ("get", "list")}
    rules |= {("discovery.k8s.io", "endpointslices", v, ()) for v in READ}
    rules.add(("authorization.k8s.io", "subjectaccessreviews", "create", ()))  # apiserver --as NS/SA
    rules |= {("", "namespaces", v, ()) for v in ("get", "list")}  # service: namespaceSelector labels
    rules |= {("networking.k8s.io", "networkpolicies", v, ()) for v in ("get", "list")}  # service
    if namespace == KUBE_SYSTEM:
        rules.add(("", "configmaps", "get", ("coredns", "coredns-autoscaler", "coredns-custom")))
        rules.add(("apps", "deployments", "get", ("coredns",)))  # health: replicas against the ladder
        rules |= {("acn.azure.com", "nodenetworkconfigs", v, ()) for v in ("get", "list")}  # ipam
    if namespace == release_ns:
        rules |= {("", "pods", "create", ()), ("", "pods", "delete", ())}
    if capture and namespace in {release_ns, KUBE_SYSTEM}:
        rules |= {("", "pods/exec", "create", ()), ("", "pods/exec", "get", ())}
    if capture and namespace == KUBE_SYSTEM:
        rules.add(("", "pods/ephemeralcontainers", "update", ()))
    return rules


@pytest.mark.parametrize("where", ["release", KUBE_SYSTEM, "default"])
def test_worker_holds_exactly_the_rules_it_needs(testbed: Any, default_release: Release, where: str) -> None:
    """"Refused the rest": the complete rule set of the token, per namespace, is the expected one."""
    namespace = default_release.namespace if where == "release" else where
    assert granted_rules(testbed, default_release, namespace) == expected_rules(namespace, default_release.namespace)


@pytest.mark.parametrize("where", ["release", KUBE_SYSTEM, "default"])
def test_capture_worker_holds_exactly_the_rules_it_needs(testbed: Any, capture_release: Release, where: str) -> None:
    namespace = capture_release.namespace if where == "release" else where
    want = expected_rules(namespace, capture_release.namespace, capture=True)
    assert granted_rules(testbed, capture_release, namespace) == want


def add_ephemeral(testbed: Any, release: Release, pod: str, image: str,
                  **security: Any) -> subprocess.CompletedProcess[str]:
    """As the worker: add a tcpdump ephemeral container to a CoreDNS pod (server-side dry run)."""
    container = {"name": f"aksdns-capture-{int(time.time() * 1000) % 10**8}", "image": image,
                 "command": ["tcpdump", "-i", "any", "-w", "/tmp/dns.pcap", "port", "53"],
                 "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                     "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}, **security}}
    # As the worker does it: the pod as read, plus the container, PUT to the subresource (update, no patch).
    body = json.loads(kubectl(testbed, "-n", KUBE_SYSTEM, "get", "pod", pod, "-o", "json").stdout)
    body["spec"].setdefault("ephemeralContainers", []).append(container)
    path = f"/api/v1/namespaces/{KUBE_SYSTEM}/pods/{pod}/ephemeralcontainers?dryRun=All"
    return kubectl(testbed, "replace", "--raw", path, "-f", "-", stdin=json.dumps(body),
                   kubeconfig=release.sa_kubeconfig, check=False)


def test_capture_ephemeral_containers_are_guarded(testbed: Any, capture_release: Release,
                                                  default_release: Release) -> None:
    pod = testbed.coredns_pods()[0].name
    image = probe_image(testbed, capture_release)
    ok = add_ephemeral(testbed, capture_release, pod, image)
    assert ok.returncode == 0, ok.stderr
    other = add_ephemeral(testbed, capture_release, pod, "nicolaka/netshoot:latest")
    assert other.returncode != 0 and "ValidatingAdmissionPolicy" in other.stderr, other.stderr
    privileged = add_ephemeral(testbed, capture_release, pod, image, privileged=True, allowPrivilegeEscalation=True)
    assert privileged.returncode != 0 and "may not be privileged" in privileged.stderr, privileged.stderr
    more = add_ephemeral(testbed, capture_release, pod, image,
                         capabilities={"drop": ["ALL"], "add": ["NET_RAW", "SYS_PTRACE"]})
    assert more.returncode != 0 and "NET_RAW and NET_ADMIN" in more.stderr, more.stderr
    # Without capture the worker may not add ephemeral containers at all.
    denied = add_ephemeral(testbed, default_release, pod, probe_image(testbed, default_release))
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr


# `health` and `coredns-log` (docs/health.md): what they read, and the one write, off by default.
HEALTH_CALLS: list[tuple[str, str, str | None, str | None]] = [
    ("get", "configmaps", KUBE_SYSTEM, "coredns-autoscaler"), ("get", "deployments.apps", KUBE_SYSTEM, "coredns"),
    ("list", "events", None, None), ("get", "pods/log", KUBE_SYSTEM, None), ("list", "pods", None, None),
    ("list", "pods.metrics.k8s.io", KUBE_SYSTEM, None), ("list", "nodes.metrics.k8s.io", None, None),
]


def test_the_worker_may_make_every_call_health_makes(testbed: Any, default_release: Release) -> None:
    for verb, resource, namespace, name in HEALTH_CALLS:
        assert can_i(testbed, default_release, verb, resource, namespace, name), (verb, resource, name)
    # coredns-log's patch of coredns-custom needs rbac.verboseLog=true; by default no CoreDNS write at all.
    assert not can_i(testbed, default_release, "patch", "configmaps", KUBE_SYSTEM, "coredns-custom")
    assert not can_i(testbed, default_release, "get", "deployments.apps", KUBE_SYSTEM, "other")
