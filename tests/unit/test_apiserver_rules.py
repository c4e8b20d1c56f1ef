"""`apiserver`'s rules on evidence built to show one cause each: the right cause leads, nothing else above it.

The testbed tests (tests/testbed/test_apiserver.py) run the same rules on evidence the real API server
gave; these cover the causes the testbed cannot produce (authorized IP ranges, private clusters,
private DNS, failing health checks, TLS interception, 401).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from aksdns.commands import ApiserverCommand, ObjectRef
from aksdns.grammar import command_from_dict, parse
from tests.armstandin import recorded
from workers.analysis.apiserver_rbac import fix_manifests, fix_yaml
from workers.analysis.apiserver_rules import CAUSES, cause_of, diagnose
from workers.evidence.apiserver import (
    WORKER,
    AgentPod,
    ApiCall,
    ApiserverEvidence,
    Authentication,
    Authorization,
    AzureCluster,
    Certificate,
    EndpointProbe,
    HealthCheck,
    Konnectivity,
    KubernetesService,
    NodeRun,
    Permission,
    Stage,
)
from workers.jobs.apiserver import build_report, node_targets
from workers.probes.azure import cluster_from_arm, parse_cluster_id

NODES = ("aks-nodepool1-0", "aks-nodepool1-1", "aks-nodepool1-2")
FQDN = "aks-prod-weu-k7h2c9qx.hcp.westeurope.azmk8s.io"
PRIVATE_FQDN = "aks-int-eus-3f9d1b2e.8c41a7d2.privatelink.eastus.azmk8s.io"
CERT = Certificate(subject="CN=apiserver", issuer="CN=ca", names=(FQDN, "kubernetes.default.svc", "10.0.0.1"),
                   not_after="2035-01-01T00:00:00Z", days_left=3000, fingerprint="ab12", issued_by_cluster_ca=True)
OK = Stage(True, 1.0)


def good(vantage: str, host: str = FQDN, target: str = "pod environment") -> EndpointProbe:
    return EndpointProbe(
        vantage=vantage, target=target, host=host, port=443, server_name=host, addresses=("20.50.1.2",),
        resolve=Stage(True, 2.0), connect=OK, tls=Stage(True, 5.0), certificate=CERT,
        readyz=HealthCheck("/readyz", 200, 3.0), livez=HealthCheck("/livez", 200, 3.0),
    )


def healthy(**changes: object) -> ApiserverEvidence:
    ev = ApiserverEvidence(
        cluster="aks-prod-weu",
        probes=(good(WORKER, target="client configuration"), *(good(n) for n in NODES)),
        node_runs=tuple(NodeRun(n, True, log_read=True) for n in NODES),
        authentication=Authentication(201, "system:serviceaccount:aksdns:aksdns-worker", ("system:authenticated",)),
        authorization=Authorization("system:serviceaccount:aksdns:aksdns-worker",
                                    calls=(ApiCall("get Service default/kubernetes", 200),)),
        service=KubernetesService(True, "10.0.0.1", 443, ("20.50.1.2:443",), ("20.50.1.2:443",), True),
        konnectivity=Konnectivity(True, tuple(AgentPod(f"konnectivity-agent-{i}", NODES[i], "Running", True)
                                              for i in range(2)), log_read=True),
    )
    return dataclasses.replace(ev, **changes)  # type: ignore[arg-type]


def with_probe(ev: ApiserverEvidence, vantage: str, **changes: object) -> ApiserverEvidence:
    probes = tuple(dataclasses.replace(p, **changes) if p.vantage == vantage else p for p in ev.probes)  # type: ignore[arg-type]
    return dataclasses.replace(ev, probes=probes)


def top(ev: ApiserverEvidence) -> str:
    return diagnose(ev)[0].rule


def test_healthy_says_healthy() -> None:
    found = diagnose(healthy())
    assert [f.rule for f in found] == ["all_healthy"]
    assert cause_of(found[0]) == ""


def test_one_node_dropped_is_a_network_policy_or_firewall() -> None:
    ev = with_probe(healthy(), NODES[2], connect=Stage(False, 3000.0, "timeout", "no answer to SYN"),
                    tls=Stage(False, error="skipped"), certificate=None, readyz=None, livez=None)
    found = diagnose(ev)
    assert found[0].rule == "network_path" and found[0].title.startswith(CAUSES["network_path"])
    assert NODES[2] in found[0].title and [s.name for s in found[0].subjects] == [NODES[2]]
    assert [f.rule for f in found] == ["network_path"]


def test_everywhere_timing_out_with_authorized_ranges_and_udr_names_the_ranges() -> None:
    ev = healthy(azure=cluster_from_arm("/x", recorded("public_authorized_ranges")))
    for v in ev.vantages:
        ev = with_probe(ev, v, connect=Stage(False, 3000.0, "timeout"), tls=Stage(False, error="skipped"),
                        certificate=None, readyz=None, livez=None)
    found = diagnose(ev)
    assert found[0].rule == "authorized_ranges", [f.rule for f in found]
    assert "userDefinedRouting" in " ".join(found[0].hypothesis.evidence)
    assert found[1].rule == "network_path"  # the same drop, ranked below the named cause


def test_client_outside_authorized_ranges() -> None:
    ev = healthy(azure=cluster_from_arm("/x", recorded("public_authorized_ranges")), client_ip="192.0.2.44")
    found = diagnose(ev)
    assert found[0].rule == "authorized_ranges" and "192.0.2.44" in found[0].title
    assert any("192.0.2.44/32" in a for a in found[0].hypothesis.actions)
    inside = healthy(azure=ev.azure, client_ip="198.51.100.9")
    assert top(inside) == "all_healthy"


def test_private_cluster_from_outside() -> None:
    az = cluster_from_arm("/x", recorded("private_cluster"))
    assert az.private_cluster and az.private_fqdn.endswith(".privatelink.eastus.azmk8s.io")
    found = diagnose(healthy(azure=az, client_ip="203.0.113.80"))
    assert found[0].rule == "private_outside" and found[0].title.startswith(CAUSES["private_outside"])
    assert top(healthy(azure=az, client_ip="10.1.2.3")) == "all_healthy"  # a private address: can't tell


def test_private_dns_forwarding() -> None:
    ev = healthy(azure=cluster_from_arm("/x", recorded("private_cluster")))
    ev = dataclasses.replace(ev, probes=tuple(dataclasses.replace(p, host=PRIVATE_FQDN) for p in ev.probes))
    for n in NODES[:2]:
        ev = with_probe(ev, n, resolve=Stage(False, 40.0, "nxdomain", "Name or service not known"), addresses=(),
                        connect=Stage(False, error="skipped"), tls=Stage(False, error="skipped"), certificate=None,
                        readyz=None, livez=None)
    found = diagnose(ev)
    assert found[0].rule == "private_dns" and found[0].title.startswith(CAUSES["private_dns"])
    assert any("168.63.129.16" in a for a in found[0].hypothesis.actions)
    assert [f.rule for f in found] == ["private_dns"]


def test_tls_name_mismatch_is_the_api_servers_certificate() -> None:
    wrong = dataclasses.replace(CERT, names=("apiserver.contoso.internal",), fingerprint="ff00")
    ev = healthy()
    for n in NODES:
        ev = with_probe(ev, n, tls=Stage(False, 4.0, "name_mismatch", "Hostname mismatch"), certificate=wrong,
                        readyz=None, livez=None)
    found = diagnose(ev)
    assert found[0].rule == "certificate" and "name mismatch" in found[0].title
    assert found[0].title.startswith(CAUSES["apiserver"])
    assert [f.rule for f in found] == ["certificate"]


def test_tls_interception_by_a_proxy() -> None:
    foreign = dataclasses.replace(CERT, issuer="CN=Contoso Firewall CA", issued_by_cluster_ca=False)
    ev = with_probe(healthy(), NODES[0], tls=Stage(False, 4.0, "untrusted", "self-signed certificate in chain"),
                    certificate=foreign, readyz=None, livez=None)
    found = diagnose(ev)
    assert found[0].rule == "tls_interception" and found[0].title.startswith(CAUSES["network_path"])


def test_failing_readyz_is_the_api_server_itself() -> None:
    ev = healthy()
    for v in ev.vantages:
        ev = with_probe(ev, v, readyz=HealthCheck("/readyz", 500, 20.0, failing=("etcd",)))
    found = diagnose(ev)
    assert found[0].rule == "health_checks" and "etcd" in found[0].title
    assert found[0].title.startswith(CAUSES["apiserver"])


def test_refused_everywhere_is_the_api_server_itself() -> None:
    ev = healthy()
    for v in ev.vantages:
        ev = with_probe(ev, v, connect=Stage(False, 1.0, "refused"), tls=Stage(False, error="skipped"),
                        certificate=None, readyz=None, livez=None)
    assert top(ev) == "not_listening"


def test_kubernetes_endpoints_missing() -> None:
    ev = healthy(service=KubernetesService(True, "10.0.0.1", 443, (), (), False))
    found = diagnose(ev)
    assert [f.rule for f in found] == ["kubernetes_endpoints"]
    assert found[0].title.startswith(CAUSES["apiserver"])


def test_unreadable_service_is_not_missing_endpoints() -> None:
    ev = healthy(service=KubernetesService(None, error="HTTP 403 Forbidden"))
    assert top(ev) == "all_healthy"


def test_konnectivity_absent() -> None:
    runs = tuple(NodeRun(n, True, log_read=False, log_error="connection refused") for n in NODES)
    ev = healthy(konnectivity=Konnectivity(True, ()), node_runs=runs)
    found = diagnose(ev)
    assert [f.rule for f in found] == ["konnectivity"]
    assert found[0].hypothesis.confidence == "high"
    vnet = dataclasses.replace(ev, azure=AzureCluster(True, True, vnet_integration=True))
    assert top(vnet) == "all_healthy"  # API Server VNet Integration has no tunnel


WORKER_SA = "system:serviceaccount:aksdns:aksdns-worker"


def test_worker_forbidden_is_rbac_with_a_fix() -> None:
    denied = (Permission("list", "pods", why="pods", allowed=False),
              Permission("create", "pods", namespace="aksdns", why="probe pods", allowed=False),
              Permission("get", "", name="/readyz", allowed=True))
    ev = healthy(authorization=Authorization(WORKER_SA, calls=(ApiCall("get Service default/kubernetes", 403),),
                                             permissions=denied, rules=("create selfsubjectaccessreviews",)),
                 service=KubernetesService(None, error="HTTP 403"), konnectivity=Konnectivity(False, error="HTTP 403"),
                 node_runs=(), notes=("the worker may not create pods in aksdns (HTTP 403)",))
    ev = dataclasses.replace(ev, probes=ev.at(WORKER))
    found = diagnose(ev)
    assert found[0].rule == "rbac"
    assert found[0].title.startswith("RBAC: the worker's ServiceAccount aksdns/aksdns-worker")
    assert "list pods" in found[0].title
    report = build_report(ApiserverCommand(), ev)
    fix = next(a for a in report.attachments if a.filename.endswith("rbac-fix.yaml")).content.decode()
    docs = [d for d in yaml.safe_load_all(fix) if d]
    assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    assert docs[2]["metadata"]["namespace"] == "aksdns" and docs[2]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]
    assert docs[1]["subjects"] == [{"kind": "ServiceAccount", "name": "aksdns-worker", "namespace": "aksdns"}]


def test_authentication_401() -> None:
    ev = healthy(authentication=Authentication(401, error="HTTP 401 Unauthorized"),
                 authorization=Authorization(WORKER_SA, calls=(ApiCall("get Service default/kubernetes", 401),)))
    assert top(ev) == "authentication"


def test_as_service_account_without_read_access() -> None:
    perms = tuple(Permission(v, r, namespace="shop", allowed=(v == "get" and r == "configmaps"))
                  for r in ("pods", "services", "configmaps") for v in ("get", "list"))
    access = Authorization("system:serviceaccount:shop:cart", permissions=perms)
    ev = healthy(subject="shop/cart", subject_access=access)
    found = diagnose(ev)
    assert found[0].rule == "service_account_rbac" and "shop/cart" in found[0].title
    report = build_report(ApiserverCommand(service_account=ObjectRef("shop", "cart")), ev)
    fix = next(a for a in report.attachments if a.filename.endswith("rbac-fix.yaml")).content.decode()
    role, binding = [d for d in yaml.safe_load_all(fix) if d]
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "shop"
    assert {r["resources"][0]: r["verbs"] for r in role["rules"]} == {"pods": ["get", "list"],
                                                                       "services": ["get", "list"]}
    assert binding["subjects"][0]["name"] == "cart"


def test_fix_manifests_merge_verbs_and_keep_names() -> None:
    objs = fix_manifests(WORKER_SA, [Permission("get", "configmaps", namespace="kube-system", name="coredns"),
                                      Permission("get", "", name="/livez"), Permission("list", "nodes")])
    cluster_role = next(o for o in objs if o["kind"] == "ClusterRole")
    assert {"nonResourceURLs": ["/livez"], "verbs": ["get"]} in cluster_role["rules"]
    role = next(o for o in objs if o["kind"] == "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                              "resourceNames": ["coredns"]}]
    assert fix_yaml(WORKER_SA, [Permission("list", "nodes", why="x")]).startswith("# Grants")


def test_evidence_round_trips_through_json() -> None:
    ev = with_probe(healthy(subject="a/b", client_ip="192.0.2.1"), NODES[1],
                    resolve=Stage(False, 3.0, "nxdomain"))
    again = ApiserverEvidence.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert again == ev


def test_report_data_names_the_cause_and_rerun_compares() -> None:
    cmd = ApiserverCommand()
    first = build_report(cmd, with_probe(healthy(), NODES[0], connect=Stage(False, 3000.0, "timeout"),
                                         tls=Stage(False, error="skipped"), readyz=None, livez=None))
    assert first.data["cause"] == CAUSES["network_path"]
    from workers.analysis.check_diff import rerun_basis
    from workers.analysis.rerun_diff import Basis, diff, sections

    second = build_report(cmd, healthy())
    d = diff(Basis.from_dict(rerun_basis(first)), Basis.from_dict(rerun_basis(second)))
    text = json.dumps([getattr(s, "text", "") for s in sections(d)])
    assert "Since the previous run" in text and "no longer" in text
    assert {a.filename.rsplit(".", 1)[-1] for a in second.attachments} == {"json", "csv"}


def test_node_targets_skip_loopback_and_add_endpoints_and_fqdns() -> None:
    az = AzureCluster(True, True, fqdn=FQDN)
    ts = node_targets("127.0.0.1", 6443, ("10.224.0.1:6443",), az)
    assert [(t.label, t.host, t.port, t.server_name) for t in ts] == [
        ("kubernetes endpoint", "10.224.0.1", 6443, "kubernetes.default.svc"), ("public FQDN", FQDN, 443, "")]
    ts = node_targets(FQDN, 443, (), az)
    assert [t.label for t in ts] == ["client configuration"]


def test_cluster_id_parsing() -> None:
    rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"
    assert parse_cluster_id(rid) == ("s", "rg", "c")
    assert parse_cluster_id("/subscriptions/s/resourceGroups/rg") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apiserver", ApiserverCommand()),
        ("apiserver --as shop/cart", ApiserverCommand(service_account=ObjectRef("shop", "cart"))),
        ("apiserver --client 203.0.113.7 --as a/b",
         ApiserverCommand(service_account=ObjectRef("a", "b"), client_ip="203.0.113.7")),
    ],
)
def test_grammar(text: str, expected: ApiserverCommand) -> None:
    cmd = parse(text)
    assert cmd == expected
    assert command_from_dict(cmd.to_dict()) == cmd


@pytest.mark.parametrize("text", ["apiserver --as nope", "apiserver --client 300.1.1.1", "apiserver --as a/b;rm",
                                  "apiserver extra"])
def test_grammar_refuses(text: str) -> None:
    from aksdns.errors import UsageError

    with pytest.raises(UsageError):
        parse(text)
