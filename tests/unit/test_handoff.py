"""A thread of five jobs read back as a handoff: timeline, changes, held and ruled-out hypotheses, actions.

The outcomes are what the runner records (``workers.runner._outcome``) for real check reports on
recorded evidence, compared as the runner compares them (``workers.jobs.run``'s diff).
"""

from __future__ import annotations

import json
from pathlib import Path

from aksdns.commands import CheckCommand, DigCommand, DnsServer, HandoffCommand
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.results import Outcome
from workers.analysis import handoff
from workers.analysis.check_diff import rerun_basis
from workers.analysis.check_evidence import CheckEvidence
from workers.analysis.rerun_diff import Basis, diff, lines
from workers.jobenv import JobEnv
from workers.jobs import handoff as handoff_job
from workers.jobs.check import build_report
from workers.report import Report, Status
from workers.runner import _outcome

DATA = Path(__file__).parent / "data" / "check"
THREAD = SlackThread("C0INCIDENT", "1700000000.000100", "1700000000.000100")
CHECK = CheckCommand(names=("microsoft.com",), repeat=3)
DIG = DigCommand(servers=(DnsServer("10.0.0.10"),), names=("microsoft.com",))


def check_report(fixture: str) -> Report:
    report = build_report(CHECK, CheckEvidence.from_dict(json.loads((DATA / f"{fixture}.json").read_text())))
    report.basis = rerun_basis(report)
    return report


def ran(command: object, user: str, at: float, report: Report | None, status: str = "", summary: str = "",
        previous: Report | None = None) -> Outcome:
    if report is not None and previous is not None and previous.basis and report.basis:
        report.changes = tuple(lines(diff(Basis.from_dict(previous.basis), Basis.from_dict(report.basis))))
    spec = JobSpec(id=f"job{int(at)}", command=command, cluster="aks-prod", user=user, thread=THREAD)  # type: ignore[arg-type]
    o = _outcome(spec, at - 20, status or (report.status.value if report else "failed"),
                 summary or (report.summary if report else ""), report)
    return Outcome(**{**o.__dict__, "finished_at": at})


def five_jobs() -> list[Outcome]:
    first = check_report("one_pod_dead")
    second = check_report("healthy")
    return [
        ran(CHECK, "U0ALICE", 1_700_000_060, first),
        ran(DIG, "U0ALICE", 1_700_000_120, None, status="failed",
            summary="the worker running it stopped (killed or restarted)"),
        ran(DIG, "U0ALICE", 1_700_000_180, Report("dig", Status.OK, "1 query to 1 server: 1 answered")),
        ran(CHECK, "U0BOB", 1_700_000_600, second, previous=first),
        ran(HandoffCommand(), "U0BOB", 1_700_000_660, Report("handoff", Status.WARN, "handoff")),
    ]


def test_timeline_changes_and_ruled_out_hypotheses() -> None:
    record = handoff.build([o for o in five_jobs() if o.verb != "handoff"])
    assert [s.text for s in record.steps] == [
        "check microsoft.com ×3", "dig microsoft.com @10.0.0.10", "dig microsoft.com @10.0.0.10",
        "check microsoft.com ×3"]
    assert [s.status for s in record.steps] == ["fail", "failed", "ok", "ok"]
    assert [s.repeat for s in record.steps] == [False, False, True, True]
    assert record.people == ["U0ALICE", "U0BOB"]
    # The re-run says what changed: the dead pod's layer came back, the finding went.
    changes = record.steps[3].changes
    assert "CoreDNS pods: ❌ → ✅" in changes
    assert any(c.startswith("no longer: One CoreDNS pod misbehaves") for c in changes)
    # Nothing is held any more: the latest check is healthy, the dig answered.
    assert record.held == []
    # Ruled out: the pod hypothesis (gone on the re-run, by Bob's check) and what healthy layers speak against.
    ruled = {x.hypothesis: x for x in record.ruled_out}
    pod = next(x for h, x in ruled.items() if h.startswith("One CoreDNS pod misbehaves"))
    assert "U0BOB" in pod.by and "22:23" in pod.by and pod.evidence.startswith("no longer seen")
    vnet = ruled["The virtual network's DNS server (Azure DNS or a custom one) is failing"]
    assert vnet.evidence.startswith("Virtual network DNS: ") and "NOERROR" in vnet.evidence
    # The dig that died is not an open action: it ran again and answered.
    assert not any("did not finish" in a for a in record.actions)


def test_held_hypotheses_and_actions_while_the_fault_lasts() -> None:
    outcomes = five_jobs()[:2]
    record = handoff.build(outcomes)
    assert record.held and record.held[0].title.startswith("One CoreDNS pod misbehaves")
    assert "U0ALICE" in record.held[0].seen_by
    assert any("kubectl" in a for a in record.actions)
    assert any(a.startswith("`dig microsoft.com @10.0.0.10` did not finish") for a in record.actions)
    # Healthy layers of that same check rule their hypotheses out, the failing one does not.
    ruled = {x.hypothesis for x in record.ruled_out}
    assert "CoreDNS pods are down, failing or overloaded" not in ruled
    assert handoff.status(record) is Status.FAIL


def test_markdown_file_and_the_job_read_the_history_alone() -> None:
    outcomes = five_jobs()
    env = JobEnv(cluster="aks-prod", source="slack", thread_history=lambda: outcomes, job_thread=THREAD.thread_ts)
    report = handoff_job.execute(HandoffCommand(), env)
    assert report.summary.startswith("4 jobs since 22:14 UTC")
    (md,) = report.attachments
    text = md.content.decode()
    assert md.filename == "aksdns-handoff-1700000000-000100.md"
    assert "## Timeline (UTC)" in text and "| 22:23 | U0BOB | `check microsoft.com ×3` |" in text
    assert "~~One CoreDNS pod misbehaves" in text and "<@" not in text
    assert "aksdns-check-aks-prod-weu.json" in text  # the attachments index
    assert report.data["timeline"][3]["again"] is True


def test_empty_thread() -> None:
    report = handoff_job.execute(HandoffCommand(), JobEnv(cluster="c"))
    assert "no job has run" in report.summary and report.attachments == []
