"""The `dig` job: every server × name × type (× repeat) at once, then one report.

gather (``run_queries_sync``, injectable) -> analyse (``dig_summary.summarize``, pure)
-> report (``build_report``, pure).  No server given means the nameservers of the
worker's resolv.conf, i.e. what a pod on this node would use.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence

from aksdns.commands import DigCommand, DnsServer
from aksdns.errors import AksDnsError, ClusterError, PolicyRefused, UsageError
from workers.analysis.dig_summary import DigSummary, summarize
from workers.analysis.figures import SLOW_MS, is_slow
from workers.evidence.dns import Query, QueryResult
from workers.jobenv import JobEnv
from workers.probes.dns import run_queries_sync, socket_budget
from workers.probes.resolvconf import ResolvConf, read_resolv_conf
from workers.report import Attachment, Markdown, Report, Section, Status, StatusLine, Table

# Past this many results the full list also goes out as a CSV file: a Slack table that
# long is unreadable, and the renderer may cut it down to fit Block Kit limits.
CSV_AFTER_ROWS = 20

Runner = Callable[..., list[QueryResult]]


def servers_and_notes(cmd: DigCommand, env: JobEnv) -> tuple[tuple[DnsServer, ...], list[Section]]:
    """Servers to ask, plus what the report should say about where they came from."""
    if cmd.servers:
        return cmd.servers, []
    try:
        conf = read_resolv_conf(env.resolv_conf)
    except OSError as exc:
        raise AksDnsError(f"cannot read {env.resolv_conf}: {exc.strerror or exc}") from None
    if not conf.nameservers:
        raise AksDnsError(f"no nameserver in {env.resolv_conf}; name one with @SERVER")
    # A link-local IPv6 nameserver may carry a zone (fe80::1%eth0); keep it as the host.
    servers = tuple(DnsServer(ns) for ns in conf.nameservers)
    return servers, resolv_notes(conf, str(env.resolv_conf))


def resolv_notes(conf: ResolvConf, path: str) -> list[Section]:
    """Pure: say which resolv.conf servers were asked, and flag the ones glibc never uses."""
    notes: list[Section] = [
        Markdown(f"No server given: asked the nameservers of `{path}` ({', '.join(conf.nameservers)}).")
    ]
    if conf.ignored_nameservers:
        notes.append(
            StatusLine(
                Status.WARN,
                "resolv.conf",
                f"{', '.join(conf.ignored_nameservers)} listed after the first three nameservers: "
                "glibc never asks them",
            )
        )
    return notes


def build_queries(cmd: DigCommand, servers: Sequence[DnsServer]) -> list[Query]:
    """Server-major order, so the results table reads one server at a time."""
    return [
        Query(server=server, name=name, rdtype=rdtype, attempt=attempt, tcp=cmd.tcp)
        for server in servers
        for name in cmd.names
        for rdtype in cmd.types
        for attempt in range(1, cmd.repeat + 1)
    ]


def _answer_cell(r: QueryResult) -> str:
    if r.error:
        return r.error
    return ", ".join(r.answers) if r.answers else "—"


def _latency_cell(r: QueryResult) -> str:
    text = f"{r.latency_ms:.2f}" if r.latency_ms < 10 else f"{r.latency_ms:.1f}"
    # Only real answers get the slow mark: a TIMEOUT is already a failure of its own.
    return f"{text} ⚠️" if r.responded and is_slow(r.latency_ms) else text


def _status_cell(r: QueryResult) -> str:
    return f"{r.status} (TC→TCP)" if r.tcp_retry else r.status


def results_table(results: Sequence[QueryResult], *, with_attempt: bool) -> Table:
    columns = ("server", "name", "type", *(("#",) if with_attempt else ()), "status", "ms", "answers")
    rows = tuple(
        (
            str(r.server),
            r.name,
            r.rdtype,
            *((str(r.attempt),) if with_attempt else ()),
            _status_cell(r),
            _latency_cell(r),
            _answer_cell(r),
        )
        for r in results
    )
    return Table(title="Results", columns=columns, rows=rows)


def results_csv(results: Sequence[QueryResult]) -> bytes:
    """Every result, one row each, with the error text and TCP-retry flag a table hides."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["server", "name", "type", "attempt", "status", "latency_ms", "tcp_retry", "answers", "error"])
    for r in results:
        writer.writerow(
            [
                str(r.server),
                r.name,
                r.rdtype,
                r.attempt,
                r.status,
                f"{r.latency_ms:.1f}",
                "yes" if r.tcp_retry else "",
                " ".join(r.answers),
                r.error or "",
            ]
        )
    return buf.getvalue().encode()


def summary_line(summary: DigSummary, elapsed_s: float) -> str:
    servers = len(summary.servers)
    line = (
        f"{summary.queries} quer{'y' if summary.queries == 1 else 'ies'} to {servers} "
        f"server{'' if servers == 1 else 's'} in {elapsed_s:.2f} s: "
        f"{summary.answered} answered, {summary.failed} failed"
    )
    if summary.slow:
        line += f", {summary.slow} slow (≥ {SLOW_MS / 1000:g} s)"
    if summary.disagreements:
        line += f"; servers disagree on {len(summary.disagreements)} name(s)"
    return line


def report_title(cmd: DigCommand) -> str:
    """``dig www.example.com A``; past three names, a count (a title is one short line)."""
    names = list(cmd.names[:3])
    if len(cmd.names) > 3:
        names.append(f"(+{len(cmd.names) - 3} more)")
    return " ".join(["dig", *names, *cmd.types])


def build_report(
    cmd: DigCommand, results: Sequence[QueryResult], elapsed_s: float, notes: Sequence[Section] = ()
) -> Report:
    """Pure: results -> report (sections, CSV for long lists, the `--format json` data)."""
    summary = summarize(results)
    sections: list[Section] = list(notes)
    sections += [StatusLine(s.status, s.server, s.line()) for s in summary.servers]
    sections += [StatusLine(Status.WARN, "servers disagree", d.line()) for d in summary.disagreements]
    sections.append(results_table(results, with_attempt=cmd.repeat > 1))
    flaky = [s.server for s in summary.servers if s.answered and s.failed]
    if cmd.repeat > 1 and flaky:
        sections.append(
            Markdown(
                f"Intermittent: {', '.join(flaky)} answered some attempts and failed others "
                "(loss or overload, not a hard outage)."
            )
        )
    attachments = []
    if len(results) > CSV_AFTER_ROWS:
        attachments.append(
            Attachment(filename="dig-results.csv", content=results_csv(results), title="dig results", filetype="csv")
        )
    summary_json = summary.to_json()
    summary_json["elapsed_ms"] = round(elapsed_s * 1000.0, 1)
    return Report(
        title=report_title(cmd),
        status=summary.status,
        summary=summary_line(summary, elapsed_s),
        sections=sections,
        attachments=attachments,
        data={"results": [r.to_json() for r in results], "summary": summary_json},
    )


def known_cluster_servers(env: JobEnv) -> frozenset[DnsServer]:
    """The cluster's own DNS servers, for servers asked on a port other than 53 (empty when unreadable)."""
    from workers.probes import kube  # the Kubernetes client loads only when a port needs it

    try:
        return kube.cluster_dns_servers(kube.connect(env.kubeconfig))
    except ClusterError:
        return frozenset()


def check_policy(cmd: DigCommand, env: JobEnv, known: Callable[[], frozenset[DnsServer]]) -> None:
    """For Slack users, the servers named in the command must pass the dig policy (PolicyRefused)."""
    if env.source != "slack" or not cmd.servers:
        return  # resolv.conf's own servers, or a CLI user on their own machine
    unknown_port = [s for s in cmd.servers if env.dig_policy.refusal(s, known=()) is not None]
    cluster = known() if any(env.dig_policy.refusal(s) is None for s in unknown_port) else frozenset()
    for server in cmd.servers:
        reason = env.dig_policy.refusal(server, known=cluster)
        if reason:
            raise PolicyRefused(reason)


def concurrency_for(count: int) -> int:
    return max(1, min(count, socket_budget()))


def execute(
    cmd: DigCommand,
    env: JobEnv,
    *,
    runner: Runner = run_queries_sync,
    known: Callable[[], frozenset[DnsServer]] | None = None,
) -> Report:
    """Run `dig`; ``runner`` is the query engine, ``known`` the cluster's DNS servers (tests may stand in)."""
    if not cmd.names:
        raise UsageError("dig needs at least one NAME", command="dig")
    check_policy(cmd, env, known or (lambda: known_cluster_servers(env)))
    servers, notes = servers_and_notes(cmd, env)
    queries = build_queries(cmd, servers)
    env.progress(f"asking {len(servers)} server(s): {len(queries)} queries, timeout {cmd.timeout:g} s")
    start = time.monotonic()
    # Everything in flight at once (up to 5,000 queries, the grammar's bound), so the total is
    # one timeout at worst, not one per round of slots.
    results = runner(queries, timeout=cmd.timeout, concurrency=concurrency_for(len(queries)))
    return build_report(cmd, results, time.monotonic() - start, notes)
