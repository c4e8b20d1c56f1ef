"""The managed cluster's API server settings from Azure Resource Manager (the Azure SDK for Python).

Signs in with the worker's workload identity (``WorkloadIdentityCredential``: the federated token AKS
projects into the pod, exchanged at Microsoft Entra ID) and reads ``managedClusters/NAME``: its
FQDNs, ``apiServerAccessProfile`` (authorized IP ranges, private cluster, private DNS zone) and the
outbound type — what ``az aks show --query apiServerAccessProfile`` prints. Nothing is written.
Without credentials it says so and the thread shows the ``az`` command instead.

Azure calls: GET managedClusters/NAME (Microsoft.ContainerService/managedClusters/read).
"""

from __future__ import annotations

import re
from typing import Any

from aksdns.settings import AzureAccess
from workers.evidence.apiserver import AzureCluster

ARM_SCOPE = "https://management.azure.com/.default"
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15
_CLUSTER_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.ContainerService/managedClusters/(?P<name>[^/]+)$",
    re.IGNORECASE,
)


def parse_cluster_id(resource_id: str) -> tuple[str, str, str] | None:
    """(subscription, resource group, name) of a managed cluster's resource id."""
    m = _CLUSTER_ID.match(resource_id.strip())
    return (m["sub"], m["rg"], m["name"]) if m else None


def cluster_from_arm(resource_id: str, body: dict[str, Any]) -> AzureCluster:
    """ARM's JSON of a managed cluster → what `apiserver` needs (pure; recorded responses test it)."""
    props = body.get("properties") or {}
    access = props.get("apiServerAccessProfile") or {}
    network = props.get("networkProfile") or {}
    lb = network.get("loadBalancerProfile") or {}
    outbound = tuple(
        str(ip.get("id", "")).rsplit("/", 1)[-1] for ip in lb.get("effectiveOutboundIPs") or [] if ip.get("id")
    )
    private = access.get("enablePrivateCluster")
    return AzureCluster(
        configured=True,
        read=True,
        resource_id=resource_id,
        fqdn=str(props.get("fqdn") or ""),
        private_fqdn=str(props.get("privateFQDN") or ""),
        private_cluster=bool(private) if private is not None else False,
        public_fqdn_enabled=access.get("enablePrivateClusterPublicFQDN"),
        private_dns_zone=str(access.get("privateDNSZone") or ("system" if private else "")),
        authorized_ranges=tuple(str(r) for r in access.get("authorizedIPRanges") or ()),
        outbound_type=str(network.get("outboundType") or ""),
        outbound_ips=outbound,
        vnet_integration=access.get("enableVnetIntegration"),
    )


def _why(exc: BaseException) -> str:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    if isinstance(exc, ClientAuthenticationError):
        first = (str(exc.message or exc).strip().splitlines() or [""])[0]
        return f"Azure sign-in (workload identity) failed: {first[:140]}"
    if isinstance(exc, HttpResponseError):
        if exc.status_code == 403:
            return ("the workload identity may not read the cluster (needs "
                    "Microsoft.ContainerService/managedClusters/read, e.g. the Reader role on it)")
        if exc.status_code == 404:
            return "Azure has no managed cluster with that resource id (AKSDNS_AZURE_CLUSTER_ID)"
        return f"Azure Resource Manager answered HTTP {exc.status_code}"
    if isinstance(exc, ServiceRequestError):
        return f"Azure Resource Manager unreachable: {type(exc).__name__}"
    return f"Azure read failed: {type(exc).__name__}"


def read_cluster(access: AzureAccess) -> AzureCluster:
    """GET the managed cluster with the workload identity; every failure is one line, never a raise."""
    if not access.configured:
        return AzureCluster(configured=False, resource_id=access.cluster_id)
    parts = parse_cluster_id(access.cluster_id)
    if parts is None:
        return AzureCluster(configured=True, resource_id=access.cluster_id,
                            error="AKSDNS_AZURE_CLUSTER_ID is not a managed cluster's resource id")
    subscription, group, name = parts
    from azure.core.exceptions import AzureError
    from azure.identity import WorkloadIdentityCredential
    from azure.mgmt.containerservice import ContainerServiceClient

    transport: dict[str, Any] = {"connection_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S}
    if access.ca_bundle:
        transport["connection_verify"] = access.ca_bundle
    try:
        credential = WorkloadIdentityCredential(
            tenant_id=access.tenant_id, client_id=access.client_id, token_file_path=access.token_file,
            authority=access.authority_host, **transport,
        )
        with credential, ContainerServiceClient(
            credential, subscription, base_url=access.arm_url, credential_scopes=[ARM_SCOPE], **transport
        ) as arm:
            cluster = arm.managed_clusters.get(group, name)
            body = cluster.as_dict()
    except (AzureError, ValueError, OSError) as exc:
        return AzureCluster(configured=True, resource_id=access.cluster_id, error=_why(exc))
    return cluster_from_arm(access.cluster_id, body)
