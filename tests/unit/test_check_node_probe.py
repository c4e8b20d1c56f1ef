"""The node-level probe: the in-pod program against real loopback DNS servers, and the pod it runs in."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from workers.evidence.layers import Layer
from workers.probes.node_probe import (
    TERMINATION_LIMIT,
    ProbePlan,
    parse_probe_output,
    probe_main,
    probe_pod_manifest,
    termination_text,
)
from workers.probes.pods import EXPIRES_ANNOTATION
from workers.probes.pods import expired as _expired

PLAN = ProbePlan(
    job_id="abc123def0",
    namespace="aksdns",
    image="aksdns:latest",
    command=("aksdns", "probe"),
    names=("microsoft.com", "db.contoso.internal"),
    repeat=2,
    timeout_s=1.0,
    azure_dns="127.0.0.1",
)


def run_probe(tmp_path: Path, resolv: str, port: int, *extra: str) -> tuple[int, dict, str]:
    (tmp_path / "resolv.conf").write_text(resolv)
    term = tmp_path / "termination-log"
    code = probe_main(
        [
            "node-dns",
            "--name",
            "microsoft.com",
            "--name",
            "db.contoso.internal",
            "--repeat",
            "2",
            "--timeout",
            "1",
            "--resolv-conf",
            str(tmp_path / "resolv.conf"),
            "--termination-log",
            str(term),
            "--node",
            "aks-nodepool1-17046773-vmss00000m",
            "--port",
            str(port),
            *extra,
        ]
    )
    text = term.read_text()
    return code, json.loads(text), text


def test_probe_program_queries_each_upstream(tmp_path: Path, dns_server_factory: Callable) -> None:
    server = dns_server_factory("answer", records={"microsoft.com.": ["192.0.2.20"]})
    code, out, text = run_probe(
        tmp_path, "nameserver 127.0.0.1\nsearch x.internal.cloudapp.net\n", server.server.port
    )
    assert code == 0 and out["node"] == "aks-nodepool1-17046773-vmss00000m"
    assert out["ns"] == ["127.0.0.1"] and out["search"] == ["x.internal.cloudapp.net"]
    probe, records = parse_probe_output(text, PLAN, "aks-nodepool1-17046773-vmss00000m")
    assert probe.ok and probe.nameservers == ("127.0.0.1",)
    assert len(records) == 2 * 2 * 2  # names × types × repeat
    assert {r.layer for r in records} == {Layer.NODE}
    assert {r.role for r in records} == {"azure_dns"}
    by = {(r.name, r.rdtype): r.status for r in records}
    assert by[("microsoft.com", "A")] == "NOERROR"
    assert by[("db.contoso.internal", "A")] == "NXDOMAIN"


def test_probe_program_reports_a_silent_upstream(tmp_path: Path, dns_server_factory: Callable) -> None:
    server = dns_server_factory("silent")
    code, _out, text = run_probe(tmp_path, "nameserver 127.0.0.1\n", server.server.port)
    assert code == 0
    _, records = parse_probe_output(text, PLAN, "n")
    assert records and all(r.status == "TIMEOUT" and r.latency_ms is None for r in records)


def test_probe_program_without_resolv_conf(tmp_path: Path) -> None:
    term = tmp_path / "t"
    code = probe_main(["--name", "x.com", "--resolv-conf", str(tmp_path / "missing"), "--termination-log", str(term)])
    assert code == 1
    probe, _ = parse_probe_output(term.read_text(), PLAN, "n")
    assert not probe.ok and "cannot read" in probe.error


def test_large_output_is_marked_truncated() -> None:
    out = {
        "v": 1,
        "node": "n",
        "names": ["a"],
        "ns": ["1.1.1.1"],
        "r": [[0, 0, "A", i, "NOERROR", 1.0] for i in range(400)],
    }
    line = json.dumps(out)
    text = termination_text(line, out)
    assert len(text.encode()) < TERMINATION_LIMIT and json.loads(text)["truncated"] is True
    probe, records = parse_probe_output(text, PLAN, "n")
    assert probe.error == "truncated" and not records


def test_probe_pod_is_safe_and_bounded() -> None:
    pod = probe_pod_manifest(PLAN, "aks-nodepool1-17046773-vmss00000n", 1, now=1000.0)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "aksdns"
    assert meta["labels"]["aksdns.io/job"] == "abc123def0"
    assert len(meta["name"]) <= 63
    assert spec["nodeName"] == "aks-nodepool1-17046773-vmss00000n"
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "Default"
    assert spec["restartPolicy"] == "Never"
    assert 0 < spec["activeDeadlineSeconds"] <= 120
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["automountServiceAccountToken"] is False
    c = spec["containers"][0]
    assert c["command"][:3] == ["aksdns", "probe", "node-dns"]
    assert c["command"].count("--name") == 2 and "--repeat" in c["command"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["limits"]
    assert float(meta["annotations"][EXPIRES_ANNOTATION]) > 1000 + spec["activeDeadlineSeconds"]


def test_janitor_expiry() -> None:
    pod = SimpleNamespace(
        metadata=SimpleNamespace(annotations={EXPIRES_ANNOTATION: "2000"}, creation_timestamp=None),
        spec=SimpleNamespace(active_deadline_seconds=60),
    )
    assert not _expired(pod, 1999.0)
    assert _expired(pod, 2001.0)


# ---------------------------------------------------------------------------- worker side with a fake API


class FakeCore:
    """Records calls; every created pod finishes at once with the given termination message."""

    def __init__(self, message: str = "", *, create_status: int | None = None, list_fails: bool = False) -> None:
        self.message = message
        self.create_status = create_status
        self.list_fails = list_fails
        self.pods: dict[str, dict] = {}
        self.deleted: list[str] = []

    def create_namespaced_pod(self, namespace: str, body: dict, **_: object) -> None:
        if self.create_status:
            from kubernetes.client.exceptions import ApiException

            raise ApiException(status=self.create_status, reason="Forbidden")
        self.pods[body["metadata"]["name"]] = body

    def list_namespaced_pod(self, namespace: str, label_selector: str = "", **_: object) -> SimpleNamespace:
        if self.list_fails:
            from urllib3.exceptions import ReadTimeoutError

            raise ReadTimeoutError(None, "/", "read timed out")  # type: ignore[arg-type]
        items = []
        for name in self.pods:
            term = SimpleNamespace(message=self.message, exit_code=0)
            cs = SimpleNamespace(name="probe", state=SimpleNamespace(terminated=term, waiting=None))
            items.append(
                SimpleNamespace(
                    metadata=SimpleNamespace(name=name),
                    status=SimpleNamespace(phase="Succeeded", container_statuses=[cs]),
                )
            )
        return SimpleNamespace(items=items)

    def read_namespaced_pod_log(self, name: str, namespace: str, **_: object) -> str:
        return self.message

    def delete_namespaced_pod(self, name: str, namespace: str, **_: object) -> None:
        self.deleted.append(name)
        self.pods.pop(name, None)


def _message(node: str) -> str:
    return json.dumps(
        {
            "v": 1,
            "node": node,
            "names": ["microsoft.com"],
            "ns": ["127.0.0.1"],
            "search": [],
            "ndots": 1,
            "error": "",
            "r": [[0, 0, "A", 1, "NOERROR", 1.5], [0, 0, "AAAA", 1, "TIMEOUT", 1000]],
        }
    )


def test_run_node_probes_collects_and_deletes() -> None:
    from workers.probes.node_probe import run_node_probes

    core = FakeCore(_message("n1"))
    probes, records, notes = run_node_probes(core, PLAN, ["n1", "n2"])
    assert [p.node for p in probes] == ["n1", "n2"] and all(p.ok for p in probes)
    assert len(records) == 4 and {r.status for r in records} == {"NOERROR", "TIMEOUT"}
    assert sorted(core.deleted) == ["aksdns-probe-abc123def0-0", "aksdns-probe-abc123def0-1"]
    assert not core.pods and not notes


def test_probe_pods_are_deleted_when_the_wait_fails() -> None:
    import pytest

    from aksdns.errors import ClusterError
    from workers.probes.node_probe import run_node_probes

    core = FakeCore(_message("n1"), list_fails=True)
    with pytest.raises(ClusterError):
        run_node_probes(core, PLAN, ["n1", "n2"])
    assert not core.pods and len(core.deleted) == 2


def test_refused_creation_is_a_note() -> None:
    from workers.probes.node_probe import run_node_probes

    core = FakeCore(create_status=403)
    probes, records, notes = run_node_probes(core, PLAN, ["n1", "n2"])
    assert not records and all(not p.ok for p in probes)
    assert len(notes) == 1 and "RBAC" in notes[0]
    assert core.deleted == []


def test_aksdns_probe_dispatches_by_kind(tmp_path: Path, capsys: object) -> None:
    from workers.probes import programs

    term = tmp_path / "termination-log"
    code = programs.main(["node-dns", "--name", "x.com", "--resolv-conf", str(tmp_path / "missing"),
                          "--termination-log", str(term)])
    assert code == 1 and "cannot read" in json.loads(term.read_text())["error"]
    assert programs.main(["rm", "-rf"]) == 2
