"""Capture containers: finding targets, ephemeral containers in them, capture pods on their nodes.

Most native first: an **ephemeral container** in the target pod (it shares the pod's network
namespace, so it sees exactly the pod's traffic; ``kubectl debug --profile=netadmin`` does the same).
Where the API or a policy refuses ephemeral containers, a **capture pod** on the target's node
(hostNetwork) captures at the pod's veth — every packet of the pod crosses it; entering the pod's own
network namespace, as Dumpy does, needs hostPID and CAP_SYS_ADMIN, which the chart's pod guard
forbids. A ``--node`` target is a capture pod in the node's host network.

Both carry the capture agent (``workers.probes.capture_agent``) as their command, exactly NET_RAW and
NET_ADMIN, and a deadline: the agent's own (an ephemeral container cannot be deleted), plus
``activeDeadlineSeconds`` and the pod runner's labels, expiry and janitor for capture pods. One capture
per target at a time: a running ``aksdns-capture-*`` ephemeral container, or the target's capture pod
(its name is derived from the target, so a second create fails with AlreadyExists), means busy; an
ephemeral container is added with the pod's resourceVersion, so two workers cannot both add one.

Kubernetes calls: get pods (targets), get nodes, list pods kube-system (CoreDNS), get services and list
endpointslices (kube-dns), update pods/ephemeralcontainers (target namespaces), create/get/delete pods
(release namespace), create pods/exec (target namespaces and the release namespace).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from aksdns.errors import ClusterError
from workers.evidence.capture import ClusterView, Role, Target, TargetProblem
from workers.probes import pods
from workers.probes.kube import KUBE_SYSTEM, REQUEST_TIMEOUT, Clients, call, get_service, is_not_found

ROLE = "capture"
CONTAINER = "capture"
EPHEMERAL_PREFIX = "aksdns-capture-"
TARGET_LABEL = "aksdns.io/capture-target"
TARGET_ANNOTATION = "aksdns.io/capture-target"
START_GRACE_S = 20  # scheduling, image pull and exec set-up before the capture's own duration counts
STOP_GRACE_S = 10  # after the duration: stopping, tcpdump's last packets
# What capture containers run with: the chart's capture securityContext (values.yaml capture.securityContext).
SECURITY_CONTEXT: dict[str, Any] = {
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]},
}


class EphemeralRefused(ClusterError):
    """The API server, or a policy on it, refuses ephemeral containers for this pod."""


class TargetBusy(ClusterError):
    """Another capture runs on this target."""


@dataclass(frozen=True)
class AgentSpec:
    """What every capture container of one run looks like."""

    run_id: str
    image: str
    command: tuple[str, ...]  # ("aksdns", "probe")
    deadline_s: int  # the agent's own deadline (the capture's duration plus the graces)
    job_id: str = ""
    requested_by: str = ""

    def argv(self) -> list[str]:
        return [*self.command, "capture-agent", "hold", "--run", self.run_id, "--deadline", str(self.deadline_s)]


def agent_deadline(duration_s: int) -> int:
    return int(duration_s + START_GRACE_S + STOP_GRACE_S)


# ---- targets -------------------------------------------------------------------------------------------


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _node_ready(c: Clients, name: str) -> bool | None:
    try:
        node: Any = call(f"get node {name}", c.core.read_node, name)
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise
    return any(x.type == "Ready" and x.status == "True" for x in (node.status.conditions or []))


def pod_target(c: Clients, namespace: str, name: str, role: Role) -> Target | TargetProblem:
    """A pod to capture on, or why it cannot be (missing, not Running, on a NotReady node)."""
    label = f"{namespace}/{name}"
    try:
        pod: Any = call(f"get pod {label}", c.core.read_namespaced_pod, name, namespace)
    except ClusterError as err:
        if is_not_found(err):
            return TargetProblem(label, "no such pod")
        raise
    return pod_target_from(c, pod, role)


def pod_target_from(c: Clients, pod: Any, role: Role) -> Target | TargetProblem:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    label = f"{meta.namespace}/{meta.name}"
    phase = status.phase if status else "Unknown"
    if meta.deletion_timestamp is not None:
        return TargetProblem(label, "is being deleted")
    if phase != "Running":
        return TargetProblem(label, f"is {phase}, not Running")
    if spec.host_network:
        return TargetProblem(label, "uses the host network: capture its node with --node instead")
    if spec.node_name and _node_ready(c, spec.node_name) is False:
        return TargetProblem(label, f"is on node {spec.node_name}, which is NotReady")
    return Target(role, meta.namespace, meta.name, spec.node_name or "", status.pod_ip or "", meta.uid or "")


def node_target(c: Clients, name: str) -> Target | TargetProblem:
    ready = _node_ready(c, name)
    if ready is None:
        return TargetProblem(f"node/{name}", "no such node")
    if not ready:
        return TargetProblem(f"node/{name}", "is NotReady")
    return Target(Role.NODE, "", name, name)


def coredns_targets(c: Clients) -> list[Target | TargetProblem]:
    pods_: Any = call("list CoreDNS pods in kube-system", c.core.list_namespaced_pod, KUBE_SYSTEM,
                 label_selector="k8s-app=kube-dns")
    return [pod_target_from(c, p, Role.COREDNS) for p in sorted(pods_.items, key=lambda p: p.metadata.name)]


def cluster_view(c: Clients) -> ClusterView:
    """kube-dns's Service IPs and Ready endpoints, and every CoreDNS pod's IP (for the per-hop view)."""
    svc = get_service(c)
    pods_: Any = call("list CoreDNS pods in kube-system", c.core.list_namespaced_pod, KUBE_SYSTEM,
                 label_selector="k8s-app=kube-dns")
    names = {p.status.pod_ip: p.metadata.name for p in pods_.items if p.status and p.status.pod_ip}
    return ClusterView(service_ips=(svc.ip,) if svc and svc.ip else (),
                       ready_endpoints=svc.endpoint_ips if svc else (), coredns_pods=names)


def pod_names_by_ip(c: Clients) -> dict[str, str]:
    """Pod IP -> namespace/name for every running pod (names in `--live` rows)."""
    listed: Any = call("list pods in all namespaces", c.core.list_pod_for_all_namespaces,
                  field_selector="status.phase=Running")
    return {p.status.pod_ip: f"{p.metadata.namespace}/{p.metadata.name}" for p in listed.items
            if p.status and p.status.pod_ip and not p.spec.host_network}


# ---- ephemeral containers ------------------------------------------------------------------------------


def ephemeral_name(run_id: str) -> str:
    return f"{EPHEMERAL_PREFIX}{run_id}"


def ephemeral_container(agent: AgentSpec) -> dict[str, Any]:
    """The debug container added to a target pod (pure: its safety is unit-tested)."""
    env = [{"name": "AKSDNS_CAPTURE_RUN", "value": agent.run_id},
           {"name": "AKSDNS_CAPTURE_EXPIRES", "value": str(int(time.time()) + agent.deadline_s)}]
    if agent.job_id:
        env.append({"name": "AKSDNS_JOB", "value": agent.job_id})
    if agent.requested_by:
        env.append({"name": "AKSDNS_REQUESTED_BY", "value": agent.requested_by})
    return {
        "name": ephemeral_name(agent.run_id),
        "image": agent.image,
        "imagePullPolicy": "IfNotPresent",
        "command": agent.argv(),
        "env": env,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": SECURITY_CONTEXT,
    }


def _state(status: Any) -> tuple[str, str]:
    """(running|terminated|waiting|unknown, detail) of a container status."""
    state = status.state if status is not None else None
    if state is None:
        return "unknown", ""
    if state.running is not None:
        return "running", ""
    if state.terminated is not None:
        t = state.terminated
        return "terminated", (t.message or t.reason or f"exit {t.exit_code}")
    if state.waiting is not None:
        return "waiting", state.waiting.reason or ""
    return "unknown", ""


def ephemeral_busy(pod: Any, now: float | None = None) -> str | None:
    """Another aksdns capture container still running in this pod: who runs it (None: free)."""
    now = time.time() if now is None else now
    statuses = {s.name: s for s in (pod.status.ephemeral_container_statuses or [])} if pod.status else {}
    for c in pod.spec.ephemeral_containers or []:
        if not c.name.startswith(EPHEMERAL_PREFIX):
            continue
        env = {e.name: e.value for e in c.env or []}
        state, _ = _state(statuses.get(c.name))
        try:
            expires = float(env.get("AKSDNS_CAPTURE_EXPIRES", "0"))
        except ValueError:
            expires = 0.0
        if state == "running" or (state in ("unknown", "waiting") and now < expires):
            who = env.get("AKSDNS_REQUESTED_BY", "")
            return f"capture {env.get('AKSDNS_CAPTURE_RUN', c.name)}" + (f" by {who}" if who else "")
    return None


def add_ephemeral(c: Clients, target: Target, container: dict[str, Any]) -> None:
    """Add the capture container to the target pod, atomically with the busy check."""
    for _attempt in range(3):
        pod: Any = call(f"get pod {target.label}", c.core.read_namespaced_pod, target.name, target.namespace)
        busy = ephemeral_busy(pod)
        if busy:
            raise TargetBusy(f"{target.label} is already being captured ({busy})")
        body = c.api.sanitize_for_serialization(pod)  # type: ignore[no-untyped-call]
        body["spec"]["ephemeralContainers"] = [*(body["spec"].get("ephemeralContainers") or []), container]
        try:
            c.core.replace_namespaced_pod_ephemeralcontainers(target.name, target.namespace, body,
                                                              _request_timeout=REQUEST_TIMEOUT)
            return
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 409:
                continue  # the pod changed since we read it: look again
            if status in (403, 404, 405, 422):
                raise EphemeralRefused(_refusal(status, _message(exc)), status=status) from None
            raise ClusterError(f"cannot add an ephemeral container to {target.label}: HTTP {status}",
                               status=status) from None
        except (HTTPError, OSError, TimeoutError) as exc:
            raise ClusterError(f"Kubernetes API unreachable while adding a capture container to {target.label}: "
                               f"{type(exc).__name__}") from None
    raise TargetBusy(f"{target.label} keeps changing; try again")


def _message(exc: ApiException) -> str:
    """The API server's own one-line reason (an admission policy's message, say)."""
    try:
        text = str(json.loads(exc.body or "{}").get("message", ""))
    except (ValueError, AttributeError):
        text = ""
    text = text.splitlines()[0] if text else ""
    return text.split("denied request: ", 1)[-1][:200]


def _refusal(status: int, reason: str) -> str:
    if status in (404, 405):
        return "this API server does not offer ephemeral containers"
    return "ephemeral containers are refused" + (f" ({reason[:200]})" if reason else "")


def wait_ephemeral(c: Clients, target: Target, name: str, wait_s: float) -> str:
    """Wait until the capture container runs; "" when it does, else why not."""
    deadline = time.monotonic() + wait_s
    detail = "not started"
    while time.monotonic() < deadline:
        pod: Any = call(f"get pod {target.label}", c.core.read_namespaced_pod, target.name, target.namespace)
        status = next((s for s in (pod.status.ephemeral_container_statuses or []) if s.name == name), None)
        state, detail = _state(status)
        if state == "running":
            return ""
        if state == "terminated":
            return f"the capture container ended at once: {detail or 'no reason given'}"[:200]
        time.sleep(0.25)
    return f"the capture container did not start ({detail or 'no status'})"


# ---- capture pods ---------------------------------------------------------------------------------------


def capture_pod_name(target: Target) -> str:
    """One name per target, so a second capture of it fails to create (AlreadyExists)."""
    digest = hashlib.sha256(target.label.encode()).hexdigest()[:12]
    return f"aksdns-capture-{digest}"


def capture_pod(agent: AgentSpec, target: Target, namespace: str, now: float | None = None) -> dict[str, Any]:
    """A capture pod in the node's host network on the target's node (pure: unit-tested)."""
    owner = pods.Owner(agent.run_id, agent.job_id, agent.requested_by)
    meta = pods.pod_metadata(capture_pod_name(target), namespace, ROLE, owner, agent.deadline_s, now)
    meta["labels"][TARGET_LABEL] = capture_pod_name(target).removeprefix("aksdns-capture-")
    meta["annotations"][TARGET_ANNOTATION] = target.label
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "nodeName": target.node,  # pinned: the target's node, no scheduler
            "hostNetwork": True,
            "dnsPolicy": "Default",
            "restartPolicy": "Never",
            "activeDeadlineSeconds": agent.deadline_s,
            "terminationGracePeriodSeconds": 2,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": CONTAINER,
                "image": agent.image,
                "imagePullPolicy": "IfNotPresent",
                "command": agent.argv(),
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"},
                              "limits": {"cpu": "500m", "memory": "128Mi"}},
                "securityContext": SECURITY_CONTEXT,
            }],
        },
    }


def create_capture_pod(c: Clients, body: dict[str, Any]) -> None:
    """Create it; a capture pod of the same target that still runs means busy (one that ended is replaced)."""
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    for _attempt in range(2):
        try:
            call(f"create pods in {ns}", c.core.create_namespaced_pod, ns, body)
            return
        except ClusterError as err:
            if err.status != 409:
                raise
        try:
            old: Any = call(f"get pod {ns}/{name}", c.core.read_namespaced_pod, name, ns)
        except ClusterError as err:
            if is_not_found(err):
                continue
            raise
        phase = old.status.phase if old.status else ""
        if phase in pods.TERMINAL_PHASES or pods.expired(old, time.time()):
            pods.delete_pod(c.core, ns, name)
            _wait_gone(c, ns, name, 15.0)
            continue
        who = (old.metadata.annotations or {}).get(pods.REQUESTED_BY_ANNOTATION, "")
        target = (old.metadata.annotations or {}).get(TARGET_ANNOTATION, name)
        raise TargetBusy(f"{target} is already being captured (pod {name}" + (f", by {who})" if who else ")"))
    raise TargetBusy(f"{name} could not be replaced; try again")


def _wait_gone(c: Clients, ns: str, name: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            call(f"get pod {ns}/{name}", c.core.read_namespaced_pod, name, ns)
        except ClusterError as err:
            if is_not_found(err):
                return
            raise
        time.sleep(0.25)


def wait_pod_running(c: Clients, ns: str, name: str, wait_s: float) -> str:
    """"" once the capture pod's container runs, else why not."""
    deadline = time.monotonic() + wait_s
    detail = "Pending"
    while time.monotonic() < deadline:
        pod: Any = call(f"get pod {ns}/{name}", c.core.read_namespaced_pod, name, ns)
        status = next((s for s in (pod.status.container_statuses or []) if s.name == CONTAINER), None)
        state, detail = _state(status)
        if state == "running":
            return ""
        if state == "terminated" or (pod.status and pod.status.phase in pods.TERMINAL_PHASES):
            return f"the capture pod ended at once: {detail or pod.status.phase}"[:200]
        detail = detail or (pod.status.phase if pod.status else "Pending")
        time.sleep(0.25)
    return f"the capture pod did not start ({detail})"


def busy_capture_pod(c: Clients, namespace: str, target: Target) -> str | None:
    """A capture pod of this target that still runs (the ephemeral path checks it too)."""
    try:
        old: Any = call(f"get pod {namespace}/{capture_pod_name(target)}", c.core.read_namespaced_pod,
                   capture_pod_name(target), namespace)
    except ClusterError as err:
        if is_not_found(err):
            return None
        raise
    if (old.status and old.status.phase in pods.TERMINAL_PHASES) or pods.expired(old, time.time()):
        return None
    who = (old.metadata.annotations or {}).get(pods.REQUESTED_BY_ANNOTATION, "")
    return f"pod {old.metadata.name}" + (f" by {who}" if who else "")
