"""`apiserver`'s node probe pods through the pod runner, against a fake CoreV1Api: one run per node in node
order, a pod that never finishes, a log the API server cannot fetch (the tunnel), a refused create."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException

from workers.evidence.apiserver import EndpointProbe, Stage
from workers.evidence.plain import to_plain
from workers.probes.apiserver_nodes import OUTPUT_VERSION, ProbePlan, Target, run_node_probes


class QuickPlan(ProbePlan):
    @property
    def wait_s(self) -> float:  # a stuck pod is given up on at once here
        return 0.5


PLAN = QuickPlan(run_id="r1", namespace="aksdns", image="aksdns:test", command=("aksdns", "probe"),
                 targets=(Target("kubernetes endpoint", "10.224.0.1", 443, "kubernetes.default.svc"),))


def _output(node: str) -> str:
    probe = EndpointProbe(vantage=node, target="pod environment", host="10.224.0.1", port=443,
                          server_name="10.224.0.1", connect=Stage(ok=True, ms=1.0))
    return json.dumps({"v": OUTPUT_VERSION, "node": node, "probes": to_plain([probe]), "error": ""})


class FakeCore:
    """Pods on ``stuck`` nodes stay Pending; logs of pods on ``no_log`` nodes fail like a broken tunnel."""

    def __init__(self, *, stuck: tuple[str, ...] = (), no_log: tuple[str, ...] = (), refuse: int = 0) -> None:
        self.stuck, self.no_log, self.refuse = stuck, no_log, refuse
        self.pods: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []

    def create_namespaced_pod(self, namespace: str, body: dict[str, Any], **_: object) -> None:
        if self.refuse:
            raise ApiException(status=self.refuse, reason="Forbidden")
        self.pods[body["metadata"]["name"]] = body

    def list_namespaced_pod(self, namespace: str, label_selector: str = "", **_: object) -> SimpleNamespace:
        items = []
        for name, body in self.pods.items():
            node = body["spec"]["nodeName"]
            if node in self.stuck:
                status = SimpleNamespace(phase="Pending", container_statuses=[SimpleNamespace(
                    name="probe", state=SimpleNamespace(terminated=None,
                                                        waiting=SimpleNamespace(reason="ContainerCreating")))])
            else:
                term = SimpleNamespace(message=_output(node), exit_code=0)
                status = SimpleNamespace(phase="Succeeded", container_statuses=[SimpleNamespace(
                    name="probe", state=SimpleNamespace(terminated=term, waiting=None))])
            items.append(SimpleNamespace(metadata=SimpleNamespace(name=name), status=status))
        return SimpleNamespace(items=items)

    def read_namespaced_pod_log(self, name: str, namespace: str, **_: object) -> str:
        node = self.pods[name]["spec"]["nodeName"]
        if node in self.no_log:
            raise ApiException(status=500, reason="Internal Server Error")
        return _output(node)

    def delete_namespaced_pod(self, name: str, namespace: str, **_: object) -> None:
        self.deleted.append(name)
        self.pods.pop(name, None)


def test_each_node_gets_a_run_in_order_and_every_pod_is_deleted() -> None:
    core = FakeCore(stuck=("n2",), no_log=("n3",))
    found, runs, notes = run_node_probes(core, PLAN, ["n1", "n2", "n3"])
    assert [r.node for r in runs] == ["n1", "n2", "n3"] and notes == []
    n1, n2, n3 = runs
    assert n1.ok and n1.log_read is True
    assert not n2.ok and n2.error == "probe pod waiting: ContainerCreating"
    # The probe ran (its termination message says so); only the API server → node log read failed.
    assert n3.ok and n3.log_read is False and "500" in n3.log_error
    assert {p.vantage for p in found} == {"n1", "n3"}
    assert sorted(core.deleted) == [f"aksdns-api-r1-{i}" for i in range(3)] and not core.pods


def test_a_refused_create_is_one_note_for_the_run() -> None:
    core = FakeCore(refuse=403)
    found, runs, notes = run_node_probes(core, PLAN, ["n1", "n2"])
    assert found == [] and [r.node for r in runs] == ["n1", "n2"] and not any(r.ok for r in runs)
    assert len(notes) == 1 and "403" in notes[0] and "\n" not in notes[0]
    assert core.deleted == []
