"""`apiserver` evidence → the guide's cause, ranked (the shared findings model).

The guide's causes for "can't reach the API server": authorized IP ranges, a private cluster reached
from outside its network, private DNS forwarding, a network policy or firewall, RBAC — and the API
server itself (its health checks, its certificate, its `kubernetes` endpoints, its tunnel to the
nodes). Each rule is pure ``(ApiserverEvidence) -> Finding | None``; the cause leads the title.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable

from workers import findings
from workers.analysis.apiserver_facts import AZ_SHOW, ERROR_WORDS, in_ranges, vantage_label
from workers.evidence.apiserver import (
    EXPIRED,
    NAME_MISMATCH,
    NO_ANSWER,
    NXDOMAIN,
    REFUSED,
    TIMEOUT,
    UNREACHABLE,
    UNTRUSTED,
    WORKER,
    ApiserverEvidence,
    EndpointProbe,
)
from workers.findings import HIGH, LOW, MEDIUM, Finding, Subject
from workers.report import Hypothesis

GUIDE = (
    "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/dns/"
    "basic-troubleshooting-dns-resolution-problems"
)
AUTHORIZED_RANGES_DOC = "https://learn.microsoft.com/azure/aks/api-server-authorized-ip-ranges"
PRIVATE_DOC = "https://learn.microsoft.com/azure/aks/private-clusters"
PRIVATE_CONNECT_DOC = PRIVATE_DOC + "#options-for-connecting-to-the-private-cluster"
PRIVATE_DNS_DOC = PRIVATE_DOC + "#hub-and-spoke-with-custom-dns"
EGRESS_DOC = "https://learn.microsoft.com/azure/aks/outbound-rules-control-egress"
NETWORK_POLICY_DOC = "https://learn.microsoft.com/azure/aks/use-network-policies"
RBAC_DOC = "https://kubernetes.io/docs/reference/access-authn-authz/rbac/"
IDENTITY_DOC = "https://learn.microsoft.com/azure/aks/concepts-identity"
CERTS_DOC = "https://learn.microsoft.com/azure/aks/certificate-rotation"
HEALTH_DOC = "https://kubernetes.io/docs/reference/using-api/health-checks/"
KONNECTIVITY_DOC = "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/connectivity/tunnel-connectivity-issues"

# The guide's causes, as the thread names them (a finding's title starts with one).
CAUSES = {
    "authorized_ranges": "Authorized IP ranges",
    "private_outside": "Private cluster reached from outside its network",
    "private_dns": "Private DNS forwarding",
    "network_path": "A network policy or firewall",
    "rbac": "RBAC",
    "authentication": "Authentication",
    "apiserver": "The API server itself",
}
RULE_CAUSE = {
    "authorized_ranges": "authorized_ranges",
    "private_outside": "private_outside",
    "private_dns": "private_dns",
    "network_path": "network_path",
    "tls_interception": "network_path",
    "rbac": "rbac",
    "service_account_rbac": "rbac",
    "authentication": "authentication",
    "health_checks": "apiserver",
    "certificate": "apiserver",
    "not_listening": "apiserver",
    "kubernetes_endpoints": "apiserver",
    "konnectivity": "apiserver",
}
KS = "kubectl -n kube-system"
DEBUG_NODE = "kubectl debug node/{node} -it --image=mcr.microsoft.com/cbl-mariner/busybox:2.0 -- "
Rule = Callable[[ApiserverEvidence], Finding | None]
NETWORK_ERRORS = (TIMEOUT, UNREACHABLE, REFUSED)


def _title(rule: str, text: str) -> str:
    return f"{CAUSES[RULE_CAUSE[rule]]}: {text}"


def _who(vantages: list[str]) -> str:
    nodes = [v for v in vantages if v != WORKER]
    parts = (["the worker pod"] if WORKER in vantages else []) + (
        [f"node {nodes[0]}"] if len(nodes) == 1 else ([f"{len(nodes)} nodes ({', '.join(nodes)})"] if nodes else [])
    )
    return " and ".join(parts) or "nowhere"


def _node_for_actions(vantages: list[str]) -> str:
    return next((v for v in vantages if v != WORKER), "<node>")


# Address space a virtual network (or a network peered or connected to it) is made of; a client
# outside these cannot be inside the cluster's network.
VNET_SPACE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))


def _is_public(address: str) -> bool:
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return False
    return addr.version == 4 and not addr.is_loopback and not any(addr in n for n in VNET_SPACE)


def _connect_failures(ev: ApiserverEvidence) -> dict[tuple[str, int], list[EndpointProbe]]:
    out: dict[tuple[str, int], list[EndpointProbe]] = defaultdict(list)
    for p in ev.probes:
        if (p.resolve is None or p.resolve.ok) and not p.connect.ok and p.connect.error in NETWORK_ERRORS:
            out[(p.host, p.port)].append(p)
    return out


def _reached(ev: ApiserverEvidence, host: str, port: int) -> list[EndpointProbe]:
    return [p for p in ev.probes if p.host == host and p.port == port and p.connect.ok]


def _line(p: EndpointProbe) -> str:
    stage = p.failed_stage
    bad = {"resolve": p.resolve, "connect": p.connect, "tls": p.tls}.get(stage)
    what = ERROR_WORDS.get(bad.error, bad.error) if bad is not None else stage
    detail = f" ({bad.detail})" if bad is not None and bad.detail else ""
    return f"{vantage_label(p.vantage)} → {p.target} {p.host}:{p.port}: {stage} {what}{detail}"


# ---------------------------------------------------------------------------- Azure-side causes


def rule_authorized_ranges(ev: ApiserverEvidence) -> Finding | None:
    """The client (or the cluster's own egress) is not inside the API server's authorized IP ranges."""
    az = ev.azure
    if not az.read or not az.authorized_ranges or az.private_cluster:
        return None
    ranges = ", ".join(az.authorized_ranges)
    evidence = [f"authorized IP ranges (Azure): {ranges}"]
    actions = [
        AZ_SHOW.replace("apiServerAccessProfile", "apiServerAccessProfile.authorizedIpRanges"),
        "curl -s https://ifconfig.me   # from the client: its public address",
    ]
    if ev.client_ip and in_ranges(ev.client_ip, az.authorized_ranges) is False:
        evidence.append(f"client {ev.client_ip} is not inside any of them")
        actions.append(
            "az aks update -g <resource-group> -n <cluster> --api-server-authorized-ip-ranges "
            f"{ranges},{ev.client_ip}/32"
        )
        return Finding.of(
            "authorized_ranges", 96,
            Hypothesis(_title("authorized_ranges", f"{ev.client_ip} is not inside the API server's authorized IP "
                                                   "ranges"), HIGH, tuple(evidence), tuple(actions),
                       (AUTHORIZED_RANGES_DOC, GUIDE)),
            subjects=[Subject("cluster", az.resource_id.rsplit("/", 1)[-1])],
        )
    failing = [p for rows in _connect_failures(ev).values() for p in rows if p.connect.error == TIMEOUT]
    reached = [p for p in ev.probes if p.connect.ok]
    if not failing or reached:
        return None
    evidence += [_line(p) for p in failing[:6]]
    if az.outbound_type == "userDefinedRouting":
        evidence.append("outbound type userDefinedRouting: the cluster leaves through your firewall, whose public "
                        "address AKS does not add to the ranges")
        actions.append("az network firewall ip-config list -g <fw-resource-group> -f <firewall> "
                       "--query '[].publicIPAddress'   # add it to the ranges")
    else:
        evidence.append(f"outbound type {az.outbound_type or 'unknown'}: its outbound IPs "
                        f"{', '.join(az.outbound_ips) or '(not reported)'} must be inside the ranges")
    actions.append("az aks update -g <resource-group> -n <cluster> --api-server-authorized-ip-ranges "
                   f"{ranges},<egress-ip>/32")
    return Finding.of(
        "authorized_ranges", 92,
        Hypothesis(_title("authorized_ranges", "the cluster's own egress address is not authorized: every "
                                               "connection to the API server times out"),
                   HIGH, tuple(evidence), tuple(actions), (AUTHORIZED_RANGES_DOC, EGRESS_DOC, GUIDE)),
    )


def rule_private_outside(ev: ApiserverEvidence) -> Finding | None:
    """A private cluster's API server has no public endpoint: a client outside its network cannot reach it."""
    az = ev.azure
    if not (az.read and az.private_cluster and ev.client_ip and _is_public(ev.client_ip)):
        return None
    evidence = (
        f"Azure: private cluster, API server at {az.private_fqdn or 'its private FQDN'} (private DNS zone "
        f"{az.private_dns_zone or 'system'}); public FQDN {'enabled' if az.public_fqdn_enabled else 'disabled'}",
        f"client {ev.client_ip} is a public address: outside the cluster's virtual network",
    )
    return Finding.of(
        "private_outside", 94,
        Hypothesis(
            _title("private_outside", f"{ev.client_ip} cannot reach a private API server"), HIGH, evidence,
            (
                "connect from a VM in the cluster's virtual network, a peered network, VPN or ExpressRoute",
                "az aks command invoke -g <resource-group> -n <cluster> --command 'kubectl get pods -A'",
                "az aks show -g <resource-group> -n <cluster> --query privateFqdn",
            ),
            (PRIVATE_CONNECT_DOC, GUIDE),
        ),
    )


# ---------------------------------------------------------------------------- name, path, TLS


def rule_private_dns(ev: ApiserverEvidence) -> Finding | None:
    """The API server's name does not resolve at some vantage points (private zone, DNS forwarding)."""
    bad = [p for p in ev.probes if p.resolve is not None and not p.resolve.ok and p.resolve.error in
           (NXDOMAIN, NO_ANSWER)]
    if not bad:
        return None
    host = bad[0].host
    resolved = [p for p in ev.probes if p.host == host and p.resolve is not None and p.resolve.ok]
    private = ".privatelink." in host or bool(ev.azure.private_cluster)
    zone = host.split(".", 2)[-1] if ".privatelink." in host else "privatelink.<region>.azmk8s.io"
    evidence = [_line(p) for p in bad[:6]]
    if resolved:
        evidence.append(f"{_who([p.vantage for p in resolved])} resolve it: {', '.join(resolved[0].addresses)}")
    node = _node_for_actions([p.vantage for p in bad])
    actions = [
        DEBUG_NODE.format(node=node) + "cat /host/etc/resolv.conf",
        DEBUG_NODE.format(node=node) + f"nslookup {host}",
    ]
    if private:
        actions += [
            f"on the custom DNS servers: a conditional forwarder for {zone} to 168.63.129.16",
            f"az network private-dns link vnet list -g <node-resource-group> -z {zone} -o table",
        ]
    else:
        actions.append(f"on the custom DNS servers: forward azmk8s.io (or everything) so {host} resolves")
    return Finding.of(
        "private_dns", 91 if private else 84,
        Hypothesis(
            _title("private_dns", f"{host} does not resolve from {_who(sorted({p.vantage for p in bad}))}"),
            HIGH if private or resolved else MEDIUM, tuple(evidence), tuple(actions), (PRIVATE_DNS_DOC, GUIDE),
        ),
        subjects=[Subject("node", v) for v in sorted({p.vantage for p in bad}) if v != WORKER],
    )


def rule_network_path(ev: ApiserverEvidence) -> Finding | None:
    """TCP to the API server is dropped (or rejected) from some vantage points while others connect."""
    failures = _connect_failures(ev)
    partial = {k: rows for k, rows in failures.items() if _reached(ev, *k)}
    everywhere = {k: rows for k, rows in failures.items() if not _reached(ev, *k)
                  and not all(p.connect.error == REFUSED for p in rows)}
    if not partial and not everywhere:
        return None
    rows = [p for r in (partial or everywhere).values() for p in r]
    vantages = sorted({p.vantage for p in rows})
    evidence = [_line(p) for p in rows[:6]]
    for (host, port) in partial:
        ok = _reached(ev, host, port)
        evidence.append(f"{_who(sorted({p.vantage for p in ok}))} connect to {host}:{port}")
    node = _node_for_actions(vantages)
    actions = [
        DEBUG_NODE.format(node=node) + f"nc -vz -w 3 {rows[0].host} {rows[0].port}",
        "kubectl get networkpolicy -A",
        "az network nsg rule list -g <node-resource-group> --nsg-name <nsg> -o table   # outbound 443",
        "az network route-table route list -g <rg> --route-table-name <rt> -o table   # a firewall on the path?",
    ]
    if partial:
        title = f"TCP to the API server is dropped from {_who(vantages)} while others connect"
        score, conf = 88, HIGH
    else:
        title = f"TCP to the API server fails from everywhere probed ({_who(vantages)})"
        score, conf = 80, MEDIUM
        if not ev.azure.read:
            actions.insert(0, f"{AZ_SHOW}   # authorized IP ranges would drop it the same way")
    return Finding.of(
        "network_path", score,
        Hypothesis(_title("network_path", title), conf, tuple(evidence), tuple(actions),
                   (NETWORK_POLICY_DOC, EGRESS_DOC, GUIDE)),
        subjects=[Subject("node", v) for v in vantages if v != WORKER],
    )


def _tls_failures(ev: ApiserverEvidence, kinds: tuple[str, ...]) -> list[EndpointProbe]:
    return [p for p in ev.probes if p.connect.ok and not p.tls.ok and p.tls.error in kinds]


def rule_tls_interception(ev: ApiserverEvidence) -> Finding | None:
    """The certificate presented does not chain to the cluster's CA: a proxy or firewall terminates TLS."""
    bad = [p for p in _tls_failures(ev, (UNTRUSTED,))
           if p.certificate is None or not p.certificate.issued_by_cluster_ca]
    if not bad:
        return None
    p = bad[0]
    cert = p.certificate
    evidence = [_line(x) for x in bad[:6]]
    if cert is not None:
        evidence.append(f"presented: subject {cert.subject}, issuer {cert.issuer}, names {', '.join(cert.names[:4])}")
    node = _node_for_actions([x.vantage for x in bad])
    return Finding.of(
        "tls_interception", 86,
        Hypothesis(
            _title("tls_interception", f"TLS to {p.host} is intercepted for {_who(sorted({x.vantage for x in bad}))}:"
                                       " the certificate is not from the cluster's CA"),
            HIGH, tuple(evidence),
            (
                DEBUG_NODE.format(node=node) + f"openssl s_client -connect {p.host}:{p.port} -showcerts </dev/null",
                "exclude *.azmk8s.io (and the API server's FQDN) from TLS inspection on the firewall or proxy",
            ),
            (EGRESS_DOC, GUIDE),
        ),
    )


def rule_certificate(ev: ApiserverEvidence) -> Finding | None:
    """The API server's own certificate does not name the address clients use, or has expired."""
    bad = [p for p in _tls_failures(ev, (NAME_MISMATCH, EXPIRED))
           if p.certificate is None or p.certificate.issued_by_cluster_ca is not False]
    expiring = [p for p in ev.probes if p.tls.ok and p.certificate and (p.certificate.days_left or 99) < 7]
    if not bad and not expiring:
        return None
    if not bad:
        p = expiring[0]
        return Finding.of(
            "certificate", 45,
            Hypothesis(_title("certificate", f"the serving certificate expires in {p.certificate.days_left} days"
                              if p.certificate else "the serving certificate expires soon"),
                       MEDIUM, (f"{p.host}:{p.port}: not after {p.certificate.not_after if p.certificate else '?'}",),
                       ("az aks rotate-certs -g <resource-group> -n <cluster>",), (CERTS_DOC,)),
        )
    p = bad[0]
    cert = p.certificate
    expired = p.tls.error == EXPIRED
    evidence = [_line(x) for x in bad[:6]]
    if cert is not None:
        evidence.append(f"presented: {cert.subject}, names {', '.join(cert.names) or '(none)'}, issuer {cert.issuer}"
                        f" (the cluster's CA), not after {cert.not_after}, fingerprint {cert.fingerprint}")
    others = [x for x in ev.probes if x.tls.ok and x.certificate is not None]
    if others and cert is not None and others[0].certificate is not None:
        o = others[0]
        same = "the same certificate" if o.certificate and o.certificate.fingerprint == cert.fingerprint else (
            f"certificate {o.certificate.fingerprint if o.certificate else '?'}")
        evidence.append(f"{vantage_label(o.vantage)} verifies {o.host}:{o.port} fine ({same})")
    who = _who(sorted({x.vantage for x in bad}))
    title = (f"the API server's certificate has expired (seen from {who})" if expired else
             f"TLS name mismatch: the certificate at {p.host}:{p.port} does not name {p.server_name}, seen from {who}")
    node = _node_for_actions([x.vantage for x in bad])
    return Finding.of(
        "certificate", 87,
        Hypothesis(
            _title("certificate", title), HIGH, tuple(evidence),
            (
                DEBUG_NODE.format(node=node) + f"openssl s_client -connect {p.host}:{p.port} </dev/null 2>/dev/null"
                " | openssl x509 -noout -subject -ext subjectAltName -enddate",
                "compare with the name clients use: "
                "kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'",
                "az aks show -g <resource-group> -n <cluster> --query '{fqdn: fqdn, private: privateFqdn}'",
                "az aks rotate-certs -g <resource-group> -n <cluster>   # if the API server's own certificate is wrong",
            ),
            (CERTS_DOC, GUIDE),
        ),
    )


def rule_not_listening(ev: ApiserverEvidence) -> Finding | None:
    """Connections are refused everywhere: nothing listens at the API server's address."""
    failures = _connect_failures(ev)
    refused = {k: rows for k, rows in failures.items() if not _reached(ev, *k)
               and all(p.connect.error == REFUSED for p in rows)}
    if not refused:
        return None
    (host, port), rows = next(iter(refused.items()))
    return Finding.of(
        "not_listening", 85,
        Hypothesis(
            _title("not_listening",
                   f"nothing accepts connections at {host}:{port} ({_who(sorted({p.vantage for p in rows}))})"),
            HIGH, tuple(_line(p) for p in rows[:6]),
            ("az aks show -g <resource-group> -n <cluster> --query '{state: provisioningState, power: powerState}'",
             "kubectl get --raw='/readyz?verbose'", "check the Azure status page and the cluster's Resource health"),
            (GUIDE,),
        ),
    )


# ---------------------------------------------------------------------------- the API server's own state


def rule_health_checks(ev: ApiserverEvidence) -> Finding | None:
    """/readyz or /livez report failing checks (etcd, informer sync, ...)."""
    failing: dict[str, set[str]] = defaultdict(set)
    seen: dict[str, list[str]] = defaultdict(list)
    for p in ev.probes:
        for check in (p.readyz, p.livez):
            if check is not None and check.status is not None and not check.ok and check.status not in (401, 403):
                failing[check.path].update(check.failing or {f"HTTP {check.status}"})
                seen[check.path].append(p.vantage)
    if not failing:
        return None
    evidence = tuple(f"{path}?verbose: failing {', '.join(sorted(checks))} (from {_who(sorted(set(seen[path])))})"
                     for path, checks in sorted(failing.items()))
    worst = sorted(failing.get("/livez") or failing.get("/readyz") or set())
    return Finding.of(
        "health_checks", 89,
        Hypothesis(
            _title("health_checks", f"{'/livez' if '/livez' in failing else '/readyz'} fails: {', '.join(worst)}"),
            HIGH, evidence,
            ("kubectl get --raw='/readyz?verbose'", "kubectl get --raw='/livez?verbose'",
             "az aks show -g <resource-group> -n <cluster> --query powerState",
             "open a support case with the failing checks if they persist (the control plane is Microsoft's)"),
            (HEALTH_DOC, GUIDE),
        ),
    )


def rule_kubernetes_endpoints(ev: ApiserverEvidence) -> Finding | None:
    """The `kubernetes` Service has no endpoints: clients that use its ClusterIP reach nothing."""
    s = ev.service
    if not s.found or s.endpoints or s.slice_endpoints or (s.endpoints_found is None and s.error):
        return None
    evidence = (
        f"Service default/kubernetes {s.cluster_ip}:{s.port}: "
        + ("no Endpoints object" if s.endpoints_found is False else "an Endpoints object without addresses"),
        "no ready endpoint in its EndpointSlices",
        "in-cluster clients that use KUBERNETES_SERVICE_HOST=" + (s.cluster_ip or "its ClusterIP") + " reach nothing",
    )
    return Finding.of(
        "kubernetes_endpoints", 84,
        Hypothesis(
            _title("kubernetes_endpoints", "the kubernetes Service has no endpoints"), HIGH, evidence,
            ("kubectl get service kubernetes -o wide", "kubectl get endpoints kubernetes",
             "kubectl get endpointslices -l kubernetes.io/service-name=kubernetes",
             "kubectl get validatingadmissionpolicies,validatingwebhookconfigurations   # something refusing the "
             "API server's own endpoint updates?",
             "kubectl get --raw='/readyz?verbose'"),
            (GUIDE,),
        ),
        subjects=[Subject("service", "kubernetes", "default")],
    )


def rule_konnectivity(ev: ApiserverEvidence) -> Finding | None:
    """konnectivity-agent is down (logs, exec and port-forward fail), or the API server cannot reach some nodes."""
    k = ev.konnectivity
    failed_logs = [r for r in ev.node_runs if r.log_read is False]
    ok_logs = [r for r in ev.node_runs if r.log_read]
    if not k.read or ev.azure.vnet_integration:
        return None  # API Server VNet Integration has no konnectivity tunnel
    down = not k.pods or k.ready == 0
    if not down and not failed_logs and k.log_read is not False:
        return None
    evidence = []
    if not k.pods:
        evidence.append("no konnectivity-agent pod in kube-system (k8s-app=konnectivity-agent)")
    else:
        evidence.append(f"konnectivity-agent: {k.ready}/{len(k.pods)} Ready")
    if failed_logs:
        evidence.append(f"the API server could not fetch probe pod logs from {', '.join(r.node for r in failed_logs)}:"
                        f" {failed_logs[0].log_error}")
    if ok_logs:
        evidence.append(f"log reads worked from {', '.join(r.node for r in ok_logs)}")
    if k.log_read is False:
        evidence.append(f"agent log read: {k.log_error}")
    if not down and not (failed_logs or k.log_read is False):
        return None
    score = 82 if down and (failed_logs or k.log_read is False) else (78 if failed_logs else 40)
    title = ("konnectivity-agent is down: kubectl logs, exec and port-forward fail" if down else
             f"the API server cannot reach {len(failed_logs)} node(s) through its tunnel: logs and exec fail there")
    return Finding.of(
        "konnectivity", score,
        Hypothesis(
            _title("konnectivity", title), HIGH if score >= 78 else LOW, tuple(evidence),
            (f"{KS} get pods -l k8s-app=konnectivity-agent -o wide",
             f"{KS} describe deployment konnectivity-agent",
             f"{KS} logs -l k8s-app=konnectivity-agent --tail 50",
             "check that the nodes reach the API server on TCP 443 (the tunnel's way out)",
             f"{KS} rollout restart deployment konnectivity-agent"),
            (KONNECTIVITY_DOC, GUIDE),
        ),
        subjects=[Subject("node", r.node) for r in failed_logs],
    )


# ---------------------------------------------------------------------------- credentials


def rule_authentication(ev: ApiserverEvidence) -> Finding | None:
    """401: the API server does not accept the worker's credentials."""
    a = ev.authentication
    calls401 = [c for c in ev.authorization.calls if c.status == 401]
    if a.status != 401 and not calls401:
        return None
    evidence = [f"SelfSubjectReview: HTTP {a.status}" if a.status else "SelfSubjectReview not answered"]
    evidence += [f"{c.what}: HTTP 401" for c in calls401[:3]]
    return Finding.of(
        "authentication", 94,
        Hypothesis(
            _title("authentication", "the API server rejects the worker's credentials (401 Unauthorized)"), HIGH,
            tuple(evidence),
            ("kubectl auth whoami", "kubectl -n <aksdns-namespace> rollout restart deployment <release>-worker   "
             "# a fresh projected token", "az aks get-credentials -g <resource-group> -n <cluster> --overwrite-existing"
             "   # for a person's kubeconfig"),
            (IDENTITY_DOC, GUIDE),
        ),
    )


def rule_rbac(ev: ApiserverEvidence) -> Finding | None:
    """403: the worker's ServiceAccount may not do what aksdns needs; the fix is attached."""
    z = ev.authorization
    denied = z.denied
    if not z.forbidden_calls and not denied:
        return None
    evidence = [f"{c.what}: HTTP 403" for c in z.forbidden_calls[:4]]
    evidence += [f"may not {p.text} ({p.why})" for p in denied]
    if z.rules:
        evidence.append(f"what it may do in {z.rules_namespace} (SelfSubjectRulesReview): {'; '.join(z.rules[:6])}")
    first = denied[0].text if denied else z.forbidden_calls[0].what
    sa = z.subject.removeprefix("system:serviceaccount:").replace(":", "/")
    return Finding.of(
        "rbac", 93,
        Hypothesis(
            _title("rbac", f"the worker's ServiceAccount {sa} may not {first} (403)"), HIGH, tuple(evidence),
            ("kubectl apply -f aksdns-apiserver-rbac-fix.yaml   # attached: review it first",
             f"kubectl auth can-i --list --as={z.subject}",
             "helm upgrade <release> charts/aksdns --reuse-values   # restores the chart's RBAC"),
            (RBAC_DOC, IDENTITY_DOC, GUIDE),
        ),
        subjects=[Subject("serviceaccount", sa)],
    )


GUIDE_CALL = ("list", "pods")  # the guide's test: list pods with the ServiceAccount's token


def rule_service_account_rbac(ev: ApiserverEvidence) -> Finding | None:
    """--as: the ServiceAccount may not do the guide's basic call (list pods in its namespace)."""
    s = ev.subject_access
    if s is None or not s.permissions:
        return None
    refused = [p for p in s.permissions if p.allowed is False and (p.verb, p.resource) == GUIDE_CALL]
    if not refused:
        return None
    allowed = [p.text for p in s.permissions if p.allowed]
    return Finding.of(
        "service_account_rbac", 91,
        Hypothesis(
            _title("service_account_rbac", f"ServiceAccount {ev.subject} may not list pods in {refused[0].namespace}"
                   " (403 to the guide's test call)"), HIGH,
            (f"SubjectAccessReview for {s.subject}: may not {refused[0].text}",
             "may: " + (", ".join(allowed[:8]) or "none of the asked"),
             f"may not: {', '.join(p.text for p in s.permissions if p.allowed is False)[:400]}"),
            ("kubectl apply -f aksdns-apiserver-rbac-fix.yaml   # attached: read access in its namespace",
             f"kubectl auth can-i --list --as={s.subject} -n {refused[0].namespace}"),
            (RBAC_DOC, GUIDE),
        ),
        subjects=[Subject("serviceaccount", ev.subject)],
    )


def rule_probe_notes(ev: ApiserverEvidence) -> Finding | None:
    """What could not be looked at (a permission, a pod that did not run): one line each."""
    failed = [r for r in ev.node_runs if not r.ok]
    lines = [f"{r.node}: {r.error}" for r in failed]
    lines += [n for n in ev.notes if n not in lines]
    if not lines:
        return None
    return Finding.of(
        "probe_notes", 15,
        Hypothesis("Not everything could be probed", LOW, tuple(dict.fromkeys(lines)),
                   ("kubectl get pods -n <aksdns-namespace> -l app.kubernetes.io/managed-by=aksdns -o wide",
                    "kubectl get events -n <aksdns-namespace> --sort-by=.lastTimestamp | tail -20"), (GUIDE,)),
    )


RULES: tuple[Rule, ...] = (
    rule_authorized_ranges,
    rule_private_outside,
    rule_private_dns,
    rule_network_path,
    rule_tls_interception,
    rule_certificate,
    rule_not_listening,
    rule_health_checks,
    rule_kubernetes_endpoints,
    rule_konnectivity,
    rule_authentication,
    rule_rbac,
    rule_service_account_rbac,
    rule_probe_notes,
)


def all_healthy(ev: ApiserverEvidence) -> Finding:
    reached = [p for p in ev.probes if p.reached]
    ms = [p.connect.ms or 0.0 for p in reached]
    evidence = [f"{len(reached)}/{len(ev.probes)} addresses reached (name, TCP, TLS) from {_who(ev.vantages)}"
                + (f"; TCP up to {max(ms):.0f} ms" if ms else "")]
    if ev.authentication.ok:
        evidence.append(f"authenticated as {ev.authentication.user}; every call allowed")
    if ev.service.found:
        evidence.append(f"kubernetes Service backed by {', '.join(ev.service.endpoints or ev.service.slice_endpoints)}")
    return Finding.of(
        "all_healthy", 0,
        Hypothesis(
            "All healthy: the API server is reachable and answering from every vantage point probed", HIGH,
            tuple(evidence),
            ("if one application fails, run `apiserver --as NAMESPACE/SERVICEACCOUNT` with its ServiceAccount",
             "from outside the cluster, run `apiserver --client <your public IP>` with Azure configured"),
            (GUIDE,),
        ),
    )


def unexplained(ev: ApiserverEvidence) -> Finding:
    bad = [p for p in ev.probes if p.failed_stage]
    return Finding.of(
        "unexplained", 10,
        Hypothesis("Some stages failed in a way no rule recognises", LOW, tuple(_line(p) for p in bad[:8]),
                   ("kubectl get --raw='/readyz?verbose'", "kubectl cluster-info"), (GUIDE,)),
    )


def diagnose(ev: ApiserverEvidence) -> list[Finding]:
    """The rule set: every finding, highest score first; "all healthy" when only notes fired."""
    def nothing(e: ApiserverEvidence) -> Finding:
        return unexplained(e) if any(p.failed_stage for p in e.probes) else all_healthy(e)

    return findings.diagnose(ev, RULES, when_none=nothing, background=frozenset({"probe_notes"}))


def cause_of(finding: Finding) -> str:
    """The guide's cause a finding names ("" for all-healthy and notes)."""
    key = RULE_CAUSE.get(finding.rule)
    return CAUSES[key] if key else ""
