"""The Azure part of `apiserver`: the Azure SDK (workload identity + azure-mgmt-containerservice) against the
local ARM stand-in serving recorded managed clusters; and without credentials, a clean skip that says
what to run instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aksdns.settings import AzureAccess, Settings
from tests.armstandin import ArmStandIn, recorded
from workers.analysis.apiserver_facts import azure_line
from workers.evidence.apiserver import ApiserverEvidence
from workers.probes.azure import read_cluster

SUB = "00000000-0000-0000-0000-000000000000"
RID = f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod-weu"
PRIVATE = f"/subscriptions/{SUB}/resourceGroups/rg-int/providers/Microsoft.ContainerService/managedClusters/aks-int-eus"


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[ArmStandIn]:
    with ArmStandIn(tmp_path / "arm", federated_token="projected-sa-token") as standin:
        standin.add_cluster(RID, recorded("public_authorized_ranges"))
        standin.add_cluster(PRIVATE, recorded("private_cluster"))
        yield standin


def access(arm: ArmStandIn, tmp_path: Path, cluster_id: str = RID, token: str = "projected-sa-token") -> AzureAccess:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    return AzureAccess.from_env({
        "AKSDNS_AZURE_CLUSTER_ID": cluster_id, "AKSDNS_AZURE_ARM_URL": arm.url, "AZURE_CLIENT_ID": "client-id",
        "AZURE_TENANT_ID": "tenant-id", "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": arm.url, "AKSDNS_AZURE_CA_BUNDLE": str(arm.ca_path),
    })


def test_reads_authorized_ranges_and_outbound_type(arm: ArmStandIn, tmp_path: Path) -> None:
    az = read_cluster(access(arm, tmp_path))
    assert az.read and not az.error
    assert az.fqdn == "aks-prod-weu-k7h2c9qx.hcp.westeurope.azmk8s.io"
    assert az.authorized_ranges == ("198.51.100.0/24", "203.0.113.17/32")
    assert az.outbound_type == "userDefinedRouting" and az.private_cluster is False
    # The workload identity flow really ran: the assertion was exchanged, then ARM was read with the token.
    assert [m for m, _ in arm.state.requests] == ["POST", "GET"]
    assert arm.state.requests[0][1] == "/tenant-id/oauth2/v2.0/token"
    line = azure_line(ApiserverEvidence(cluster="c", client_ip="198.51.100.7", azure=az))
    assert "client 198.51.100.7 is inside" in line.detail and "userDefinedRouting" in line.detail


def test_reads_a_private_cluster(arm: ArmStandIn, tmp_path: Path) -> None:
    az = read_cluster(access(arm, tmp_path, PRIVATE))
    assert az.private_cluster and az.private_dns_zone == "system" and az.public_fqdn_enabled is False
    assert az.private_fqdn.endswith(".privatelink.eastus.azmk8s.io") and not az.fqdn
    assert az.outbound_ips == ("5b1a0c3e-8d2f-4e6a-b7c9-0a1d2e3f4a5b",)


def test_refusals_are_one_line(arm: ArmStandIn, tmp_path: Path) -> None:
    wrong = read_cluster(access(arm, tmp_path, token="someone-else"))
    assert not wrong.read and wrong.error.startswith("Azure sign-in (workload identity) failed")
    arm.state.deny_read = True
    denied = read_cluster(access(arm, tmp_path))
    assert "may not read the cluster" in denied.error and "\n" not in denied.error
    arm.state.deny_read = False
    missing = read_cluster(access(arm, tmp_path, RID.replace("aks-prod-weu", "nope")))
    assert "no managed cluster" in missing.error


def test_without_credentials_it_says_what_to_run() -> None:
    settings = Settings.from_env({})
    assert not settings.azure.configured
    az = read_cluster(settings.azure)
    assert not az.configured and not az.error
    line = azure_line(ApiserverEvidence(cluster="c", client_ip="192.0.2.9", azure=az))
    assert "az aks show" in line.detail and "apiServerAccessProfile" in line.detail and "192.0.2.9" in line.detail
