"""The facts table (one line per baseline question) and the per-layer summary lines."""

from __future__ import annotations

import json
from pathlib import Path

from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.check_facts import QUESTIONS, facts_table, layer_lines, tally
from workers.analysis.figures import percentile
from workers.evidence.layers import Layer
from workers.report import Status

DATA = Path(__file__).parent / "data" / "check"


def load(name: str) -> CheckEvidence:
    return CheckEvidence.from_dict(json.loads((DATA / f"{name}.json").read_text()))


def answers(name: str) -> dict[str, str]:
    return dict(facts_table(load(name)).rows)


def test_every_baseline_question_has_one_line() -> None:
    table = facts_table(load("healthy"))
    questions = [q for q, _ in table.rows]
    assert questions[: len(QUESTIONS)] == list(QUESTIONS)
    assert len(questions) == len(set(questions))


def test_healthy_is_all_green() -> None:
    lines = layer_lines(load("healthy"))
    assert [line.label for line in lines] == ["CoreDNS pods", "CoreDNS Service", "Nodes", "Virtual network DNS"]
    assert all(line.status is Status.OK for line in lines), lines
    a = answers("healthy")
    assert a[QUESTIONS[0]].startswith("Nowhere")
    assert a[QUESTIONS[1]] == "None"


def test_where_pod_node_both() -> None:
    assert answers("one_pod_dead")[QUESTIONS[0]].startswith("Pod")
    assert answers("node_upstream_unreachable")[QUESTIONS[0]].startswith("Node")
    assert answers("upstream_dead")[QUESTIONS[0]] == "Both pods and nodes"


def test_kind_of_error() -> None:
    assert "time-out" in answers("service_kube_proxy")[QUESTIONS[1]]
    assert "no such host" in answers("private_zone")[QUESTIONS[1]]
    assert "SERVFAIL" in answers("upstream_servfail")[QUESTIONS[1]]


def test_how_often_and_patterns() -> None:
    assert answers("service_kube_proxy")[QUESTIONS[2]].startswith("Always")
    drops = answers("upstream_drops")[QUESTIONS[2]]
    assert drops.startswith("Intermittently") and "%" in drops
    assert "AAAA only" in answers("conntrack_race")[QUESTIONS[2]]
    assert "SERVFAIL after ~6" in answers("upstream_dead")[QUESTIONS[2]]
    assert "one CoreDNS pod (coredns-57d886c994-x9wqz)" in answers("one_pod_dead")[QUESTIONS[2]]


def test_which_records() -> None:
    assert answers("private_zone")[QUESTIONS[3]] == "A specific domain: mydb.privatelink.database.windows.net"
    assert answers("service_kube_proxy")[QUESTIONS[3]].startswith("Any domain")


def test_custom_dns() -> None:
    text = answers("custom_vnet_dns_healthy")[QUESTIONS[4]]
    assert "Custom DNS server on the virtual network: 10.1.0.4" in text
    assert "coredns-custom" in text
    text = answers("custom_forwarder_dead")[QUESTIONS[4]]
    assert "forward contoso.corp → 10.10.0.4" in text
    assert "No CoreDNS custom configuration" in answers("healthy")[QUESTIONS[4]]


def test_performance_rows() -> None:
    a = answers("coredns_oom")
    assert "140%" in a[QUESTIONS[5]]  # 6044m of 4300m is 140.56 %: kubectl (and the guide) print 140 %
    assert "OOMKilled" in a[QUESTIONS[6]] and "7 restarts" in a[QUESTIONS[6]]


def test_latency_row() -> None:
    assert "at or after 5.0 s" in answers("upstream_slow")[QUESTIONS[7]]
    assert answers("healthy")[QUESTIONS[7]].startswith("No answer took 5 s")


def test_search_cost_row() -> None:
    assert "8 queries" in facts_table(load("healthy")).rows[-1][1]


def test_layer_lines_for_faults() -> None:
    by = {line.label: line.status for line in layer_lines(load("one_pod_dead"))}
    assert by["CoreDNS pods"] is Status.FAIL and by["Nodes"] is Status.OK
    by = {line.label: line.status for line in layer_lines(load("service_no_endpoints"))}
    assert by["CoreDNS Service"] is Status.FAIL and by["CoreDNS pods"] is Status.OK
    by = {line.label: line.status for line in layer_lines(load("upstream_dead"))}
    assert by["Virtual network DNS"] is Status.FAIL
    vnet = next(line for line in layer_lines(load("custom_vnet_dns_healthy")) if line.label == "Virtual network DNS")
    assert "custom VNet DNS server 10.1.0.4" in vnet.detail


def test_tally_and_percentile() -> None:
    t = tally(load("upstream_dead").records(Layer.VNET_DNS))
    assert t.timeouts == t.total and t.fail_share == 1.0
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([], 95, empty=0.0) == 0.0


def test_evidence_round_trips() -> None:
    for path in DATA.glob("*.json"):
        ev = load(path.stem)
        assert CheckEvidence.from_dict(json.loads(json.dumps(ev.to_dict()))) == ev


def test_pod_usage_says_why_it_is_missing() -> None:
    import dataclasses

    from workers.evidence.health import PodHealth, Resources, Usage

    ev = load("healthy")
    pods = tuple(PodHealth(name=p.name, node="n1", ip="10.244.0.2", phase="Running", ready=True,
                           resources=Resources("100m", "3", "70Mi", "500Mi")) for p in ev.coredns_pods)
    row = QUESTIONS[6]

    def answer(**kw: object) -> str:
        table = facts_table(dataclasses.replace(ev, **{"pod_health": pods, **kw}))  # type: ignore[arg-type]
        return next(cells[1] for cells in table.rows if cells[0] == row)

    used = tuple(dataclasses.replace(p, usage=Usage(4, 58)) for p in pods)
    assert "4m CPU / 3 limit, 58Mi / 500Mi limit (kubectl top)" in answer(metrics_available=True, pod_health=used)
    assert "usage not in metrics.k8s.io yet" in answer(metrics_available=True)  # metrics-server not scraped yet
    assert "usage unknown: metrics.k8s.io unavailable" in answer(metrics_available=False)


def test_ages_read_as_kubectl_shows_them_in_check_and_health() -> None:
    import dataclasses

    from workers.analysis.figures import age_text, ago

    assert [ago(s) for s in (None, 5, 119.4, 120, 7199, 7200, 172799, 172800)] == \
        ["?", "5s", "119s", "2m", "120m", "2h", "48h", "2d"]
    assert [age_text(s) for s in (None, 89.4, 90, 5399, 5400, 172800)] == ["?", "89 s", "2 min", "90 min", "2 h", "2 d"]
    ev = load("healthy")
    restarted = tuple(dataclasses.replace(p, restarts=2, last_reason="OOMKilled", oom_killed=True,
                                          last_restart_age_s=540.0) for p in ev.coredns_pods)
    table = facts_table(dataclasses.replace(ev, coredns_pods=restarted))
    answer = next(cells[1] for cells in table.rows if cells[0] == QUESTIONS[6])
    assert "2 restarts (" in answer and ", 9m ago)" in answer, answer
