"""`ipam`'s accounts and rules on evidence built by hand (the guide's numbers) and recorded on the testbed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aksdns.commands import IpamCommand
from workers.analysis import rerun_diff
from workers.analysis.ipam_evidence import IpamEvidence
from workers.analysis.ipam_facts import AZURE_CNI, KUBENET, UNKNOWN, accounts
from workers.analysis.ipam_rules import diagnose
from workers.evidence.ipam import (
    NO_AVAILABLE_ADDRESSES,
    NOT_ENOUGH_IPS,
    NodeNetworkConfig,
    NodeRange,
    PodIp,
    SandboxEvent,
    StoreEntry,
    StoreReading,
    sandbox_failure_kind,
)
from workers.jobs import rerun_basis
from workers.jobs.ipam import build_report
from workers.report import Status

DATA = Path(__file__).parent / "data" / "ipam"
NODE = "aks-agentpool-12345678-vmss000000"
OTHER = "aks-agentpool-12345678-vmss000001"
KUBENET_MSG = ('Failed to create pod sandbox: rpc error: code = Unknown desc = NetworkPlugin cni failed to set up pod '
               '"web-1_default" network: Failed to allocate address: Failed to delegate: Failed to allocate address: '
               "No available addresses")
AZURE_MSG = ("Failed to create pod sandbox: ... IPAM Invoker Add failed with error: Failed to get IP address from CNS "
             "with error: %w: AllocateIPConfig failed: not enough IPs available for 9c6a7f37, waiting on Azure CNS")


def running(node: str, n: int, start: int = 10, subnet: str = "10.244.0") -> list[PodIp]:
    return [PodIp("default", f"app-{node[-1]}-{i}", node, "Running", f"{subnet}.{start + i}") for i in range(n)]


def entries(ips: list[str], age_s: float = 30.0) -> tuple[StoreEntry, ...]:
    return tuple(StoreEntry(ip, "abc123def456", age_s) for ip in ips)


def kubenet(pods: list[PodIp], store: tuple[StoreEntry, ...], *, events: tuple[SandboxEvent, ...] = (),
            cidr: str = "10.244.0.0/24") -> IpamEvidence:
    return IpamEvidence(
        cluster="t",
        nodes=(NodeRange(NODE, cidr, 110),),
        pods=tuple(pods),
        stores=(StoreReading(NODE, True, network="kubenet", entries=store, networks=("kubenet",)),),
        events=events,
    )


def rules(ev: IpamEvidence) -> list[str]:
    return [f.rule for f in diagnose(ev)]


def test_the_guides_two_messages_are_told_apart() -> None:
    assert sandbox_failure_kind(KUBENET_MSG) == NO_AVAILABLE_ADDRESSES
    assert sandbox_failure_kind(AZURE_MSG) == NOT_ENOUGH_IPS
    assert sandbox_failure_kind("failed to mount volume") == "other"


def test_healthy_kubenet_node_is_healthy() -> None:
    pods = running(NODE, 7)
    ev = kubenet(pods, entries([p.ip for p in pods]))
    assert rules(ev) == ["all_healthy"]
    a = accounts(ev)[0]
    assert (a.plugin, a.allocated, a.running) == (KUBENET, 7, 7)


def test_the_guides_example_244_allocated_7_running_is_a_leak() -> None:
    pods = running(NODE, 7)
    stale = [f"10.244.0.{i}" for i in range(17, 254)]  # 237 addresses no pod holds
    ev = kubenet(pods, entries([p.ip for p in pods]) + entries(stale, age_s=3 * 86400))
    found = diagnose(ev)
    assert found[0].rule == "plugin_leak"
    assert "244 allocated for 7 running pods" in found[0].title
    assert any("Contact Microsoft" in a for a in found[0].hypothesis.actions)
    assert any("/var/lib/cni/networks/kubenet" in a for a in found[0].hypothesis.actions)


def test_leak_with_sandbox_failures_is_critical() -> None:
    pods = running(NODE, 3)
    stale = [f"10.244.0.{i}" for i in range(100, 110)]
    event = SandboxEvent("default", "web-1", NODE, KUBENET_MSG, count=204, last_age_s=21)
    stuck = PodIp("default", "web-1", NODE, "Pending", waiting_reason="ContainerCreating", waiting_s=480)
    ev = kubenet([*pods, stuck], entries([p.ip for p in pods]) + entries(stale, 86400), events=(event,))
    found = diagnose(ev)
    assert found[0].rule == "plugin_leak" and found[0].severity.value == "critical"
    assert any("FailedCreatePodSandBox ×204" in e for e in found[0].hypothesis.evidence)
    assert "sandbox_failures" not in rules(ev)  # the leak explains them


def test_a_long_sandbox_error_keeps_the_plugins_cause() -> None:
    """Real pod names make the guide's message longer than a line: its cause, at the end, stays."""
    long_msg = KUBENET_MSG.replace("web-1_default", "web-7d9c4b6f5-x2k8q_testbed-faults-of-a-long-namespace")
    pods = running(NODE, 3)
    event = SandboxEvent("default", "web-1", NODE, long_msg, count=204, last_age_s=21)
    ev = kubenet(pods, entries([p.ip for p in pods]) + entries([f"10.244.0.{i}" for i in range(100, 110)], 86400),
                 events=(event,))
    line = next(e for e in diagnose(ev)[0].hypothesis.evidence if "FailedCreatePodSandBox ×204" in e)
    assert line.endswith("No available addresses") and line.count(" … ") == 1 and len(long_msg) > 200


def test_young_stale_entries_of_finished_pods_are_churn_not_a_leak() -> None:
    pods = running(NODE, 4)
    done = [PodIp("jobs", f"job-{i}", NODE, "Succeeded", f"10.244.0.{50 + i}", owner_kind="Job") for i in range(12)]
    ev = kubenet([*pods, *done], entries([p.ip for p in pods + done], age_s=40))
    found = diagnose(ev)
    assert [f.rule for f in found] == ["gc_churn"]
    assert "12 terminated pods" in found[0].title
    assert any("garbage collection" in a for a in found[0].hypothesis.actions)


def test_a_few_entries_in_flight_are_not_a_finding() -> None:
    pods = running(NODE, 5)
    ev = kubenet(pods, entries([p.ip for p in pods]) + entries(["10.244.0.90", "10.244.0.91"], age_s=5))
    assert rules(ev) == ["all_healthy"]


def test_full_kubenet_range_in_use_is_exhaustion() -> None:
    pods = running(NODE, 13, start=1, subnet="10.244.0")
    ev = kubenet(pods, entries([p.ip for p in pods]), cidr="10.244.0.0/28")
    assert accounts(ev)[0].capacity == 13
    assert rules(ev)[0] == "exhausted"


def nnc(node: str, requested: int, assigned: int, *, max_ips: int = 250, full: bool = False) -> NodeNetworkConfig:
    return NodeNetworkConfig(node, requested, assigned, batch=16, max_ips=max_ips, request_threshold_pct=50,
                             release_threshold_pct=150, status="Updated", subnet="aks-podsubnet",
                             subnet_cidr="10.225.0.0/24",
                             nc_statuses=("NCUpdateSubnetFullError" if full else "NCUpdateSuccess",))


def azure(nncs: tuple[NodeNetworkConfig, ...], pods: list[PodIp],
          events: tuple[SandboxEvent, ...] = ()) -> IpamEvidence:
    return IpamEvidence(cluster="t", nodes=(NodeRange(NODE, "", 250), NodeRange(OTHER, "", 250)), pods=tuple(pods),
                        nncs=nncs, nnc_crd=True, events=events)


def test_azure_cni_within_the_scaler_headroom_is_healthy() -> None:
    ev = azure((nnc(NODE, 32, 32), nnc(OTHER, 16, 16)), running(NODE, 12) + running(OTHER, 3, subnet="10.224.1"))
    assert rules(ev) == ["all_healthy"]
    assert {a.plugin for a in accounts(ev)} == {AZURE_CNI}


def test_azure_cni_subnet_full_is_exhaustion() -> None:
    event = SandboxEvent("default", "web-1", NODE, AZURE_MSG, count=12)
    ev = azure((nnc(NODE, 32, 16, full=True), nnc(OTHER, 16, 16)), running(NODE, 15), (event,))
    found = diagnose(ev)
    assert [f.rule for f in found] == ["exhausted"]
    assert "Subnet exhausted: aks-podsubnet" in found[0].title and "requested 32, assigned 16" in found[0].title


def test_the_guides_32_allocated_21_running_is_within_headroom_but_64_for_2_is_a_leak() -> None:
    assert rules(azure((nnc(NODE, 32, 32), nnc(OTHER, 16, 16)), running(NODE, 21))) == ["all_healthy"]
    event = SandboxEvent("default", "web-1", NODE, AZURE_MSG, count=4)
    found = diagnose(azure((nnc(NODE, 64, 64, max_ips=64), nnc(OTHER, 16, 16)), running(NODE, 2), (event,)))
    assert found[0].rule == "plugin_leak" and found[0].severity.value == "critical"
    assert "exhausted" not in [f.rule for f in found]


def test_sandbox_failures_the_counts_do_not_explain() -> None:
    pods = running(NODE, 3)
    event = SandboxEvent("default", "web-1", NODE, KUBENET_MSG, count=3)
    found = diagnose(kubenet(pods, entries([p.ip for p in pods]), events=(event,)))
    assert found[0].rule == "sandbox_failures"


def test_unread_nodes_are_said_and_never_called_healthy_with_confidence() -> None:
    ev = IpamEvidence(cluster="t", nodes=(NodeRange(NODE, "10.244.0.0/24"),), pods=tuple(running(NODE, 2)),
                      stores=(StoreReading(NODE, False, error="probe pod waiting: ContainerCreating"),),
                      notes=("the worker's ServiceAccount may not list events in all namespaces (HTTP 403); "
                             "check the chart's RBAC",))
    found = diagnose(ev)
    assert [f.rule for f in found] == ["all_healthy", "partial_view"]
    assert found[0].hypothesis.confidence == "low"
    assert accounts(ev)[0].plugin == UNKNOWN
    assert any("may not list events" in e for e in found[1].hypothesis.evidence)
    assert build_report(IpamCommand(), ev).status is Status.WARN


def test_report_has_node_lines_facts_attachments_and_a_rerun_diff() -> None:
    pods = running(NODE, 3)
    sick = kubenet(pods, entries([p.ip for p in pods]) + entries([f"10.244.0.{i}" for i in range(60, 70)], 86400))
    before = build_report(IpamCommand(), sick)
    assert before.status is Status.WARN
    assert {a.filename for a in before.attachments} == {"aksdns-ipam-t.json", "aksdns-ipam-t.csv"}
    csv = next(a for a in before.attachments if a.filename.endswith(".csv")).content.decode()
    assert csv.splitlines()[1].startswith(f"{NODE},kubenet,13,3,")
    basis = rerun_basis(IpamCommand(), before)  # what the thread keeps (the verb registry's ipam_basis)
    assert basis is not None and basis["figures"][f"{NODE} · allocated addresses"] == 13
    assert basis["figures"][f"{NODE} · stale store entries"] == 10

    healed = kubenet(pods, entries([p.ip for p in pods]))
    after = build_report(IpamCommand(), healed)
    d = rerun_diff.diff(rerun_diff.Basis.from_dict(basis),
                        rerun_diff.Basis.from_dict(rerun_basis(IpamCommand(), after)))
    text = rerun_diff.sections(d)[0].text  # type: ignore[attr-defined]
    assert "Since the previous run" in text and "no longer: Addresses leaked" in text
    assert f"{NODE} · allocated addresses: 13 → 3" in rerun_diff.lines(d)
    assert IpamEvidence.from_dict(json.loads(json.dumps(sick.to_dict()))) == sick


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_testbed_evidence(path: Path) -> None:
    """Evidence recorded from the testbed (tests/testbed/test_ipam.py) gives the recorded verdict."""
    record = json.loads(path.read_text())
    found = diagnose(IpamEvidence.from_dict(record["evidence"]))
    assert found[0].rule == record["expect"], [f.title for f in found]
