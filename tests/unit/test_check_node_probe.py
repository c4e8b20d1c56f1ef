"""The node-level probe: the in-pod program against real loopback DNS servers, and the pod it runs in."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from workers.analysis.check_evidence import Layer
from workers.probes.node_probe import (
    EXPIRES_ANNOTATION,
    TERMINATION_LIMIT,
    ProbePlan,
    _expired,
    parse_probe_output,
    probe_main,
    probe_pod_manifest,
    termination_text,
)

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
