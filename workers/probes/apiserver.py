"""The worker's own view of the API server, as the guide asks for it, through the kubernetes client.

Every read returns evidence (``workers.evidence.apiserver``) and never raises for a refusal or an
unreachable server: a 401, a 403 or a time-out *is* the evidence here. Each call has a time-out.

Kubernetes calls (verb, resource, namespace) — keep docs/apiserver.md and the chart's RBAC in step:
  create selfsubjectreviews (authentication.k8s.io)         who the API server says we are
  create selfsubjectaccessreviews, selfsubjectrulesreviews  what we may do (authorization.k8s.io)
  create subjectaccessreviews                               --as: what that ServiceAccount may do
  get    /readyz?verbose, /livez?verbose                    the API server's own checks
  get    services, endpoints  default/kubernetes; list endpointslices in default (its slices)
  list   pods in kube-system (k8s-app=konnectivity-agent); get pods/log of one agent
  list   nodes
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from workers.evidence.apiserver import (
    WORKER,
    AgentPod,
    ApiCall,
    Authentication,
    Authorization,
    EndpointProbe,
    HealthCheck,
    Konnectivity,
    KubernetesService,
    Permission,
)
from workers.probes import apiserver_endpoint
from workers.probes.kube import REQUEST_TIMEOUT, Clients

KUBE_SYSTEM = "kube-system"
KONNECTIVITY_SELECTOR = "k8s-app=konnectivity-agent"
CLIENT_CONFIGURATION = "client configuration"
MAX_PARALLEL = 4  # the client keeps 10 pooled connections; the job runs other calls beside these


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def attempt(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ApiCall]:
    # Results are read as plain objects (Any): the client's models mark every field optional.
    """One API call with a time-out; the result and how it went (status, latency, error)."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    started = time.monotonic()
    try:
        result = fn(*args, **kwargs)
    except ApiException as exc:
        return None, ApiCall(what, exc.status, _ms(started), f"HTTP {exc.status} {exc.reason or ''}".strip())
    except (HTTPError, OSError, TimeoutError) as exc:
        return None, ApiCall(what, None, _ms(started), f"unreachable: {type(exc).__name__}")
    return result, ApiCall(what, 200, _ms(started))


# ---------------------------------------------------------------------------- the address the worker uses


def client_address(c: Clients) -> tuple[str, int, str | None]:
    """Host, port and CA bundle (PEM) of the worker's own client configuration."""
    cfg = c.api.configuration
    url = urlsplit(cfg.host)
    ca_pem: str | None = None
    if cfg.ssl_ca_cert:
        try:
            ca_pem = Path(cfg.ssl_ca_cert).read_text()
        except OSError:
            ca_pem = None
    return url.hostname or "", url.port or 443, ca_pem


def _health(c: Clients, path: str) -> HealthCheck:
    """GET PATH?verbose with the worker's credentials (system:public-info-viewer grants it to anyone)."""
    started = time.monotonic()
    try:
        req = c.api.param_serialize(
            "GET", path, query_params=[("verbose", "true")], header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        resp = c.api.call_api(*req, _request_timeout=(apiserver_endpoint.CONNECT_TIMEOUT_S,
                                                       apiserver_endpoint.HEALTH_TIMEOUT_S))
        raw: bytes = resp.read() or b""  # type: ignore[no-untyped-call]
        body = raw[: apiserver_endpoint.MAX_BODY].decode(errors="replace")
    except (ApiException, HTTPError, OSError, TimeoutError) as exc:
        return HealthCheck(path=path, ms=_ms(started), error=_line(exc))
    return apiserver_endpoint.parse_health(path, int(resp.status), body, _ms(started))


def worker_probe(c: Clients) -> EndpointProbe:
    """The network stages towards the worker's own API server address, then its health with credentials."""
    host, port, ca_pem = client_address(c)
    probe = apiserver_endpoint.probe(WORKER, CLIENT_CONFIGURATION, host, port, ca_pem=ca_pem, health=False)
    if not probe.connect.ok:
        return probe
    import dataclasses

    # TLS verification is the client's; health is asked even when our own handshake check failed, so
    # the thread can tell "the API server is fine, the certificate is not" from "it is down".
    return dataclasses.replace(probe, readyz=_health(c, "/readyz"), livez=_health(c, "/livez"))


# ---------------------------------------------------------------------------- authentication


def whoami(c: Clients) -> Authentication:
    """SelfSubjectReview (`kubectl auth whoami`): a 401 here means the credentials are rejected."""
    api = client.AuthenticationV1Api(c.api)
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    review, call = attempt("create selfsubjectreviews", api.create_self_subject_review, body)
    if review is None:
        return Authentication(status=call.status, ms=call.ms, error=call.error)
    info = review.status.user_info if review.status else None
    return Authentication(
        status=201, ms=call.ms, user=(info.username or "") if info else "",
        groups=tuple((info.groups or []) if info else []),
    )


# ---------------------------------------------------------------------------- authorization


def needed_permissions(namespace: str) -> tuple[Permission, ...]:
    """What the aksdns worker needs (the chart's RBAC), each with why: asked one by one on a 403."""
    return (
        Permission("list", "pods", why="find CoreDNS, konnectivity and client pods"),
        Permission("get", "services", why="the kube-dns and kubernetes Services"),
        Permission("get", "endpoints", namespace="default", name="kubernetes",
                   why="the kubernetes Service's endpoints"),
        Permission("list", "endpointslices", "discovery.k8s.io", why="which pods back a Service"),
        Permission("list", "nodes", why="nodes and their readiness"),
        Permission("get", "pods/log", why="CoreDNS logs, probe results"),
        Permission("get", "configmaps", namespace=KUBE_SYSTEM, name="coredns", why="the Corefile"),
        Permission("create", "pods", namespace=namespace, why="node probe pods"),
        Permission("delete", "pods", namespace=namespace, why="remove node probe pods"),
        Permission("get", "", name="/readyz", why="the API server's readiness checks"),
        Permission("get", "", name="/livez", why="the API server's liveness checks"),
    )


def _attributes(p: Permission) -> dict[str, Any]:
    if not p.resource:
        return {"nonResourceAttributes": {"path": p.name, "verb": p.verb}}
    resource, _, sub = p.resource.partition("/")
    attrs: dict[str, Any] = {"verb": p.verb, "group": p.group, "resource": resource}
    if sub:
        attrs["subresource"] = sub
    if p.namespace:
        attrs["namespace"] = p.namespace
    if p.name:
        attrs["name"] = p.name
    return {"resourceAttributes": attrs}


def _answer(p: Permission, review: Any, call: ApiCall) -> Permission:
    import dataclasses

    if review is None:
        return dataclasses.replace(p, allowed=None, reason=call.error)
    status = review.status
    reason = (status.reason or "") if status else ""
    return dataclasses.replace(p, allowed=bool(status and status.allowed), reason=reason)


def self_access(c: Clients, permissions: Sequence[Permission]) -> tuple[Permission, ...]:
    """SelfSubjectAccessReview for each permission, concurrently."""
    api = client.AuthorizationV1Api(c.api)

    def ask(p: Permission) -> Permission:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": _attributes(p)}
        review, call = attempt("create selfsubjectaccessreviews", api.create_self_subject_access_review, body)
        return _answer(p, review, call)

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="aksdns-ssar") as pool:
        return tuple(pool.map(ask, permissions))


def subject_access(c: Clients, user: str, groups: Sequence[str], permissions: Sequence[Permission]) -> tuple[
    tuple[Permission, ...], str
]:
    """SubjectAccessReview for another subject (--as); the error line when the worker may not ask."""
    api = client.AuthorizationV1Api(c.api)
    errors: list[str] = []

    def ask(p: Permission) -> Permission:
        spec = {**_attributes(p), "user": user, "groups": list(groups)}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        review, call = attempt("create subjectaccessreviews", api.create_subject_access_review, body)
        if review is None:
            errors.append(call.error)
        return _answer(p, review, call)

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="aksdns-sar") as pool:
        answered = tuple(pool.map(ask, permissions))
    return answered, (errors[0] if errors else "")


def _rule_line(rule: Any) -> str:
    verbs = ", ".join(rule.verbs or [])
    urls = getattr(rule, "non_resource_ur_ls", None)
    if urls:
        return f"{verbs} {' '.join(urls)}"
    groups = [g for g in (getattr(rule, "api_groups", None) or []) if g]
    resources = ", ".join(getattr(rule, "resources", None) or [])
    names_list = getattr(rule, "resource_names", None)
    names = f" {'/'.join(names_list)}" if names_list else ""
    return f"{verbs} {resources}{names}" + (f" ({', '.join(groups)})" if groups else "")


def self_rules(c: Clients, namespace: str) -> tuple[tuple[str, ...], bool, str]:
    """SelfSubjectRulesReview in ``namespace``: one line per rule, incomplete flag, error."""
    api = client.AuthorizationV1Api(c.api)
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace}}
    review, call = attempt("create selfsubjectrulesreviews", api.create_self_subject_rules_review, body)
    if review is None:
        return (), False, call.error
    status = review.status
    lines = [_rule_line(r) for r in (status.resource_rules or [])] + [
        _rule_line(r) for r in (status.non_resource_rules or [])
    ]
    return tuple(dict.fromkeys(lines)), bool(status.incomplete), ""


def worker_authorization(c: Clients, namespace: str, subject: str, calls: Sequence[ApiCall]) -> Authorization:
    """The worker's calls, then (only when one was refused) what it may and may not do."""
    if not any(call.status == 403 for call in calls):
        return Authorization(subject=subject, calls=tuple(calls))
    permissions = self_access(c, needed_permissions(namespace))
    rules, incomplete, error = self_rules(c, namespace)
    return Authorization(
        subject=subject, calls=tuple(calls), permissions=permissions, rules=rules, rules_namespace=namespace,
        rules_incomplete=incomplete, error=error,
    )


# The questions `--as` asks about a ServiceAccount in its own namespace: enough to say what it may
# and may not do with the objects applications usually read (the guide's example lists pods).
AS_VERBS = ("get", "list", "watch", "create", "update", "delete")
AS_RESOURCES = (("", "pods"), ("", "services"), ("", "endpoints"), ("", "configmaps"), ("", "secrets"),
                ("apps", "deployments"))


def as_questions(namespace: str) -> tuple[Permission, ...]:
    asked = [Permission(v, r, g, namespace=namespace) for g, r in AS_RESOURCES for v in AS_VERBS]
    asked.append(Permission("get", "", name="/api", why="discovery"))
    return tuple(asked)


def service_account_access(c: Clients, namespace: str, name: str) -> Authorization:
    user = f"system:serviceaccount:{namespace}:{name}"
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
    answered, error = subject_access(c, user, groups, as_questions(namespace))
    return Authorization(subject=user, permissions=answered, rules_namespace=namespace, error=error)


# ---------------------------------------------------------------------------- the kubernetes Service


def _ports(ports: Any) -> list[int]:
    return [p.port for p in ports or [] if p.port]


def kubernetes_service(c: Clients) -> tuple[KubernetesService, list[ApiCall]]:
    """default/kubernetes: its ClusterIP, the Endpoints object and the EndpointSlices behind it."""
    svc, svc_call = attempt("get Service default/kubernetes", c.core.read_namespaced_service, "kubernetes", "default")
    calls = [svc_call]
    if svc is None:
        found = False if svc_call.status == 404 else None
        return KubernetesService(found=found, error=svc_call.error), calls
    port = next(iter(_ports(svc.spec.ports)), 443)
    eps, ep_call = attempt(
        "get Endpoints default/kubernetes", c.core.read_namespaced_endpoints, "kubernetes", "default"
    )
    calls.append(ep_call)
    endpoints: list[str] = []
    if eps is not None:
        for subset in eps.subsets or []:
            for addr in subset.addresses or []:
                endpoints += [f"{addr.ip}:{p}" for p in _ports(subset.ports)]
    slices, sl_call = attempt(
        "list EndpointSlices of default/kubernetes", c.discovery.list_namespaced_endpoint_slice, "default",
        label_selector="kubernetes.io/service-name=kubernetes",
    )
    calls.append(sl_call)
    slice_eps: list[str] = []
    for sl in (slices.items if slices is not None else []):
        ports = _ports(sl.ports)
        for ep in sl.endpoints or []:
            if ep.conditions is None or ep.conditions.ready is not False:
                slice_eps += [f"{a}:{p}" for a in ep.addresses or [] for p in ports]
    errors = [x.error for x in (ep_call, sl_call) if x.status not in (200, 404)]
    return (
        KubernetesService(
            found=True,
            cluster_ip=svc.spec.cluster_ip or "",
            port=port,
            endpoints=tuple(sorted(set(endpoints))),
            slice_endpoints=tuple(sorted(set(slice_eps))),
            endpoints_found=True if eps is not None else (False if ep_call.status == 404 else None),
            error="; ".join(errors),
        ),
        calls,
    )


# ---------------------------------------------------------------------------- konnectivity


def _ready(pod: Any) -> bool:
    return any(cond.type == "Ready" and cond.status == "True" for cond in (pod.status.conditions or []))


def konnectivity(c: Clients) -> tuple[Konnectivity, ApiCall]:
    """konnectivity-agent pods and one log read (which the API server serves through the tunnel)."""
    listed, call = attempt(
        "list konnectivity-agent pods in kube-system", c.core.list_namespaced_pod, KUBE_SYSTEM,
        label_selector=KONNECTIVITY_SELECTOR,
    )
    if listed is None:
        return Konnectivity(read=False, error=call.error), call
    pods = tuple(
        sorted(
            (
                AgentPod(
                    name=p.metadata.name, node=p.spec.node_name or "", phase=(p.status.phase or "Unknown"),
                    ready=_ready(p), restarts=sum(cs.restart_count or 0 for cs in p.status.container_statuses or []),
                )
                for p in listed.items
                if not p.metadata.deletion_timestamp
            ),
            key=lambda a: a.name,
        )
    )
    running = [p for p in pods if p.phase == "Running"]
    if not running:
        return Konnectivity(read=True, pods=pods), call
    _log, log_call = attempt(
        f"read the log of {running[0].name}", c.core.read_namespaced_pod_log, running[0].name, KUBE_SYSTEM,
        tail_lines=5,
    )
    return Konnectivity(read=True, pods=pods, log_read=log_call.status == 200, log_error=log_call.error), call


def list_nodes(c: Clients) -> tuple[list[tuple[str, bool]], ApiCall]:
    nodes, call = attempt("list nodes", c.core.list_node)
    if nodes is None:
        return [], call
    out = [(n.metadata.name, any(x.type == "Ready" and x.status == "True" for x in n.status.conditions or []))
           for n in nodes.items]
    return sorted(out), call
