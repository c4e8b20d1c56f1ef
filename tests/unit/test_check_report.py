"""The check report (summary per layer, facts, hypotheses, attachments, buttons) and the run diff."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from aksdns.commands import CheckCommand, DnsServer
from aksdns.grammar import command_from_dict
from workers.analysis.check_diff import rerun_basis
from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.rerun_diff import Basis, diff, lines, sections
from workers.evidence.cluster import CorednsPod, CustomDns, Forwarder, NodeInfo, ServiceInfo
from workers.evidence.dns import QueryResult
from workers.jobs.check import (
    build_report,
    forwarder_queries,
    plan_queries,
    plan_walks,
    pod_style_search,
    probe_names,
    sample_nodes,
    walks_of,
)
from workers.probes.resolvconf import parse_resolv_conf
from workers.report import Hypothesis, Markdown, Status, StatusLine, Table

DATA = Path(__file__).parent / "data" / "check"
CMD = CheckCommand(names=(), repeat=3)


def load(name: str) -> CheckEvidence:
    return CheckEvidence.from_dict(json.loads((DATA / f"{name}.json").read_text()))


def test_report_shape_healthy() -> None:
    report = build_report(CMD, load("healthy"))
    assert report.status is Status.OK
    assert report.summary.startswith("All healthy")
    lines = [s for s in report.sections if isinstance(s, StatusLine)]
    assert [x.label for x in lines] == ["CoreDNS pods", "CoreDNS Service", "Nodes", "Virtual network DNS"]
    assert report.sections.index(lines[0]) == 0  # the compact summary comes first
    assert isinstance(report.sections[4], Table)
    assert any(isinstance(s, Hypothesis) for s in report.sections)
    names = {a.filename for a in report.attachments}
    assert names == {"aksdns-check-aks-prod-weu.json", "aksdns-check-aks-prod-weu.csv"}
    rerun, capture = report.buttons
    assert rerun.action_id == "aksdns_rerun" and command_from_dict(json.loads(rerun.value)) == CMD
    assert capture.action_id == "aksdns_capture" and capture.style == "danger"


def test_report_fault_status_and_data() -> None:
    report = build_report(CMD, load("one_pod_dead"))
    assert report.status is Status.FAIL
    assert "coredns-57d886c994-x9wqz" in report.summary
    data = report.data
    assert data["hypotheses"][0]["rule"] == "one_coredns_pod"
    assert {x["layer"] for x in data["layers"]} == {"CoreDNS pods", "CoreDNS Service", "Nodes", "Virtual network DNS"}
    assert CheckEvidence.from_dict(data["evidence"]) == load("one_pod_dead")
    json.dumps(data)  # --format json must serialise


def test_csv_has_every_probe() -> None:
    ev = load("upstream_dead")
    report = build_report(CMD, ev)
    content = next(a for a in report.attachments if a.filename.endswith(".csv")).content.decode()
    rows = list(csv.DictReader(io.StringIO(content)))
    assert len(rows) == len(ev.probes)
    assert {r["layer"] for r in rows} == {"coredns_pod", "service", "node", "vnet_dns"}


def test_rerun_diff() -> None:
    before = rerun_basis(build_report(CMD, load("one_pod_dead")))
    after = rerun_basis(build_report(CMD, load("healthy")))
    assert len(json.dumps(before)) < 20_000 and "evidence" not in before  # a few kB, not every probe
    d = diff(Basis.from_dict(before), Basis.from_dict(after))
    assert not d.unchanged
    assert {c.name for c in d.changed if c.after == "ok"} >= {"CoreDNS pods", "CoreDNS Service"}
    text = "\n".join(s.text for s in sections(d) if isinstance(s, Markdown))
    assert "no longer: One CoreDNS pod misbehaves" in text and "❌ → ✅" in text
    tables = {t.title: t for t in sections(d) if isinstance(t, Table)}
    assert ("CoreDNS pods · failed queries", "16", "0") in tables["Figures that moved"].rows
    assert "CoreDNS pods: ❌ → ✅" in lines(d)
    same = diff(Basis.from_dict(after), Basis.from_dict(after))
    assert same.unchanged and "nothing changed" in sections(same)[0].text  # type: ignore[union-attr]
    assert lines(same) == []
    # A healthy layer rules its hypotheses out, with the layer's line as evidence.
    ruled = {r.hypothesis: r.evidence for r in Basis.from_dict(after).ruled_out}
    assert any(e.startswith("CoreDNS pods: ") for e in ruled.values())
    assert not any("CoreDNS pods are down" in h for h in (r.hypothesis for r in Basis.from_dict(before).ruled_out))


def test_probe_names() -> None:
    assert probe_names(CheckCommand(), "microsoft.com") == ("kubernetes.default.svc.cluster.local", "microsoft.com")
    assert probe_names(CheckCommand(names=("a.com", "a.com.", "b.org")), "microsoft.com") == (
        "kubernetes.default.svc.cluster.local",
        "a.com",
        "b.org",
    )


def test_node_sample() -> None:
    nodes = [NodeInfo(f"n{i}", ready=i != 2) for i in range(6)]
    pods = [CorednsPod("c1", "10.244.4.2", "n4", "Running", True)]
    chosen, skipped = sample_nodes(nodes, pods, None)
    assert chosen == ["n4", "n0", "n1"]  # CoreDNS hosts first, NotReady never
    assert "n2 (NotReady)" in skipped
    assert sample_nodes(nodes, pods, 0)[0] == ["n4", "n0", "n1", "n3", "n5"]
    assert sample_nodes(nodes, pods, 1)[0] == ["n4"]


def test_plan_queries_cover_every_layer() -> None:
    pods = (
        CorednsPod("c1", "10.244.0.5", "n1", "Running", True),
        CorednsPod("c2", "10.244.1.7", "n2", "Running", True),
    )
    svc = ServiceInfo("kube-dns", "10.0.0.10")
    custom = CustomDns(
        present=True, keys=("c.server",), forwarders=(Forwarder("c.server", "contoso.corp", ("10.10.0.4",)),)
    )
    names = ("kubernetes.default.svc.cluster.local", "microsoft.com", "app.contoso.corp")
    queries, tags = plan_queries(names, pods, svc, "168.63.129.16", custom, repeat=2)
    per_layer: dict[str, int] = {}
    for t in tags:
        per_layer[t.layer] = per_layer.get(t.layer, 0) + 1
    assert per_layer["coredns_pod"] == 2 * 3 * 2 * 2
    assert per_layer["service"] == 3 * 2 * 2
    # Azure DNS: external names only, A and AAAA; the forwarder: its zone's name only, A.
    assert per_layer["vnet_dns"] == 2 * 2 * 2 + 2
    fwd = [q for q, t in zip(queries, tags, strict=True) if t.role == "coredns_forwarder"]
    assert {(q.server, q.name) for q in fwd} == {(DnsServer("10.10.0.4"), "app.contoso.corp")}
    assert forwarder_queries(custom, ["microsoft.com"]) == [("10.10.0.4", "contoso.corp")]


def test_search_walk_replays_a_stub_resolver() -> None:
    conf, synthesized = pod_style_search(
        parse_resolv_conf("nameserver 10.224.0.254\nsearch testbed.internal\n"), "aksdns"
    )
    assert synthesized and conf.ndots == 5 and conf.search[0] == "aksdns.svc.cluster.local"
    server = DnsServer("10.0.0.10")
    queries, keys = plan_walks(["microsoft.com"], conf, server)
    assert len(queries) == 2 * 5  # 4 search domains + the name itself, A and AAAA
    results = [
        QueryResult(server, q.name, q.rdtype, 1, "NXDOMAIN" if q.name != "microsoft.com." else "NOERROR", 1.0, ())
        for q in queries
    ]
    (walk,) = walks_of(conf, synthesized, server, keys, results)
    assert walk.answered_by == "microsoft.com." and walk.queries == 10 and walk.statuses[-1] == "NOERROR"
    pod_conf, synth = pod_style_search(parse_resolv_conf("search default.svc.cluster.local svc.cluster.local\n"), "x")
    assert not synth and pod_conf.search == ("default.svc.cluster.local", "svc.cluster.local")


def test_forwarder_addresses() -> None:
    from workers.evidence.cluster import server_of

    assert server_of("10.0.0.4") == DnsServer("10.0.0.4")
    assert server_of("10.0.0.4:5353") == DnsServer("10.0.0.4", 5353)
    assert server_of("[fd00::4]:5353") == DnsServer("fd00::4", 5353)
    assert server_of("fd00::4") == DnsServer("fd00::4")
