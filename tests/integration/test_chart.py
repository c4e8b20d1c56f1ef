"""The Helm chart: lint, render over a values matrix, validate every object strictly, check policy.

Needs the helm binary the testbed build makes first (``testbed/build.sh helm``) or one on PATH.
The render helpers here are reused by the testbed install tests (tests/testbed/test_chart_install.py).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "aksdns"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "aksdns"
RELEASE = "t"

Doc = dict[str, Any]

# Kinds whose schemas are not Kubernetes' own (CRDs); checked by hand below.
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
# Kinds of operators whose CRDs the testbed does not install (KEDA's, the Prometheus Operator's).
OPERATOR_KINDS = KEDA_KINDS | {"ServiceMonitor"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Pod"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


def helm_binary() -> Path | None:
    """The testbed's pinned helm, else one on PATH."""
    try:
        from testbed.paths import binary

        built = binary("helm")
    except (ImportError, KeyError):
        built = None
    if built is not None:
        return built
    found = shutil.which("helm")
    return Path(found) if found else None


def kube_version() -> str:
    """Kubernetes version the chart is rendered and validated for: the testbed's."""
    try:
        from testbed.versions import KUBERNETES

        return KUBERNETES.lstrip("v")
    except ImportError:
        return "1.35.0"


def require_helm() -> Path:
    helm = helm_binary()
    if helm is None:
        pytest.skip("helm not built: run `testbed/build.sh helm` (or put helm on PATH)")
    return helm


def run_helm(args: Sequence[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    helm = require_helm()
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def set_args(values: Mapping[str, str] | None) -> list[str]:
    return [arg for key, value in (values or {}).items() for arg in ("--set", f"{key}={value}")]


@cache
def _render_cached(values_files: tuple[str, ...], sets: tuple[tuple[str, str], ...],
                   release: str, namespace: str, version: str) -> tuple[Doc, ...]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", version]
    for f in values_files:
        args += ["-f", f]
    args += set_args(dict(sets))
    out = run_helm(args).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(values_files: Sequence[Path] = (), sets: Mapping[str, str] | None = None,
           release: str = RELEASE, namespace: str = NAMESPACE, version: str | None = None) -> list[Doc]:
    """`helm template` the chart and parse every object."""
    return list(_render_cached(tuple(str(f) for f in values_files), tuple(sorted((sets or {}).items())),
                               release, namespace, version or kube_version()))


def render_error(sets: Mapping[str, str]) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version()]
    proc = run_helm(args + set_args(sets), check=False)
    assert proc.returncode != 0, f"expected helm template to fail for {sets}"
    return proc.stderr


def by_kind(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Sequence[Doc], kind: str, name_suffix: str) -> Doc:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: found {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
    return spec


def containers(doc: Doc) -> Iterator[Doc]:
    spec = pod_spec(doc)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def env_names(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


# One entry per values combination; ids are the file names.
MATRIX: list[tuple[str, list[Path]]] = [("default", [])] + [(p.stem, [p]) for p in CI_VALUES]


@pytest.fixture(params=MATRIX, ids=[m[0] for m in MATRIX])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    name, files = request.param
    return name, render(files)


# --- lint and schema -------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=["default", *[p.stem for p in CI_VALUES]])
def test_helm_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", kube_version()]
    if values is not None:
        args += ["-f", str(values)]
    proc = run_helm(args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout, proc.stdout


def test_chart_app_version_follows_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert str(chart["appVersion"]) == project["version"]


def test_every_value_is_documented_and_in_the_schema() -> None:
    """values.yaml and values.schema.json describe the same keys (the schema forbids unknown keys)."""


    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: Any, sch: Doc, path: str) -> None:
        if not isinstance(node, dict) or sch.get("type") != "object" or "properties" not in sch:
            return
        for key, sub in node.items():
            assert key in sch["properties"], f"{path}{key} is in values.yaml but not in values.schema.json"
            walk(sub, sch["properties"][key], f"{path}{key}.")
        missing = set(sch["properties"]) - set(node) - {"global", "claims", "successThreshold"}
        assert not missing, f"{path}: schema keys without a default in values.yaml: {missing}"

    walk(values, schema, "")
    text = (CHART / "values.yaml").read_text()
    for top in values:
        block = text.split(f"\n{top}:", 1)[0].rstrip().splitlines()
        assert block and block[-1].lstrip().startswith("#"), f"top-level value {top} has no comment"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"cluster": "Bad Name"}, "does not match pattern"),
        ({"bot.mode": "webhook"}, "bot/mode"),
        ({"redis.external.url": "http://x:6379"}, "redis/external/url"),
        ({"capture.namespaces[0]": "Not_A_Namespace"}, "capture/namespaces"),
        ({"bot.ingress.enabled": "true"}, "minItems"),
        ({"worker.replicass": "2"}, "additional properties"),
        ({"jobSigning.key": "too-short"}, "jobSigning/key"),
    ],
)
def test_schema_rejects_bad_values(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"redis.enabled": "false"}, "needs redis.external.url"),
        ({"redis.external.url": "redis://r:6379/0"}, "set redis.enabled=false"),
        ({"bot.enabled": "false", "worker.enabled": "false"}, "nothing to install"),
        ({"worker.enabled": "false", "capture.enabled": "true"}, "capture.enabled needs worker.enabled"),
        ({"bot.enabled": "false", "redis.enabled": "false", "redis.external.url": "redis://r:6379/0"},
         "bot.enabled=false needs jobSigning.existingSecret"),
    ],
)
def test_contradictory_values_fail_with_a_reason(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets)


# --- every rendered object ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.30.0", None], ids=["oldest-supported", "testbed"])
def test_every_object_validates_strictly(rendered: tuple[str, list[Doc]], version: str | None) -> None:
    import kubernetes_validate

    name, _ = rendered
    files = dict(MATRIX)[name]
    docs = render(files, version=version or kube_version())
    assert docs
    for doc in docs:
        if doc["kind"] in KEDA_KINDS:
            assert doc["apiVersion"] == "keda.sh/v1alpha1"
            continue
        if doc["kind"] == "ServiceMonitor":  # the Prometheus Operator's CRD (tests/integration/test_chart_metrics.py)
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        try:
            kubernetes_validate.validate(doc, version or kube_version(), strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            raise AssertionError(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}") from e


def test_objects_carry_standard_labels_and_the_release_namespace(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                      "ValidatingAdmissionPolicyBinding"}
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
                    "helm.sh/chart", "app.kubernetes.io/version"):
            assert key in labels, f"{doc['kind']}/{doc['metadata']['name']} lacks label {key}"
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped or namespace != NAMESPACE:
            # Objects outside the release namespace carry it in their name: releases never collide.
            assert doc["metadata"]["name"].startswith(f"{NAMESPACE}-"), doc["metadata"]["name"]
        if doc["kind"] not in cluster_scoped:
            assert namespace == NAMESPACE or doc["kind"] in {"Role", "RoleBinding"}
        rbac = doc["kind"] in {"Role", "RoleBinding"} | cluster_scoped
        assert len(doc["metadata"]["name"]) <= (253 if rbac else 63), doc["metadata"]["name"]


def test_pods_are_hardened(rendered: tuple[str, list[Doc]]) -> None:
    name, docs = rendered
    workloads = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    assert workloads
    for doc in workloads:
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        spec = pod_spec(doc)
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] != 0, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        for vol in spec.get("volumes", []):
            assert "hostPath" not in vol, where
        for c in containers(doc):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert not sc.get("privileged"), where
            assert c["resources"]["limits"]["memory"], where
            assert c["resources"]["requests"], where
            assert not c["image"].endswith(":latest"), where
            assert any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])), where


def test_bot_and_worker_have_probes_and_roll_on_config_changes(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    deployments = by_kind(docs, "Deployment")
    assert deployments
    for dep in deployments:
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
        for c in containers(dep):
            assert "livenessProbe" in c and "readinessProbe" in c, dep["metadata"]["name"]


def test_config_changes_change_the_checksum() -> None:
    before = one(render(), "Deployment", "-worker")
    after = one(render(sets={"settings.logLevel": "DEBUG"}), "Deployment", "-worker")
    key = "checksum/config"
    assert before["spec"]["template"]["metadata"]["annotations"][key] != \
        after["spec"]["template"]["metadata"]["annotations"][key]


def test_pdbs_never_block_a_drain(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert len(pdbs) == len(by_kind(docs, "Deployment"))
    for pdb in pdbs:
        assert pdb["spec"].get("maxUnavailable", 0) >= 1 and "minAvailable" not in pdb["spec"]


def settings_table_variables() -> set[str]:
    """Environment variables of the settings table in docs/ARCHITECTURE.md."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| variable"):
            names.update(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", line.split("|")[1]))
    return names


def test_environment_matches_the_settings_the_app_reads(rendered: tuple[str, list[Doc]]) -> None:
    """Every variable the chart sets for bot and worker is one the app reads (no dead settings)."""
    name, docs = rendered
    known = settings_table_variables()
    assert {"REDIS_URL", "SLACK_BOT_TOKEN", "AKSDNS_CLUSTER"} <= known
    helpers = {"REDIS_PASSWORD"}  # only feeds $(REDIS_PASSWORD) in REDIS_URL
    for cm in by_kind(docs, "ConfigMap"):
        assert set(cm["data"]) <= known, f"{name}: unknown settings {set(cm['data']) - known}"
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS or doc["metadata"]["labels"]["app.kubernetes.io/component"] == "redis":
            continue
        for c in containers(doc):
            extra = {e["name"] for e in c.get("env", [])} - known - helpers
            assert not extra, f"{name}: {doc['metadata']['name']} sets unknown variables {extra}"


# --- RBAC -----------------------------------------------------------------------------------------


def rbac_rules(docs: Sequence[Doc]) -> list[tuple[str, str, str, str]]:
    """(namespace or '*', apiGroup, resource, verb) the worker's ServiceAccount is granted."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in {"Role", "ClusterRole"}}
    granted: list[tuple[str, str, str, str]] = []
    for binding in [d for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}]:
        ref = binding["roleRef"]
        assert ref["name"] not in {"cluster-admin", "admin", "edit", "view"}, ref
        ns = binding["metadata"].get("namespace", "*")
        role_ns = ns if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    for verb in rule["verbs"]:
                        granted.append((ns, group, res, verb))
    return granted


def test_rbac_has_no_wildcards_and_no_secrets(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for role in [d for d in docs if d["kind"] in {"Role", "ClusterRole"}]:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], role["metadata"]["name"]
            assert "secrets" not in rule["resources"]
            assert not rule.get("nonResourceURLs")


def test_default_rbac_is_read_only_except_probe_pods_in_the_release_namespace() -> None:
    granted = rbac_rules(render())
    writes = {(ns, g, r, v) for ns, g, r, v in granted if v in WRITE_VERBS}
    assert writes == {
        (NAMESPACE, "", "pods", "create"),
        (NAMESPACE, "", "pods", "delete"),
        ("*", "authorization.k8s.io", "selfsubjectrulesreviews", "create"),
        ("*", "authorization.k8s.io", "selfsubjectaccessreviews", "create"),
        ("*", "authorization.k8s.io", "subjectaccessreviews", "create"),  # apiserver --as: a question only
        ("*", "authentication.k8s.io", "selfsubjectreviews", "create"),  # apiserver: who am I
    }
    reads = {(ns, g, r) for ns, g, r, v in granted if v == "list"}
    assert {("*", "", "pods"), ("*", "", "services"), ("*", "", "endpoints"), ("*", "", "nodes"),
            ("*", "", "events"), ("*", "discovery.k8s.io", "endpointslices"),
            ("*", "metrics.k8s.io", "pods"), ("*", "metrics.k8s.io", "nodes")} <= reads
    assert ("*", "", "pods/log", "get") in granted
    assert ("kube-system", "", "configmaps", "get") in granted
    assert not any(r in {"pods/exec", "pods/ephemeralcontainers", "pods/attach"} for _, _, r, _ in granted)
    assert not any(r == "configmaps" and ns != "kube-system" for ns, _, r, _ in granted)


def test_capture_rights_appear_only_behind_the_switch() -> None:
    capture = render([CHART / "ci" / "capture-values.yaml"])
    granted = set(rbac_rules(capture))
    for ns in ("kube-system", "default", NAMESPACE):
        assert (ns, "", "pods/exec", "create") in granted
    for ns in ("kube-system", "default"):
        # update (with the pod's resourceVersion) is what the worker uses; no get, no patch
        assert (ns, "", "pods/ephemeralcontainers", "update") in granted
        assert not {(ns, "", "pods/ephemeralcontainers", v) for v in ("get", "patch")} & granted
    assert not any(ns == "*" and r in {"pods/exec", "pods/ephemeralcontainers"} for ns, _, r, _ in granted)
    everywhere = set(rbac_rules(render([CHART / "ci" / "capture-all-namespaces-values.yaml"])))
    assert ("*", "", "pods/ephemeralcontainers", "update") in everywhere


def test_the_bot_gets_no_kubernetes_access(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for binding in [d for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}]:
        for subject in binding["subjects"]:
            assert subject["name"].endswith("-worker"), subject
    for dep in [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-bot")]:
        assert pod_spec(dep)["automountServiceAccountToken"] is False


def test_probe_rights_can_be_switched_off() -> None:
    granted = rbac_rules(render(sets={"probe.enabled": "false"}))
    assert not any(v in {"create", "delete"} and r == "pods" for _, _, r, v in granted)


# --- modes ----------------------------------------------------------------------------------------


def test_socket_mode_runs_exactly_one_bot_with_recreate() -> None:
    docs = render()
    bot = one(docs, "Deployment", "-bot")
    assert bot["spec"]["replicas"] == 1 and bot["spec"]["strategy"]["type"] == "Recreate"
    c = bot["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["bot"] and "SLACK_APP_TOKEN" in env_names(c)
    assert "SLACK_SIGNING_SECRET" not in env_names(c)
    assert not [s for s in by_kind(docs, "Service") if s["metadata"]["name"].endswith("-bot")]
    assert c["livenessProbe"]["exec"]["command"] == ["aksdns", "healthcheck", "bot"]


def test_http_mode_runs_replicas_behind_a_service_and_ingress() -> None:
    docs = render([CHART / "ci" / "http-values.yaml"])
    bot = one(docs, "Deployment", "-bot")
    assert bot["spec"]["replicas"] == 3 and bot["spec"]["strategy"]["type"] == "RollingUpdate"
    c = bot["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][:2] == ["bot", "--http"] and "--port" in c["args"]
    assert "SLACK_SIGNING_SECRET" in env_names(c) and "SLACK_APP_TOKEN" not in env_names(c)
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    svc = one(docs, "Service", "-bot")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    ingress = one(docs, "Ingress", "-bot")
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"] == "/slack/events" and path["backend"]["service"]["name"] == svc["metadata"]["name"]


def test_worker_only_mode_uses_the_shared_redis_and_its_own_queue() -> None:
    docs = render([CHART / "ci" / "worker-only-values.yaml"])
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert not any(name.endswith("-bot") for _, name in kinds)
    assert not by_kind(docs, "StatefulSet")
    worker = one(docs, "Deployment", "-worker")
    c = worker["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["worker", "--cluster", "aks-prod-2"]
    redis_url = env_names(c)["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    secret = one(docs, "Secret", redis_url["name"])


    assert base64.b64decode(secret["data"][redis_url["key"]]).decode().startswith("rediss://")
    cm = by_kind(docs, "ConfigMap")[0]
    assert cm["data"]["AKSDNS_CLUSTER"] == "aks-prod-2"
    assert cm["data"]["AKSDNS_NAMESPACE"] == NAMESPACE


def test_bundled_redis_requires_a_password_and_keeps_it_in_one_secret() -> None:
    docs = render()
    sts = one(docs, "StatefulSet", "-redis")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert "--requirepass" in c["args"] and "$(REDIS_PASSWORD)" in c["args"]
    secret = one(docs, "Secret", "-redis")


    assert len(base64.b64decode(secret["data"]["redis-password"])) == 32
    worker = one(docs, "Deployment", "-worker")
    env = env_names(worker["spec"]["template"]["spec"]["containers"][0])
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert env["REDIS_URL"]["value"] == f"redis://:$(REDIS_PASSWORD)@{RELEASE}-aksdns-redis.{NAMESPACE}.svc:6379/0"
    names = [e["name"] for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")  # dependent variables come later


def test_bot_and_worker_share_a_generated_job_signing_key_the_test_pod_does_not_get() -> None:
    docs = render()
    secret = one(docs, "Secret", "-job-signing")
    assert len(base64.b64decode(secret["data"]["key"])) == 48
    for name in ("-bot", "-worker"):
        dep = one(docs, "Deployment", name)
        ref = env_names(dep["spec"]["template"]["spec"]["containers"][0])["AKSDNS_JOB_SIGNING_KEY"]
        assert ref["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "key"}
        assert "checksum/job-signing" in dep["spec"]["template"]["metadata"]["annotations"]
    for pod in by_kind(docs, "Pod"):
        assert "AKSDNS_JOB_SIGNING_KEY" not in env_names(pod["spec"]["containers"][0])


def test_worker_only_release_uses_the_bot_releases_job_signing_key() -> None:
    docs = render([CHART / "ci" / "worker-only-values.yaml"])
    assert not [d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-job-signing")]
    env = env_names(one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0])
    assert env["AKSDNS_JOB_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "aksdns-job-signing", "key": "key"}


def test_existing_secrets_are_used_and_not_created() -> None:
    docs = render([CHART / "ci" / "existing-secrets-values.yaml"])
    assert not by_kind(docs, "Secret")
    sts = one(docs, "StatefulSet", "-redis")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "managed-csi"
    env = env_names(one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0])
    assert env["SLACK_BOT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "aksdns-slack"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "aksdns-redis", "key": "password"}
    assert env["AKSDNS_JOB_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "aksdns-job-signing", "key": "signing-key"}


def test_keda_scales_workers_on_the_cluster_queue() -> None:
    docs = render([CHART / "ci" / "keda-values.yaml"])
    worker = one(docs, "Deployment", "-worker")
    assert "replicas" not in worker["spec"]  # KEDA owns the replica count
    so = one(docs, "ScaledObject", "-worker")
    assert so["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == "rq:queue:aksdns:default"
    assert trigger["metadata"]["address"] == f"{RELEASE}-aksdns-redis.{NAMESPACE}.svc:6379"
    assert trigger["metadata"]["enableTLS"] == "false"
    auth = one(docs, "TriggerAuthentication", "-worker-redis")
    assert auth["spec"]["secretTargetRef"][0]["parameter"] == "password"

    external = render([CHART / "ci" / "keda-external-values.yaml"])
    meta = one(external, "ScaledObject", "-worker")["spec"]["triggers"][0]["metadata"]
    assert meta == {
        "address": "aksdns.redis.cache.windows.net:6380", "listName": "rq:queue:aksdns:aks-prod-3",
        "listLength": "5", "activationListLength": "0", "enableTLS": "true", "databaseIndex": "2",
    }


def test_network_policies_fence_redis_and_the_pods() -> None:
    docs = render([CHART / "ci" / "http-values.yaml"])
    policies = {d["metadata"]["name"]: d for d in by_kind(docs, "NetworkPolicy")}
    assert set(policies) == {f"{RELEASE}-aksdns-redis", f"{RELEASE}-aksdns-bot", f"{RELEASE}-aksdns-worker"}
    redis = policies[f"{RELEASE}-aksdns-redis"]["spec"]
    peer = redis["ingress"][0]["from"][0]["podSelector"]
    assert peer["matchExpressions"][0]["values"] == ["bot", "worker", "test"]
    assert redis["egress"] == []
    # The worker accepts nothing but Prometheus on /metrics (tests/integration/test_chart_metrics.py).
    assert policies[f"{RELEASE}-aksdns-worker"]["spec"]["ingress"] == [{"ports": [{"port": 9102, "protocol": "TCP"}]}]
    bot_in = policies[f"{RELEASE}-aksdns-bot"]["spec"]["ingress"][0]
    assert bot_in["ports"] == [{"port": 3000, "protocol": "TCP"}] and bot_in["from"]
    assert not by_kind(render(), "NetworkPolicy")


def test_helm_test_hook_checks_the_worker() -> None:
    pod = one(render(), "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    c = pod["spec"]["containers"][0]
    assert c["command"][:2] == ["python", "-c"]
    assert 'Queue("aksdns:" + os.environ["AKSDNS_CLUSTER"]' in c["command"][2]
    compile(c["command"][2], "helm-test", "exec")
    assert pod["spec"]["restartPolicy"] == "Never"


def test_image_tag_defaults_to_app_version_and_digest_wins() -> None:
    worker = one(render(), "Deployment", "-worker")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"ghcr.io/aksdns/aksdns:{chart['appVersion']}"
    docs = render([CHART / "ci" / "overrides-values.yaml"])
    image = one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("myregistry.azurecr.io/aksdns@sha256:")
    assert by_kind(docs, "ConfigMap")[0]["data"]["AKSDNS_PROBE_IMAGE"] == image


def test_container_commands_are_ones_the_cli_accepts() -> None:
    """Every args/exec probe the chart runs parses with the real `aksdns` console script."""
    pytest.importorskip("console.cli")
    commands: set[tuple[str, ...]] = set()
    for files in ([], [CHART / "ci" / "http-values.yaml"], [CHART / "ci" / "worker-only-values.yaml"]):
        for doc in by_kind(render(files), "Deployment"):
            for c in containers(doc):
                commands.add(tuple(c["args"]))
                for probe in ("livenessProbe", "readinessProbe"):
                    command = c[probe].get("exec", {}).get("command")
                    if command:
                        assert command[0] == "aksdns"
                        commands.add(tuple(command[1:]))
    assert {("bot",), ("worker", "--cluster", "default"), ("healthcheck", "bot"), ("healthcheck", "worker")} <= commands
    for args in sorted(commands):
        proc = subprocess.run([sys.executable, "-c", "import sys; from console.cli import main; sys.exit(main())",
                               *args, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert proc.returncode == 0, f"aksdns {' '.join(args)}: {proc.stdout}{proc.stderr}"


def test_pod_guard_narrows_what_the_worker_may_create() -> None:
    docs = render()
    policy = one(docs, "ValidatingAdmissionPolicy", "-worker-pods")
    binding = one(docs, "ValidatingAdmissionPolicyBinding", "-worker-pods")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    spec = policy["spec"]
    assert spec["matchConstraints"]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}
    assert spec["matchConditions"][0]["expression"] == \
        f"request.userInfo.username == 'system:serviceaccount:{NAMESPACE}:{RELEASE}-aksdns-worker'"
    rules = " ".join(v["expression"] for v in spec["validations"])
    image = by_kind(docs, "ConfigMap")[0]["data"]["AKSDNS_PROBE_IMAGE"]
    assert f"c.image == '{image}'" in rules
    assert "x in variables.allowedCaps" in rules
    caps = {v["name"]: v["expression"] for v in spec["variables"]}["allowedCaps"]
    assert caps.endswith("? [] : []")  # no capabilities while capture is off
    capture = one(render([CHART / "ci" / "capture-values.yaml"]), "ValidatingAdmissionPolicy", "-worker-pods")
    caps = {v["name"]: v["expression"] for v in capture["spec"]["variables"]}["allowedCaps"]
    # With capture on, only capture pods (their role label) may add exactly NET_RAW and NET_ADMIN.
    assert "object.metadata.labels['aksdns.io/role'] == 'capture'" in caps
    assert caps.endswith("? ['NET_RAW', 'NET_ADMIN'] : []")
    assert not by_kind(render(sets={"podGuard.enabled": "false"}), "ValidatingAdmissionPolicy")
    # Ephemeral containers (capture only): the policy checks just the containers a request adds.
    assert not [d for d in by_kind(docs, "ValidatingAdmissionPolicy") if d["metadata"]["name"].endswith("-ephemeral")]
    eph = one(render([CHART / "ci" / "capture-values.yaml"]), "ValidatingAdmissionPolicy", "-worker-ephemeral")
    assert eph["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["pods/ephemeralcontainers"]
    assert "oldObject.spec.ephemeralContainers" in eph["spec"]["variables"][0]["expression"]
    checks = " ".join(v["expression"] for v in eph["spec"]["validations"])
    assert "c.name.startsWith('aksdns-capture-')" in checks and "'ALL' in c.securityContext.capabilities.drop" in checks


def test_packaged_chart_renders_like_the_source(tmp_path: Path) -> None:
    """`helm package` keeps every file the chart needs (.helmignore) and the archive renders the same."""
    run_helm(["package", str(CHART), "--destination", str(tmp_path)])
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    archive = tmp_path / f"aksdns-{chart['version']}.tgz"
    assert archive.exists()
    out = run_helm(["template", RELEASE, str(archive), "--namespace", NAMESPACE, "--kube-version", kube_version(),
                    "-f", str(CHART / "ci" / "http-values.yaml")]).stdout
    packaged = [d for d in yaml.safe_load_all(out) if d]
    source = render([CHART / "ci" / "http-values.yaml"])

    def names(docs: Sequence[Doc]) -> list[str]:
        return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)

    assert names(packaged) == names(source)


def test_coredns_custom_patch_appears_only_behind_the_switch() -> None:
    """`coredns-log` may patch coredns-custom, by name, only with rbac.verboseLog=true."""
    def patches(docs: Sequence[Doc]) -> list[Doc]:
        return [rule for d in docs if d["kind"] == "Role" for rule in d["rules"] if "patch" in rule["verbs"]
                and "configmaps" in rule["resources"]]

    assert patches(render()) == []
    (rule,) = patches(render(sets={"rbac.verboseLog": "true"}))
    assert rule["resourceNames"] == ["coredns-custom"] and rule["verbs"] == ["patch"]
