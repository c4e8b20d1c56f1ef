"""The configuration review on a table of Corefiles and coredns-custom maps: the known mistakes and good ones."""

from __future__ import annotations

import pytest

from testbed.manifests import AKS_COREFILE
from workers.analysis.health_lint import expected_replicas, lint

GOOD_SERVER = "corp.example.com:53 {\n    errors\n    cache 30\n    forward . 10.10.0.4\n}\n"
AKS_LADDER = ('{"coresToReplicas":[[1,2],[512,3],[1024,4],[2048,5]],'
              '"nodesToReplicas":[[1,2],[8,3],[16,4],[32,5]]}')

CASES = [
    # (name, corefile, custom, rules expected, critical expected)
    ("aks default, no custom", AKS_COREFILE, {}, set(), False),
    ("a good .server block", AKS_COREFILE, {"corp.server": GOOD_SERVER}, set(), False),
    ("hosts in an override", AKS_COREFILE,
     {"hosts.override": "hosts {\n  10.1.2.3 db.internal\n  fallthrough\n}\n"}, set(), False),
    ("second forward in an override", AKS_COREFILE, {"fwd.override": "forward . 10.10.0.4\n"},
     {"override_forward"}, True),
    ("cache twice in the default block", AKS_COREFILE, {"c.override": "cache 60\n"}, {"override_duplicate"}, True),
    ("a .server key redefining .:53", AKS_COREFILE, {"all.server": ".:53 {\n    forward . 10.10.0.4\n}\n"},
     {"server_redefines_default", "no_cache"}, True),
    ("the same with :53 only", AKS_COREFILE, {"all.server": ":53 {\n  cache 30\n  forward . 10.10.0.4\n}\n"},
     {"server_redefines_default"}, True),
    ("policy random across networks", AKS_COREFILE,
     {"onprem.server": "corp.example.com:53 {\n  cache 30\n  forward . 10.10.0.4 192.168.50.4\n}\n"},
     {"policy_random"}, False),
    ("policy sequential across networks", AKS_COREFILE,
     {"onprem.server": "corp.example.com:53 {\n  cache 30\n  forward . 10.10.0.4 192.168.50.4 {\n"
                       "    policy sequential\n  }\n}\n"}, set(), False),
    ("two servers in one network", AKS_COREFILE,
     {"onprem.server": "corp.example.com:53 {\n  cache 30\n  forward . 10.10.0.4 10.10.0.5\n}\n"}, set(), False),
    ("no cache in a custom block", AKS_COREFILE, {"corp.server": "corp.example.com:53 {\n forward . 10.10.0.4\n}\n"},
     {"no_cache"}, False),
    ("log left on", AKS_COREFILE, {"log.override": "log\n"}, {"log_on"}, False),
    ("a key that does not parse", AKS_COREFILE, {"bad.server": "corp.example.com:53 {\n forward . 10.10.0.4\n"},
     {"unparsable"}, True),
    ("a stray }", AKS_COREFILE, {"bad.override": "log\n}\n"}, {"unparsable"}, True),
    ("a key AKS ignores", AKS_COREFILE, {"corp.conf": GOOD_SERVER}, {"ignored_key"}, False),
    ("no cache in the Corefile", AKS_COREFILE.replace("    cache 30\n", ""), {}, {"no_cache"}, False),
    ("log in the Corefile", AKS_COREFILE.replace("    errors\n", "    errors\n    log\n"), {}, {"log_on"}, False),
    ("a .server without a block", AKS_COREFILE, {"x.server": "forward . 10.10.0.4\n"}, {"server_without_block"},
     True),
]


@pytest.mark.parametrize(("name", "corefile", "custom", "rules", "critical"), CASES, ids=[c[0] for c in CASES])
def test_lint_table(name: str, corefile: str, custom: dict[str, str], rules: set[str], critical: bool) -> None:
    issues = lint(corefile, custom)
    assert {i.rule for i in issues} == rules
    assert any(i.severity == "critical" for i in issues) is critical
    for i in issues:  # each issue says where and how to fix it
        assert i.where and i.fix and i.problem


def test_lint_names_the_line() -> None:
    custom = {"corp.server": "# comment\ncorp.example.com:53 {\n  cache 30\n  forward . 10.10.0.4 192.168.50.4\n}\n"}
    (issue,) = lint(AKS_COREFILE, custom)
    assert issue.where == "coredns-custom key corp.server, line 4"
    fwd = lint(AKS_COREFILE, {"a.override": "hosts {\n fallthrough\n}\nforward . 10.0.0.4\n"})
    assert fwd[0].where.endswith("line 4")
    assert ".server" in fwd[0].fix and "corp.example.com:53" in fwd[0].fix  # never suggests `.:53` again


@pytest.mark.parametrize(("nodes", "cores", "replicas"), [(1, 2, 2), (3, 6, 2), (8, 16, 3), (16, 32, 4),
                                                          (40, 80, 5), (500, 1000, 5), (3, 600, 3)])
def test_autoscaler_ladder(nodes: int, cores: int, replicas: int) -> None:
    mode, _raw, expected, error = expected_replicas({"ladder": AKS_LADDER}, nodes, cores)
    assert (mode, expected, error) == ("ladder", replicas, "")


def test_autoscaler_linear_and_unreadable() -> None:
    linear = '{"coresPerReplica":256,"nodesPerReplica":4,"min":1,"max":10,"preventSinglePointFailure":true}'
    assert expected_replicas({"linear": linear}, 9, 18)[2] == 3
    assert expected_replicas({"linear": linear}, 2, 4)[2] == 2  # no single point of failure
    assert expected_replicas({"ladder": "{not json"}, 3, 6)[2:] == (None, "unreadable ladder parameters: "
                                                                           "JSONDecodeError")
