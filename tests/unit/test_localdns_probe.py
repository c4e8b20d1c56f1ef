"""LocalDNS in the node probe: which servers a node is asked, and its records as a layer of their own."""

from __future__ import annotations

import json

from workers.evidence.layers import Layer
from workers.jobs.health import localdns_of
from workers.probes.node_probe import ProbePlan, parse_probe_output, probe_pod_manifest, servers_to_ask

PLAN = ProbePlan(job_id="j", namespace="aksdns", image="aksdns:latest", command=("aksdns", "probe"),
                 names=("microsoft.com",), azure_dns="168.63.129.16")


def test_servers_to_ask() -> None:
    assert servers_to_ask(["168.63.129.16"], "168.63.129.16", False) == ["168.63.129.16"]
    assert servers_to_ask(["168.63.129.16"], "168.63.129.16", True) == []  # no LocalDNS: nothing for health
    assert servers_to_ask(["169.254.10.10"], "168.63.129.16", False) == ["169.254.10.10", "169.254.10.11",
                                                                         "168.63.129.16"]
    assert servers_to_ask(["169.254.10.10"], "168.63.129.16", True) == ["169.254.10.10", "169.254.10.11"]


def test_localdns_records_are_their_own_layer() -> None:
    out = {"v": 1, "node": "n1", "names": ["kubernetes.default.svc.cluster.local"], "error": "",
           "ns": ["169.254.10.10", "169.254.10.11", "168.63.129.16"], "rc": ["169.254.10.10"],
           "r": [[0, 0, "A", 1, "TIMEOUT", 0], [1, 0, "A", 1, "TIMEOUT", 0], [2, 0, "A", 1, "NXDOMAIN", 3.1]]}
    probe, records = parse_probe_output(json.dumps(out), PLAN, "n1")
    assert probe.nameservers == ("169.254.10.10",)  # the node's resolv.conf, not what was asked
    assert [r.layer for r in records] == [Layer.LOCALDNS, Layer.LOCALDNS, Layer.NODE]
    assert records[2].role == "azure_dns" and records[0].role == ""
    (state,) = localdns_of([probe], records)
    assert state.enabled and state.dead


def test_the_manifest_names_the_upstream() -> None:
    args = probe_pod_manifest(PLAN, "n1", 0)["spec"]["containers"][0]["command"]
    assert args[args.index("--upstream") + 1] == "168.63.129.16" and "--localdns-only" not in args
