"""The pod runner: the short-lived pods the worker creates (node probes, capture pods, ...).

Every pod aksdns creates carries the same labels (``app.kubernetes.io/managed-by=aksdns``, its
role, the run it belongs to), annotations naming the aksdns job and who asked, an expiry time and
``activeDeadlineSeconds``, so the kubelet ends it without any worker. :class:`PodRunner` creates a
run's pods in parallel, waits for them, reads their termination message or log, and deletes them
in ``finally``; :func:`run_to_completion` is the whole of it for pods that run once and end (node
probes); :func:`janitor` deletes what a killed worker left behind, past its expiry.

Kubernetes calls (verb, resource, namespace = the release namespace): create pods · list pods
(labelSelector aksdns.io/job=<run>) · get pods/log · delete pods · janitor: list pods
(managed-by=aksdns), delete pods.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Generic, TypeVar

from aksdns.errors import ClusterError
from workers.probes.kube import call

MANAGED_BY = "app.kubernetes.io/managed-by"
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
JOB_LABEL = "aksdns.io/job"  # the run: selects exactly the pods of one run
ROLE_LABEL = "aksdns.io/role"
EXPIRES_ANNOTATION = "aksdns.io/expires"  # epoch seconds after which the janitor may delete the pod
AKSDNS_JOB_ANNOTATION = "aksdns.io/aksdns-job"  # the aksdns job (thread) that asked for it
REQUESTED_BY_ANNOTATION = "aksdns.io/requested-by"  # the Slack user (or CLI user) who asked
EXPIRY_MARGIN_S = 30  # after activeDeadlineSeconds, before the janitor may remove it
POLL_S = 0.2
MAX_PARALLEL_CALLS = 16  # bounds concurrent API calls for runs over many nodes
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
T = TypeVar("T")


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Owner:
    """Whose pods these are: the run's id, and the aksdns job and user behind it."""

    run_id: str
    job_id: str = ""
    requested_by: str = ""


def pod_metadata(
    name: str, namespace: str, role: str, owner: Owner, deadline_s: int, now: float | None = None
) -> dict[str, Any]:
    """Labels and annotations every aksdns pod carries; the expiry outlives the deadline a little."""
    expires = int((now if now is not None else time.time()) + deadline_s + EXPIRY_MARGIN_S)
    annotations = {EXPIRES_ANNOTATION: str(expires)}
    if owner.job_id:
        annotations[AKSDNS_JOB_ANNOTATION] = owner.job_id
    if owner.requested_by:
        annotations[REQUESTED_BY_ANNOTATION] = owner.requested_by
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            MANAGED_BY: "aksdns",
            NAME_LABEL: "aksdns",
            COMPONENT_LABEL: role,
            JOB_LABEL: owner.run_id,
            ROLE_LABEL: role,
        },
        "annotations": annotations,
    }


@dataclass
class PodOutcome:
    """What became of one pod of a run."""

    name: str
    created: bool = False
    error: ClusterError | None = None  # the create failed (403, time-out, ...)
    pod: Any = None  # the last state seen
    done: bool = False  # reached Succeeded or Failed

    def terminated(self, container: str) -> Any:
        """The container's terminated state (exit code, reason, message), or None."""
        status = self.pod.status if self.pod is not None else None
        for cs in (status.container_statuses or []) if status else []:
            if cs.name == container and cs.state is not None and cs.state.terminated is not None:
                return cs.state.terminated
        return None

    def why_not_done(self, what: str = "pod") -> str:
        """A short reason for a pod that did not finish (Pending, image pull, ...)."""
        if self.pod is None:
            return f"{what} vanished"
        status = self.pod.status
        for cs in (status.container_statuses or []) if status else []:
            waiting = cs.state.waiting if cs.state else None
            if waiting is not None and waiting.reason:
                return f"{what} waiting: {waiting.reason}"
        phase = status.phase if status else "Unknown"
        return f"{what} still {phase} after the wait"


@dataclass
class PodRunner:
    """Creates, watches and deletes the pods of one run in the release namespace."""

    core: Any  # kubernetes.client.CoreV1Api
    namespace: str
    poll_s: float = POLL_S
    attempted: list[str] = field(default_factory=list)  # every name a create was sent for

    def create(self, bodies: Sequence[dict[str, Any]]) -> list[PodOutcome]:
        """Create the pods in parallel (one after another would delay the first by seconds)."""
        self.attempted += [b["metadata"]["name"] for b in bodies]
        with self._pool(len(bodies)) as pool:
            outcomes = list(pool.map(self._create_one, bodies))
        for o in outcomes:
            if o.error is not None and o.error.status is not None and 400 <= o.error.status < 500:
                self.attempted.remove(o.name)  # refused outright: nothing to delete
        return outcomes

    def wait(
        self,
        outcomes: Sequence[PodOutcome],
        run_id: str,
        wait_s: float,
        until: Callable[[Any], bool] = lambda pod: bool(pod.status and pod.status.phase in TERMINAL_PHASES),
    ) -> None:
        """Poll the run's pods until each created one satisfies ``until`` or ``wait_s`` runs out."""
        pending = {o.name: o for o in outcomes if o.created}
        deadline = time.monotonic() + wait_s
        while pending and time.monotonic() < deadline:
            listed = call(
                f"list aksdns pods in {self.namespace}",
                self.core.list_namespaced_pod,
                self.namespace,
                label_selector=f"{JOB_LABEL}={run_id}",
            )
            for pod in listed.items:
                outcome = pending.get(pod.metadata.name)
                if outcome is None:
                    continue
                outcome.pod = pod
                if until(pod):
                    outcome.done = True
                    del pending[pod.metadata.name]
            if pending:
                time.sleep(self.poll_s)

    def log(self, name: str, container: str) -> str:
        """A pod container's log (ClusterError when it cannot be read)."""
        return str(
            call(
                f"read the log of pod {name}",
                self.core.read_namespaced_pod_log,
                name,
                self.namespace,
                container=container,
            )
        )

    def delete_all(self) -> None:
        """Delete every pod a create was sent for (a timed-out create may still have landed)."""
        with self._pool(len(self.attempted)) as pool:
            list(pool.map(lambda name: delete_pod(self.core, self.namespace, name), self.attempted))
        self.attempted.clear()

    def _create_one(self, body: dict[str, Any]) -> PodOutcome:
        name = body["metadata"]["name"]
        try:
            call(f"create pods in {self.namespace}", self.core.create_namespaced_pod, self.namespace, body)
        except ClusterError as err:
            return PodOutcome(name, error=err)
        return PodOutcome(name, created=True)

    @contextmanager
    def _pool(self, n: int) -> Iterator[ThreadPoolExecutor]:
        pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_CALLS, n)), thread_name_prefix="aksdns-pods")
        try:
            yield pool
        finally:
            pool.shutdown(wait=True)


@contextmanager
def pod_run(core: Any, namespace: str) -> Iterator[PodRunner]:
    """A runner whose pods are deleted when the block ends, whatever happened in it."""
    runner = PodRunner(core, namespace)
    try:
        yield runner
    finally:
        runner.delete_all()


@dataclass(frozen=True)
class Collected(Generic[T]):
    """One pod of a finished run: what ``read`` made of it, or why there is nothing to read."""

    name: str
    value: T | None = None
    error: str = ""  # the create was refused or failed, or the pod did not finish in time


def run_to_completion(
    core: Any,
    namespace: str,
    run_id: str,
    bodies: Sequence[dict[str, Any]],
    wait_s: float,
    read: Callable[[PodRunner, PodOutcome], T],
    *,
    what: str = "pod",
    started: Callable[[int], None] | None = None,
) -> tuple[list[Collected[T]], list[str]]:
    """Create a run's pods, wait until they end, ``read`` each finished one; every pod deleted after.

    Results come in the order of ``bodies``. A refused create is that pod's error, never a raise, and a
    401/403 is also one note for the whole run (an RBAC-limited worker gets one line, not one per pod).
    ``started(n)`` is told how many pods were created before the wait.
    """
    notes: list[str] = []
    results: list[Collected[T]] = []
    with pod_run(core, namespace) as runner:
        outcomes = runner.create(bodies)
        for o in outcomes:
            if o.error is not None and o.error.status in (401, 403) and o.error.user_message not in notes:
                notes.append(o.error.user_message)
        created = sum(1 for o in outcomes if o.created)
        if started is not None and created:
            started(created)
        runner.wait(outcomes, run_id, wait_s)
        for o in outcomes:
            if o.error is not None:
                results.append(Collected(o.name, error=o.error.user_message))
            elif not o.done:
                results.append(Collected(o.name, error=o.why_not_done(what)))
            else:
                results.append(Collected(o.name, value=read(runner, o)))
    return results, notes


def delete_pod(core: Any, namespace: str, name: str) -> bool:
    """Delete one pod now (grace 0); a pod already gone is fine, other failures are left to the janitor."""
    try:
        call(f"delete pod {name}", core.delete_namespaced_pod, name, namespace, grace_period_seconds=0)
    except ClusterError:
        return False
    return True


def expired(pod: Any, now: float) -> bool:
    """Past its expiry annotation, or (without one) past its creation plus deadline and a minute."""
    annotations = pod.metadata.annotations or {}
    try:
        return now > float(annotations[EXPIRES_ANNOTATION])
    except (KeyError, ValueError):
        created = pod.metadata.creation_timestamp
        deadline = (pod.spec.active_deadline_seconds or 600) + 60
        if created is None:
            return True
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return bool(now > created.timestamp() + deadline)


def janitor(core: Any, namespace: str, now: float | None = None) -> int:
    """Delete aksdns pods of any role left behind past their expiry (a worker that died mid-job)."""
    now = time.time() if now is None else now
    pods = call(
        f"list aksdns pods in {namespace}",
        core.list_namespaced_pod,
        namespace,
        label_selector=f"{MANAGED_BY}=aksdns,{ROLE_LABEL}",
    )
    removed = 0
    for pod in pods.items:
        if expired(pod, now) and delete_pod(core, namespace, pod.metadata.name):
            removed += 1
    return removed
