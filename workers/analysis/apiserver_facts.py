"""`apiserver` evidence as the thread shows it: one line per vantage point and part, the stage table.

Pure: evidence in, report sections out. The line labels are stable (a Re-run compares them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from workers.analysis.figures import format_ms, plural
from workers.evidence.apiserver import (
    WORKER,
    ApiserverEvidence,
    EndpointProbe,
    HealthCheck,
    Stage,
)
from workers.report import Status, StatusLine, Table

STAGE_WORDS = {"resolve": "name", "connect": "TCP", "tls": "TLS", "readyz": "/readyz", "livez": "/livez"}
ERROR_WORDS = {
    "nxdomain": "NXDOMAIN",
    "no_answer": "no answer",
    "timeout": "time-out",
    "refused": "refused",
    "unreachable": "unreachable",
    "name_mismatch": "name mismatch",
    "untrusted": "untrusted chain",
    "expired": "expired",
    "handshake": "handshake failed",
    "skipped": "—",
}


def vantage_label(vantage: str) -> str:
    return "Worker pod" if vantage == WORKER else f"Node {vantage}"


def stage_cell(stage: Stage | None) -> str:
    if stage is None:
        return "(address)"
    if stage.ok:
        return format_ms(stage.ms, fine=False)
    return ERROR_WORDS.get(stage.error, stage.error or "failed")


def health_cell(check: HealthCheck | None) -> str:
    if check is None:
        return "—"
    if check.status is None:
        return "no answer"
    if check.ok:
        return "ok"
    if check.failing:
        return f"{check.status}: " + ", ".join(check.failing)
    return str(check.status)


def probe_summary(p: EndpointProbe) -> str:
    """`pod environment 10.224.0.1:443 → TCP 0.4 ms · TLS 3 ms · /readyz ok`."""
    parts = []
    if p.resolve is not None:
        parts.append(f"name {stage_cell(p.resolve)}" + (f" → {', '.join(p.addresses[:2])}" if p.resolve.ok else ""))
    parts.append(f"TCP {stage_cell(p.connect)}")
    if p.connect.ok:
        parts.append(f"TLS {stage_cell(p.tls)}")
    if not p.tls.ok and p.certificate is not None and p.tls.ran:
        names = ", ".join(p.certificate.names[:4]) or p.certificate.subject
        parts.append(f"certificate for {names}")
    for check in (p.readyz, p.livez):
        if check is not None:
            parts.append(f"{check.path} {health_cell(check)}")
    return f"{p.target} {p.host}:{p.port}: " + " · ".join(parts)


def vantage_lines(ev: ApiserverEvidence) -> list[StatusLine]:
    lines = []
    for vantage in ev.vantages:
        probes = ev.at(vantage)
        failed = [p for p in probes if p.failed_stage]
        status = Status.FAIL if failed and len(failed) == len(probes) else (Status.WARN if failed else Status.OK)
        lines.append(StatusLine(status, vantage_label(vantage), " | ".join(probe_summary(p) for p in probes)))
    for run in ev.node_runs:
        if not run.ok and run.node not in ev.vantages:
            lines.append(StatusLine(Status.INFO, vantage_label(run.node), f"not probed: {run.error}"))
    return lines


def service_line(ev: ApiserverEvidence) -> StatusLine:
    s = ev.service
    label = "kubernetes Service"
    if s.found is None:
        return StatusLine(Status.INFO, label, f"not read: {s.error}")
    if not s.found:
        return StatusLine(Status.FAIL, label, "default/kubernetes does not exist")
    eps = sorted(set(s.endpoints) | set(s.slice_endpoints))
    if not eps:
        where = "no Endpoints object" if s.endpoints_found is False else "no addresses"
        return StatusLine(Status.FAIL, label, f"{s.cluster_ip}:{s.port} → {where} and no ready EndpointSlice endpoint")
    return StatusLine(Status.OK, label, f"{s.cluster_ip}:{s.port} → {', '.join(eps)}")


def konnectivity_line(ev: ApiserverEvidence) -> StatusLine:
    k = ev.konnectivity
    label = "konnectivity-agent"
    if not k.read:
        return StatusLine(Status.INFO, label, f"not read: {k.error}")
    logs = [r for r in ev.node_runs if r.log_read is not None]
    failed_logs = [r for r in logs if r.log_read is False]
    log_text = ""
    if logs:
        log_text = f"; probe pod logs read through the API server on {len(logs) - len(failed_logs)}/{len(logs)} nodes"
    if k.log_read is False:
        log_text += f"; agent log read failed: {k.log_error}"
    if not k.pods:
        status = Status.FAIL if failed_logs or k.log_read is False else Status.WARN
        return StatusLine(status, label, "no konnectivity-agent pod in kube-system" + log_text)
    detail = f"{k.ready}/{len(k.pods)} Ready (" + ", ".join(
        f"{p.name} on {p.node or '?'}" + ("" if p.ready else f" {p.phase}") for p in k.pods
    ) + ")" + log_text
    status = Status.OK if k.ready == len(k.pods) and not failed_logs and k.log_read is not False else Status.FAIL
    return StatusLine(status, label, detail)


def auth_lines(ev: ApiserverEvidence) -> list[StatusLine]:
    a = ev.authentication
    if a.ok:
        authn = StatusLine(Status.OK, "Authentication", f"{a.user} ({', '.join(a.groups[:3])}) in {format_ms(a.ms)}")
    elif a.status == 401:
        authn = StatusLine(Status.FAIL, "Authentication", "401 Unauthorized: the credentials are rejected")
    else:
        authn = StatusLine(Status.INFO, "Authentication", a.error or "not asked")
    z = ev.authorization
    denied = z.denied
    forbidden = z.forbidden_calls
    if forbidden or denied:
        what = ", ".join(p.text for p in denied[:4]) or ", ".join(c.what for c in forbidden[:3])
        authz = StatusLine(Status.FAIL, "Authorization", f"403 for the worker: may not {what}")
    elif z.calls and all(c.status in (200, 404) for c in z.calls):
        first = ", ".join(c.what for c in z.calls[:3])
        authz = StatusLine(Status.OK, "Authorization", f"{len(z.calls)} calls allowed ({first}…)")
    else:
        authz = StatusLine(Status.INFO, "Authorization", "not asked (the API server was not reached)")
    lines = [authn, authz]
    if ev.subject_access is not None:
        s = ev.subject_access
        if s.error and not s.permissions:
            lines.append(StatusLine(Status.INFO, f"ServiceAccount {ev.subject}", f"not asked: {s.error}"))
        else:
            allowed = [p.text for p in s.permissions if p.allowed]
            refused = [p for p in s.permissions if p.allowed is False]
            status = Status.FAIL if any(p.verb == "list" and p.resource == "pods" for p in refused) else Status.OK
            lines.append(StatusLine(
                status, f"ServiceAccount {ev.subject}",
                f"may {len(allowed)}/{len(s.permissions)} of the asked: " + (", ".join(allowed[:5]) or "nothing"),
            ))
    return lines


def in_ranges(ip: str, ranges: Sequence[str]) -> bool | None:
    """Whether ``ip`` is inside any of the CIDR ``ranges`` (None when the address is not one)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for r in ranges:
        try:
            if addr in ipaddress.ip_network(r, strict=False):
                return True
        except ValueError:
            continue
    return False


AZ_SHOW = "az aks show -g <resource-group> -n <cluster> --query apiServerAccessProfile"


def azure_line(ev: ApiserverEvidence) -> StatusLine:
    az = ev.azure
    label = "Azure"
    if not az.configured:
        extra = f" (is {ev.client_ip} inside them?)" if ev.client_ip else ""
        return StatusLine(Status.INFO, label, f"no Azure credentials configured: run `{AZ_SHOW}` for the authorized "
                                              f"IP ranges{extra}, `--query networkProfile.outboundType`")
    if not az.read:
        return StatusLine(Status.INFO, label, f"not read: {az.error}; run `{AZ_SHOW}`")
    parts = []
    if az.private_cluster:
        parts.append(f"private cluster ({az.private_fqdn or 'private FQDN unknown'}; private DNS zone "
                     f"{az.private_dns_zone or 'system'}; public FQDN {'on' if az.public_fqdn_enabled else 'off'})")
    else:
        parts.append(f"public API server {az.fqdn}")
    if az.authorized_ranges:
        parts.append(f"authorized IP ranges {', '.join(az.authorized_ranges)}")
    elif not az.private_cluster:
        parts.append("no authorized IP ranges (open to any address)")
    if ev.client_ip:
        inside = in_ranges(ev.client_ip, az.authorized_ranges) if az.authorized_ranges else None
        if inside is True:
            parts.append(f"client {ev.client_ip} is inside")
        elif inside is False:
            parts.append(f"client {ev.client_ip} is NOT inside")
    parts.append(f"outbound type {az.outbound_type or 'unknown'}")
    return StatusLine(Status.OK, label, "; ".join(parts))


def stage_table(ev: ApiserverEvidence) -> Table:
    rows = []
    for p in ev.probes:
        rows.append((
            vantage_label(p.vantage), p.target, f"{p.host}:{p.port}", stage_cell(p.resolve), stage_cell(p.connect),
            stage_cell(p.tls) if p.connect.ok else "—", health_cell(p.readyz), health_cell(p.livez),
        ))
    return Table(
        title="Each stage, from each vantage point (latency or what failed)",
        columns=("From", "Address", "Host:port", "Name", "TCP", "TLS", "/readyz", "/livez"),
        rows=tuple(rows),
    )


def all_lines(ev: ApiserverEvidence) -> list[StatusLine]:
    return [*vantage_lines(ev), *auth_lines(ev), service_line(ev), konnectivity_line(ev), azure_line(ev)]


def overall(lines: Sequence[StatusLine]) -> Status:
    if any(x.status is Status.FAIL for x in lines):
        return Status.FAIL
    if any(x.status is Status.WARN for x in lines):
        return Status.WARN
    return Status.OK


def counts(ev: ApiserverEvidence) -> str:
    nodes = len(ev.node_vantages)
    return f"{plural(len(ev.probes), 'address probe')} from the worker and {plural(nodes, 'node')}"
