"""`apiserver`: reach the API server stage by stage from the worker and every node; name the guide's cause.

gather (worker stages, credentials, the `kubernetes` Service, konnectivity, Azure — at once; then the
node probe pods, which need the Service's endpoints and the Azure FQDNs as targets) → analyse (rules
over evidence) → report. A refusal (401/403) or an unreachable API server is evidence, never a crash.
"""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aksdns.commands import ApiserverCommand
from aksdns.errors import ClusterError
from workers.analysis import apiserver_facts as facts
from workers.analysis.apiserver_rbac import fix_yaml
from workers.analysis.apiserver_rules import cause_of, diagnose
from workers.evidence.apiserver import (
    ApiserverEvidence,
    Authorization,
    AzureCluster,
    EndpointProbe,
    NodeRun,
    Permission,
)
from workers.findings import Finding, Severity
from workers.jobenv import JobEnv
from workers.probes import apiserver as drv
from workers.probes import azure, kube, pods
from workers.probes.apiserver_nodes import ProbePlan, Target, run_node_probes
from workers.report import Attachment, Button, Markdown, Report, Section, Status

RBAC_FIX = "aksdns-apiserver-rbac-fix.yaml"


# ---------------------------------------------------------------------------- planning (pure)


def node_targets(host: str, port: int, svc_endpoints: tuple[str, ...], az: AzureCluster) -> tuple[Target, ...]:
    """What nodes probe besides their pod environment's address: the worker's address when it is not
    loopback, the `kubernetes` endpoints (what kube-proxy sends ClusterIP traffic to) and Azure's FQDNs."""
    out: list[Target] = []
    if host and not host.startswith("127.") and host not in ("localhost", "::1"):
        out.append(Target(drv.CLIENT_CONFIGURATION, host, port))
    for ep in svc_endpoints[:2]:
        addr, _, p = ep.rpartition(":")
        # The endpoint is an address; the certificate names the Service's DNS name (every API server's does).
        out.append(Target("kubernetes endpoint", addr, int(p or 443), "kubernetes.default.svc"))
    if az.fqdn:
        out.append(Target("public FQDN", az.fqdn, 443))
    if az.private_fqdn:
        out.append(Target("private FQDN", az.private_fqdn, 443))
    seen: set[tuple[str, int]] = set()
    return tuple(t for t in out if (t.host, t.port) not in seen and not seen.add((t.host, t.port)))  # type: ignore[func-returns-value]


def _ca_pem(c: kube.Clients) -> str:
    return drv.client_address(c)[2] or ""


# ---------------------------------------------------------------------------- gathering (I/O)


def gather(cmd: ApiserverCommand, env: JobEnv, clients: kube.Clients | None = None) -> ApiserverEvidence:
    started = time.monotonic()
    c = clients or kube.connect(env.kubeconfig)
    host, port, _ca = drv.client_address(c)
    subject = cmd.service_account
    env.progress(f"reaching the API server at {host}:{port} from the worker: name, TCP, TLS, credentials")
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="apiserver") as pool:
        f_probe = pool.submit(drv.worker_probe, c)
        f_whoami = pool.submit(drv.whoami, c)
        f_service = pool.submit(drv.kubernetes_service, c)
        f_konn = pool.submit(drv.konnectivity, c)
        f_nodes = pool.submit(drv.list_nodes, c)
        f_azure = pool.submit(azure.read_cluster, env.azure)
        f_as = pool.submit(drv.service_account_access, c, subject.namespace, subject.name) if subject else None
        service, service_calls = f_service.result()
        azure_view = f_azure.result()
        nodes, nodes_call = f_nodes.result()
        ready = [n for n, ok in nodes if ok]
        skipped = tuple(f"{n} (NotReady)" for n, ok in nodes if not ok)
        notes: list[str] = []
        node_probes: list[EndpointProbe] = []
        runs: list[NodeRun] = []
        if ready:
            env.progress(f"probe pods on {len(ready)} nodes: the same stages from each node's network")
            plan = ProbePlan(
                run_id=pods.new_run_id(), namespace=env.namespace, image=env.probe_image,
                command=env.probe_command,
                targets=node_targets(host, port, service.endpoints or service.slice_endpoints, azure_view),
                ca_pem=_ca_pem(c), aksdns_job=env.job_id, requested_by=env.requested_by,
            )
            try:
                node_probes, runs, notes = run_node_probes(c.core, plan, ready)
            except ClusterError as err:
                notes.append(err.user_message)
                runs = [NodeRun(node=n, ok=False, error=err.user_message) for n in ready]
        elif nodes_call.status not in (200, 403):  # a 403 gets its permission line below
            notes.append(f"nodes not listed: {nodes_call.error}")
        worker = f_probe.result()
        authn = f_whoami.result()
        konn, konn_call = f_konn.result()
        calls = [*service_calls, konn_call, nodes_call]
        authz = drv.worker_authorization(c, env.namespace, authn.user or _worker_user(env), calls)
        as_access = f_as.result() if f_as is not None else None
    for note in _permission_notes(authz, as_access):
        if note not in notes:
            notes.append(note)
    return ApiserverEvidence(
        cluster=env.cluster,
        subject=str(subject) if subject else "",
        client_ip=cmd.client_ip or "",
        probes=(worker, *node_probes),
        node_runs=tuple(runs),
        authentication=authn,
        authorization=authz,
        subject_access=as_access,
        service=service,
        konnectivity=konn,
        azure=azure_view,
        skipped_nodes=skipped,
        notes=tuple(notes),
        elapsed_s=round(time.monotonic() - started, 2),
    )


def _worker_user(env: JobEnv) -> str:
    return f"system:serviceaccount:{env.namespace}:aksdns-worker"


def _permission_notes(authz: Authorization, as_access: Authorization | None) -> list[str]:
    """One clear line per permission the worker lacks for this command (RBAC-limited installs)."""
    out = []
    for call in authz.forbidden_calls:
        out.append(f"the worker may not {call.what.lower()} (HTTP 403): that part is unknown")
    if as_access is not None and as_access.error:
        out.append(f"--as needs `create subjectaccessreviews` (authorization.k8s.io), which the worker lacks: "
                   f"{as_access.error}")
    return out


# ---------------------------------------------------------------------------- report (pure)

CSV_COLUMNS = ("vantage", "target", "host", "port", "server_name", "addresses", "resolve_ms", "resolve_error",
               "connect_ms", "connect_error", "tls_ms", "tls_error", "certificate_names", "certificate_not_after",
               "certificate_fingerprint", "readyz", "livez")


def stages_csv(ev: ApiserverEvidence) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for p in ev.probes:
        cert = p.certificate
        w.writerow((
            p.vantage, p.target, p.host, p.port, p.server_name, " ".join(p.addresses),
            "" if p.resolve is None or p.resolve.ms is None else p.resolve.ms,
            "" if p.resolve is None else p.resolve.error,
            "" if p.connect.ms is None else p.connect.ms, p.connect.error,
            "" if p.tls.ms is None else p.tls.ms, p.tls.error,
            " ".join(cert.names) if cert else "", cert.not_after if cert else "", cert.fingerprint if cert else "",
            facts.health_cell(p.readyz), facts.health_cell(p.livez),
        ))
    return out.getvalue()


def _fix_permissions(ev: ApiserverEvidence) -> tuple[str, list[Permission]]:
    """Whose RBAC to fix and with what: the worker's refusals, or --as's missing basic read access."""
    if ev.authorization.denied:
        return ev.authorization.subject, list(ev.authorization.denied)
    s = ev.subject_access
    if s is not None:
        basic = [p for p in s.permissions if p.allowed is False and p.verb in ("get", "list", "watch")
                 and p.resource in ("pods", "services", "endpoints")]
        if basic:
            return s.subject, basic
    return "", []


def result_data(cmd: ApiserverCommand, ev: ApiserverEvidence, found: list[Finding]) -> dict[str, Any]:
    lines = facts.all_lines(ev)
    top = found[0] if found else None
    if top is not None and top.rule == "all_healthy":
        status = Status.OK
    elif top is not None and top.severity is Severity.CRITICAL:
        status = Status.FAIL  # the cause is named: whatever the lines say, the API server is not reachable as it should
    else:
        status = Status.WARN if facts.overall(lines) is Status.OK else facts.overall(lines)
    return {
        "command": cmd.to_dict(),
        "cluster": ev.cluster,
        "status": status.value,
        "cause": cause_of(top) if top else "",
        "layers": [{"layer": x.label, "status": x.status.value, "detail": x.detail} for x in lines],
        "facts": [{"question": f"{r[0]} → {r[1]} {r[2]}", "answer": " · ".join(r[3:])} for r in
                  facts.stage_table(ev).rows],
        "hypotheses": [f.to_dict() for f in found],
        "elapsed_s": ev.elapsed_s,
        "evidence": ev.to_dict(),
    }


def build_report(cmd: ApiserverCommand, ev: ApiserverEvidence) -> Report:
    found = diagnose(ev)
    data = result_data(cmd, ev, found)
    lines = facts.all_lines(ev)
    sections: list[Section] = []  # what changed since the previous run leads (workers.jobs.run)
    sections += lines
    sections.append(facts.stage_table(ev))
    sections += [f.hypothesis for f in found]
    foot = f"{facts.counts(ev)} in {ev.elapsed_s:.1f} s"
    if ev.skipped_nodes:
        foot += f" · nodes not probed: {', '.join(ev.skipped_nodes)}"
    sections.append(Markdown(f"_{foot}_"))
    stem = f"aksdns-apiserver-{ev.cluster}"
    attachments = [
        Attachment(f"{stem}.json", json.dumps(data, indent=1).encode(), "Every stage and finding (JSON)", "json"),
        Attachment(f"{stem}.csv", stages_csv(ev).encode(), "Every stage from every vantage point (CSV)", "csv"),
    ]
    user, perms = _fix_permissions(ev)
    if perms:
        attachments.append(Attachment(RBAC_FIX, fix_yaml(user, perms).encode(), "RBAC to grant what was refused",
                                      "yaml"))
    top = found[0]
    return Report(
        title=f"API server · {ev.cluster}" + (f" · as {ev.subject}" if ev.subject else ""),
        status=Status(data["status"]),
        summary=top.title,
        sections=sections,
        attachments=attachments,
        findings=found,
        buttons=[Button("aksdns_rerun", "Re-run", json.dumps(cmd.to_dict(), sort_keys=True), "primary")],
        data=data,
    )


def execute(cmd: ApiserverCommand, env: JobEnv) -> Report:
    """Run `apiserver` against the cluster of ``env`` (kubeconfig or in-cluster)."""
    return build_report(cmd, gather(cmd, env))

