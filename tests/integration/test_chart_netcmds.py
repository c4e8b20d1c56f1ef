"""The chart's rights for `ipam` and `service`, rendered: what they read, and the pod guard's one
hostPath exception (refusals are checked by a real API server in tests/testbed/test_chart_install.py)."""

from __future__ import annotations

from tests.integration.test_chart import NAMESPACE, WRITE_VERBS, one, rbac_rules, render


def test_ipam_and_service_reads_are_granted_read_only() -> None:
    granted = set(rbac_rules(render()))
    assert ("*", "networking.k8s.io", "networkpolicies", "list") in granted
    assert ("*", "", "namespaces", "list") in granted
    assert ("kube-system", "acn.azure.com", "nodenetworkconfigs", "list") in granted
    assert not any(r == "nodenetworkconfigs" and ns != "kube-system" for ns, _, r, _ in granted)
    assert not any(r in {"networkpolicies", "namespaces", "nodenetworkconfigs"} and v in WRITE_VERBS
                   for _, _, r, v in granted)


def test_the_pod_guard_allows_one_read_only_host_path_for_the_ipam_probe_only() -> None:
    policy = one(render(), "ValidatingAdmissionPolicy", "-worker-pods")
    rule = next(v for v in policy["spec"]["validations"] if "hostPath" in v["expression"])["expression"]
    assert "variables.role == 'ipam-probe'" in rule
    assert "v.hostPath.path == '/var/lib/cni/networks'" in rule
    assert "v.hostPath.type == 'Directory'" in rule
    assert "m.readOnly" in rule
    role = next(v for v in policy["spec"]["variables"] if v["name"] == "role")["expression"]
    assert "object.metadata.labels['aksdns.io/role']" in role
    assert NAMESPACE in policy["spec"]["matchConstraints"]["namespaceSelector"]["matchLabels"].values()
