"""`service`: the ladder, its rules and NetworkPolicy semantics on evidence built by hand and recorded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from aksdns.commands import ObjectRef, ServiceCommand
from workers.analysis import rerun_diff
from workers.analysis.service_evidence import DnsProbe, ServiceEvidence, WorkerIdentity
from workers.analysis.service_ladder import ladder, plan_targets
from workers.analysis.service_policy import Source, decide, policy_text, selects
from workers.analysis.service_rules import diagnose
from workers.evidence.service import (
    ConnectResult,
    ContainerPort,
    EndpointAddress,
    EndpointPort,
    EndpointSet,
    IngressRule,
    KubeProxyPod,
    LabelSelector,
    NetworkPolicyInfo,
    PodBrief,
    PolicyPeer,
    PolicyPort,
    ServicePort,
    ServiceSpec,
)
from workers.jobs import rerun_basis
from workers.jobs.service import build_report
from workers.report import Status

DATA = Path(__file__).parent / "data" / "service"
NS = "shop"
NODES = ("node-a", "node-b", "node-c")
CIP = "10.0.40.7"


def pod(i: int, *, labels: dict[str, str] | None = None, port: int = 8080, ready: bool = True) -> PodBrief:
    return PodBrief(NS, f"web-{i}", NODES[i], f"10.244.{i}.5", "Running", ready, labels or {"app": "web"},
                    (ContainerPort("web", port, "http"),))


def spec(*, selector: dict[str, str] | None = None, target: str = "http") -> ServiceSpec:
    ports = (ServicePort(80, target, "TCP", "http"),)
    return ServiceSpec(NS, "web", "ClusterIP", CIP, selector or {"app": "web"}, ports)


def slices(pods: list[PodBrief], port: int = 8080, ready: bool = True) -> EndpointSet:
    return EndpointSet("endpointslices", tuple(EndpointAddress(p.ip, p.name, p.node, ready) for p in pods),
                       (EndpointPort(port, "http"),), 1)


def connects(targets: list[str], status: dict[tuple[str, str], str] | None = None,
             cluster: str = "open") -> tuple[ConnectResult, ...]:
    out = []
    for source in ("worker", *NODES):
        ip = "10.224.0.1" if source == "worker" else f"10.224.0.{4 + NODES.index(source)}"
        for t in targets:
            st = (status or {}).get((source, t), "open")
            out.append(ConnectResult(source, t, "endpoint", st, 1.0 if st == "open" else None, ip,
                                     f"web-{t.split('.')[2]}"))
        out.append(ConnectResult(source, f"{CIP}:80", "cluster_ip", cluster, 1.0 if cluster == "open" else None, ip))
    return tuple(out)


def evidence(**kw: object) -> ServiceEvidence:
    pods = [pod(0), pod(1)]
    base = ServiceEvidence(
        cluster="t", namespace=NS, name="web", service=spec(),
        dns=(DnsProbe("10.0.0.10:53", "kube-dns Service", "NOERROR", (CIP,), 1.2),),
        slices=slices(pods), pods=tuple(pods),
        namespaces={NS: {"kubernetes.io/metadata.name": NS}},
        kube_proxy=tuple(KubeProxyPod(f"kube-proxy-{n}", n, True) for n in NODES),
        connects=connects([f"{p.ip}:8080" for p in pods]),
        worker=WorkerIdentity("aksdns", None), nodes=NODES,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def verdict(ev: ServiceEvidence) -> str:
    return diagnose(ev)[0].rule


def statuses(ev: ServiceEvidence) -> dict[str, str]:
    return {r.key: r.status.value for r in ladder(ev)}


def test_healthy_service_climbs_every_rung() -> None:
    ev = evidence()
    assert verdict(ev) == "all_healthy"
    assert set(statuses(ev).values()) == {"ok"}
    report = build_report(ServiceCommand(ref=ObjectRef(NS, "web")), ev)
    assert report.status is Status.OK and report.data["verdict"] is None


def test_missing_service_names_the_similar_ones() -> None:
    ev = dataclasses.replace(evidence(), service=None, other_services=("web-svc", "api"))
    top = diagnose(ev)[0]
    assert top.rule == "exists" and any("web-svc" in e for e in top.hypothesis.evidence)
    assert [f.rule for f in diagnose(ev)] == ["exists"]


def test_wrong_selector_shows_the_nearest_labels_and_the_patch() -> None:
    ev = evidence(service=spec(selector={"app": "webapp"}), slices=EndpointSet("endpointslices", (), (), 1),
                  connects=connects([], cluster="refused"))
    found = diagnose(ev)
    assert [f.rule for f in found] == ["selector"]  # endpoints, connects: consequences
    evidence_text = " ".join(found[0].hypothesis.evidence)
    assert "web-0: app=web (wants app=webapp)" in evidence_text
    assert any('patch service web --type merge -p \'{"spec":{"selector":{"app":"web"}}}\'' in a
               for a in found[0].hypothesis.actions)


def test_target_port_not_declared_and_refused() -> None:
    pods = [pod(0), pod(1)]
    targets = [f"{p.ip}:8081" for p in pods]
    ev = evidence(service=spec(target="8081"), slices=slices(pods, 8081),
                  connects=connects(targets, {(s, t): "refused" for s in ("worker", *NODES) for t in targets},
                                    cluster="refused"))
    found = diagnose(ev)
    assert found[0].rule == "target_port"
    assert [f.rule for f in found] == ["target_port"]
    assert "8081" in found[0].hypothesis.evidence[0] and "http 8080/TCP" in found[0].hypothesis.evidence[0]


def test_named_target_port_missing_from_the_pods() -> None:
    ev = evidence(service=spec(target="web-http"), slices=EndpointSet("endpointslices", (), (), 1),
                  connects=connects([], cluster="refused"))
    assert [f.rule for f in diagnose(ev)] == ["target_port"]


def test_declared_port_that_refuses_is_a_backend_not_listening() -> None:
    pods = [pod(0), pod(1)]
    targets = [f"{p.ip}:8080" for p in pods]
    ev = evidence(connects=connects(targets, {(s, t): "refused" for s in ("worker", *NODES) for t in targets},
                                    cluster="refused"))
    found = diagnose(ev)
    assert [f.rule for f in found] == ["backend"]
    assert "nothing listens" in found[0].hypothesis.evidence[0]


def deny_all() -> NetworkPolicyInfo:
    return NetworkPolicyInfo(NS, "deny-web", LabelSelector({"app": "web"}), ("Ingress",), ())


def test_enforced_deny_policy_is_named_with_its_rule() -> None:
    pods = [pod(0), pod(1)]
    targets = [f"{p.ip}:8080" for p in pods]
    dropped = {}
    for s in ("worker", *NODES):
        for i, t in enumerate(targets):
            if s != NODES[i]:  # the pod's own node is always allowed
                dropped[(s, t)] = "timeout"
    ev = evidence(policies=(deny_all(),), connects=connects(targets, dropped, cluster="timeout"))
    found = diagnose(ev)
    assert [f.rule for f in found] == ["network_policy"]
    assert any("no ingress rule, so it drops every incoming connection" in e for e in found[0].hypothesis.evidence)


def test_rerun_basis_compares_rungs_and_failed_connects() -> None:
    """The thread keeps each rung's verdict and the failed connects per vantage point; a Re-run after the
    policy is removed says which finding went, which rung turned ✅ and how the figures moved."""
    cmd = ServiceCommand(ref=ObjectRef(NS, "web"))
    targets = [f"{p.ip}:8080" for p in (pod(0), pod(1))]
    dropped = {("worker", t): "timeout" for t in targets}
    sick = build_report(cmd, evidence(policies=(deny_all(),), connects=connects(targets, dropped, cluster="timeout")))
    before = rerun_basis(cmd, sick)
    assert before is not None and before["figures"]["TCP from worker · failed connects"] == 3
    assert before["states"]["NetworkPolicies"] == "fail"
    after = rerun_basis(cmd, build_report(cmd, evidence()))
    assert after is not None
    assert "A NetworkPolicy drops the traffic to the Service's pods" in {r["hypothesis"] for r in after["ruled_out"]}
    changes = rerun_diff.lines(rerun_diff.diff(rerun_diff.Basis.from_dict(before), rerun_diff.Basis.from_dict(after)))
    assert "NetworkPolicies: ❌ → ✅" in changes
    assert "TCP from worker · failed connects: 3 → 0" in changes
    assert any(c.startswith("no longer: A NetworkPolicy drops") for c in changes)


def test_a_policy_no_engine_enforces_is_a_warning_only() -> None:
    ev = evidence(policies=(deny_all(),))
    found = diagnose(ev)
    assert found[0].rule == "network_policy" and found[0].severity.value == "info"
    assert statuses(ev)["network_policy"] == "warn"


def test_cluster_ip_failing_while_endpoints_answer_points_at_kube_proxy() -> None:
    pods = [pod(0), pod(1)]
    ev = evidence(connects=connects([f"{p.ip}:8080" for p in pods], cluster="timeout"),
                  kube_proxy=(KubeProxyPod("kube-proxy-a", "node-a", False, 7),
                              KubeProxyPod("kube-proxy-b", "node-b", True),
                              KubeProxyPod("kube-proxy-c", "node-c", True)))
    found = diagnose(ev)
    assert found[0].rule == "cluster_ip"
    assert "kube_proxy" in [f.rule for f in found]


def test_dns_nxdomain_while_the_service_exists() -> None:
    ev = evidence(dns=(DnsProbe("10.0.0.10:53", "kube-dns Service", "NXDOMAIN"),))
    found = diagnose(ev)
    assert found[0].rule == "dns"
    assert any("/aksdns check" in a for a in found[0].hypothesis.actions)


def test_pods_not_ready_fail_readiness_and_empty_endpoints_follow() -> None:
    pods = [pod(0, ready=False), pod(1, ready=False)]
    ev = evidence(pods=tuple(pods), slices=slices(pods, ready=False))
    assert diagnose(ev)[0].rule == "readiness"
    assert "endpoints" not in [f.rule for f in diagnose(ev)]


def test_ready_pods_without_endpoints_point_at_the_endpoint_controller() -> None:
    ev = evidence(slices=EndpointSet("endpointslices", (), (), 0), endpoints=None, connects=())
    assert verdict(ev) == "endpoints"


def test_targets_cover_endpoints_matching_pods_and_the_cluster_ip() -> None:
    ev = evidence()
    targets = plan_targets(ev.service, None, ev.pods, ev.slices)  # type: ignore[arg-type]
    assert {t.address for t in targets} == {"10.244.0.5:8080", "10.244.1.5:8080", f"{CIP}:80"}
    assert plan_targets(ev.service, 443, ev.pods, ev.slices) == []  # type: ignore[arg-type]


def test_port_flag_for_a_port_the_service_lacks() -> None:
    assert verdict(evidence(port=443)) == "ports"


# ---------------------------------------------------------------------------- NetworkPolicy semantics


def test_selectors() -> None:
    sel = LabelSelector({"app": "web"}, (("tier", "In", ("a", "b")), ("legacy", "DoesNotExist", ())))
    assert selects(sel, {"app": "web", "tier": "a"})
    assert not selects(sel, {"app": "web", "tier": "c"})
    assert not selects(sel, {"app": "web", "tier": "a", "legacy": "1"})
    assert selects(LabelSelector(), {})


def test_policy_decisions() -> None:
    backend = pod(0)
    namespaces = {NS: {"kubernetes.io/metadata.name": NS}, "front": {"team": "front"}}
    allow = NetworkPolicyInfo(NS, "allow-front", LabelSelector({"app": "web"}), ("Ingress",), (
        IngressRule((PolicyPeer(namespace_selector=LabelSelector({"team": "front"}),),),
                    (PolicyPort("TCP", "http"),)),
        IngressRule((PolicyPeer(cidr="10.224.0.0/16", excepts=("10.224.0.1/32",)),),
                    (PolicyPort("TCP", "8000", 9000),)),
    ))
    front_pod = Source("client", "10.244.2.9", namespace="front", labels={"app": "ui"})
    assert decide([allow], backend, 8080, "TCP", front_pod, namespaces).allowed
    assert not decide([allow], backend, 8080, "UDP", front_pod, namespaces).allowed
    same_ns = Source("w", "10.244.2.9", namespace=NS, labels={})
    assert not decide([allow], backend, 8080, "TCP", same_ns, namespaces).allowed
    node_b = Source("node b", "10.224.0.5", node="node-b")
    assert decide([allow], backend, 8080, "TCP", node_b, namespaces).allowed  # ipBlock, port range
    host = Source("the worker", "10.224.0.1")
    assert not decide([allow], backend, 8080, "TCP", host, namespaces).allowed  # except
    own = Source("node a", "10.224.0.4", node="node-a")
    assert decide([deny_all()], backend, 8080, "TCP", own, namespaces).why.startswith("traffic from the pod's own node")
    assert decide([], backend, 8080, "TCP", host, namespaces).allowed
    assert "from namespaces team=front to TCP http" in policy_text(allow)


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_testbed_evidence(path: Path) -> None:
    """Evidence recorded from the testbed (tests/testbed/test_service.py) gives the recorded verdict."""
    record = json.loads(path.read_text())
    found = diagnose(ServiceEvidence.from_dict(record["evidence"]))
    assert found[0].rule == record["expect"], [f.title for f in found]
