"""`capture`: guarded packet captures on client pods, every CoreDNS pod or a node — streamed to the
worker, merged into one pcapng, attached to the thread, analysed per hop and by `analyze`.

gather (find the targets; run their capture containers and stream their bytes: workers.capture.session)
-> merge (one pcapng, an interface per target) -> analyse (per hop: workers.analysis.capture_hops; the
merged file: `analyze`'s core) -> report (pure: workers.analysis.capture_report). With ``--live`` the
stream is decoded into rows as it arrives (workers.analysis.capture_live) and attached as CSV.

The bot asked for confirmation and re-authorized the Start click before this runs; the Stop button and
Ctrl-C end the capture early (``env.stop_requested``), and every capture container ends whatever happens.
"""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import replace
from pathlib import Path

from aksdns.commands import AnalyzeCommand, CaptureCommand
from aksdns.errors import AksDnsError, ClusterError
from aksdns.verbs import capture_targets
from workers.analysis import capture_report
from workers.analysis.capture_hops import HopView, per_hop
from workers.analysis.capture_live import COLUMNS, LiveSummary, LiveTracker, Row, progress_line
from workers.analysis.capture_wire import DnsMessage, decode
from workers.capture import merge, spool
from workers.capture.pcapio import Record
from workers.capture.session import CaptureConfig, TargetRun, start_all, stop_all, wait_capture
from workers.evidence.capture import MECHANISM_TEXT, ClusterView, Role, Target, TargetProblem
from workers.jobenv import JobEnv
from workers.probes import capture_pods as cp
from workers.probes import kube, pods
from workers.report import Report, Status

HOP_MESSAGES_PER_TARGET = 100_000  # bounds the per-hop pass's memory on a flood
PROGRESS_EVERY_S = 3.0


def resolve_targets(c: kube.Clients, cmd: CaptureCommand) -> tuple[list[Target], list[TargetProblem]]:
    """The command's targets as the cluster has them now; problems say why one cannot be captured."""
    found: list[Target | TargetProblem] = []
    if cmd.coredns:
        found += cp.coredns_targets(c)
        if not found:
            found.append(TargetProblem("kube-system/coredns", "no CoreDNS pod (label k8s-app=kube-dns)"))
    found += [cp.pod_target(c, ref.namespace, ref.name, Role.CLIENT) for ref in cmd.pods]
    if cmd.node:
        found.append(cp.node_target(c, cmd.node))
    targets, problems, seen = [], [], set()
    for item in found:
        if isinstance(item, TargetProblem):
            problems.append(item)
        elif item.label not in seen:
            seen.add(item.label)
            targets.append(item)
    return targets, problems


def execute(cmd: CaptureCommand, env: JobEnv) -> Report:
    spool.sweep()
    clients = kube.connect(env.kubeconfig)
    targets, problems = resolve_targets(clients, cmd)
    if not targets:
        raise AksDnsError("nothing to capture: " + "; ".join(f"{p.label} {p.reason}" for p in problems))
    try:
        view = cp.cluster_view(clients)
    except ClusterError:
        view = ClusterView()  # the per-hop view then knows less; the capture itself goes on
    run_id = pods.new_run_id()
    config = CaptureConfig(
        agent=cp.AgentSpec(run_id, env.probe_image, env.probe_command, cp.agent_deadline(cmd.duration_s),
                           env.job_id, env.requested_by),
        namespace=env.namespace, filter=cmd.filter, snaplen=env.capture_snaplen,
        cap_bytes=env.capture_max_bytes, live=cmd.live)
    directory = spool.make(env.workdir, env.capture_retention_s)
    live = _Live(directory, _names(clients, view), frozenset(view.coredns_pods), run_id) if cmd.live else None
    env.progress(f"starting capture containers on {', '.join(capture_targets(cmd))}…")
    started = time.monotonic()
    with pods.pod_run(clients.core, env.namespace) as runner:
        runs = [TargetRun(clients, runner, t, config, directory, on_records=live.records if live else None)
                for t in targets]
        try:
            start_all(runs)
            capturing = [r for r in runs if r.capturing]
            if not capturing:
                raise AksDnsError("no target could be captured: "
                                  + "; ".join(f"{r.target.label}: {r.result.error}" for r in runs))
            env.progress("capturing — " + " · ".join(_how(r) for r in runs))
            t0 = time.monotonic()

            def show(elapsed: float) -> None:
                env.progress(_progress(runs, elapsed, cmd.duration_s, live))

            ended_by = wait_capture(capturing, cmd.duration_s, env.stop_requested, show, PROGRESS_EVERY_S)
            elapsed = time.monotonic() - t0
            env.progress(f"{'stopped' if ended_by == 'stopped' else 'finishing'} after {elapsed:.0f} s — "
                         "ending the capture containers…")
        finally:
            stop_all(runs)
    for r in runs:
        r.result.ring_dropped_packets = r.ring.counts.dropped_packets
    outcome = capture_report.CaptureOutcome(
        duration_s=cmd.duration_s, elapsed_s=elapsed, ended_by=ended_by, filter=cmd.filter,
        snaplen=env.capture_snaplen, cap_bytes=env.capture_max_bytes, results=[r.result for r in runs],
        problems=problems)
    title = f"capture: {', '.join(capture_targets(cmd))}"
    if live is not None:
        live.finish()
        outcome.live = live.summary()
        outcome.live_file = live.path.name
        outcome.delivery = env.deliver_file(live.path, live.path.name, "DNS rows (capture --live)")
        return capture_report.build_report(outcome, title=title + " (live)")
    env.progress("merging the captures into one pcapng…")
    merged = directory / f"capture-{run_id}.pcapng"
    outcome.merged_packets = merge.merge(
        [merge.Source(r.target.label, _description(r), r.ring) for r in runs if r.ring.info is not None], merged)
    outcome.merged_name = merged.name
    outcome.hops, outcome.hop_note = _per_hop(runs, view)
    env.progress("analysing the merged capture…")
    _post_analysis(env, merged)
    outcome.delivery = env.deliver_file(merged, merged.name, f"capture {run_id}: one interface per target")
    report = capture_report.build_report(outcome, title=title)
    report.data["seconds_total"] = round(time.monotonic() - started, 1)
    return report


def _how(r: TargetRun) -> str:
    if r.result.error:
        return f"{r.target.label}: ❌ {r.result.error}"
    how = MECHANISM_TEXT.get(r.result.mechanism, "") if r.result.mechanism else ""
    fallback = " (ephemeral containers refused)" if r.result.fallback_reason else ""
    return f"{r.target.label}: {how}{fallback}"


def _progress(runs: list[TargetRun], elapsed: float, duration: int, live: _Live | None) -> str:
    per = " · ".join(f"{r.target.label} {r.result.packets:,} pkts {r.result.bytes / 1024:,.0f} KiB"
                     for r in runs if not r.result.error)
    line = f"capturing {elapsed:.0f}/{duration} s — {per}"
    if live is not None:
        line += f"\nlive: {progress_line(live.summary(), 100.0)}"
    return line


def _description(r: TargetRun) -> str:
    how = MECHANISM_TEXT.get(r.result.mechanism, "") if r.result.mechanism else ""
    node = f" on node {r.target.node}" if r.target.node else ""
    return f"{r.target.role.value} {r.target.label}{node}: {how}, interface {r.result.interface}"


def _per_hop(runs: list[TargetRun], view: ClusterView) -> tuple[HopView | None, str]:
    roles = {r.target.role for r in runs if not r.result.error}
    if Role.CLIENT not in roles or Role.COREDNS not in roles:
        return None, "The per-hop view needs a client pod (--pod) and the CoreDNS pods (--coredns) captured together."
    messages: dict[int, list[DnsMessage]] = {}
    capped = False
    usable = [r for r in runs if not r.result.error]
    for i, r in enumerate(usable):
        info = r.ring.info
        out: list[DnsMessage] = []
        if info is not None:
            for rec in r.ring.records():
                m = decode(rec.ts_ns, info.linktype, rec.data)
                if m is not None:
                    out.append(m)
                    if len(out) >= HOP_MESSAGES_PER_TARGET:
                        capped = True
                        break
        messages[i] = out
    view_out = per_hop([r.target for r in usable], messages, view)
    note = f"Per hop over the first {HOP_MESSAGES_PER_TARGET:,} DNS messages of each target." if capped else ""
    return view_out, note


def _post_analysis(env: JobEnv, merged: Path) -> None:
    """`analyze` on the merged file — its own job, as the CLI runs it on a path — posted in the thread."""
    from workers import jobs

    command = AnalyzeCommand(files=(str(merged),))
    try:
        report = jobs.execute(command, replace(env, source="cli", progress=lambda _text: None))
    except AksDnsError as exc:
        report = Report(title=f"analyze {merged.name}", status=Status.WARN,
                        summary=f"the merged capture could not be analysed: {exc.message}")
    env.post_report(report)


def _names(c: kube.Clients, view: ClusterView) -> dict[str, str]:
    names = {ip: f"kube-system/{name}" for ip, name in view.coredns_pods.items()}
    try:
        names.update(cp.pod_names_by_ip(c))
    except ClusterError:
        pass  # rows then show addresses
    for ip in view.service_ips:
        names[ip] = "kube-dns (Service)"
    return names


class _Live:
    """``--live``: every target's records decoded into rows, written to one CSV as they come."""

    def __init__(self, directory: Path, names: dict[str, str], coredns_ips: frozenset[str], run_id: str) -> None:
        self.path = directory / f"trace-dns-{run_id}.csv"
        self._file = self.path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)
        self._lock = threading.Lock()
        self.names = names
        self.coredns_ips = coredns_ips
        self.trackers: dict[str, LiveTracker] = {}

    def _sink(self, row: Row) -> None:
        with self._lock:
            self._csv.writerow(row.cells())

    def records(self, run: TargetRun, records: list[Record]) -> None:
        label = run.target.label
        tracker = self.trackers.get(label)
        if tracker is None:
            tracker = self.trackers[label] = LiveTracker(self.names, self._sink, self.coredns_ips)
        info = run.live_parser.info
        if info is None:
            return
        for rec in records:
            m = decode(rec.ts_ns, info.linktype, rec.data)
            if m is not None:
                tracker.feed(label, m)

    def finish(self) -> None:
        for t in self.trackers.values():
            t.finish()
        with self._lock:
            self._file.close()

    def summary(self) -> LiveSummary:
        total = LiveSummary()
        for t in list(self.trackers.values()):
            s = t.summary
            total.answered += s.answered
            total.unanswered += s.unanswered
            total.slow += s.slow
            for k, v in s.by_rcode.items():
                total.by_rcode[k] = total.by_rcode.get(k, 0) + v
            total.unanswered_rows += s.unanswered_rows[: max(0, 20 - len(total.unanswered_rows))]
            total.slowest = sorted([*total.slowest, *s.slowest], key=lambda x: -x[0])[:20]
        return total

