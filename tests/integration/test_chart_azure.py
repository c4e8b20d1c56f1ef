"""The chart's Azure part for `apiserver`: workload identity on the worker only, the settings it reads, and
that what the chart renders (plus what AKS's workload identity webhook adds) signs in and reads the
cluster — against the local ARM stand-in (tests/armstandin.py), the one cloud API that cannot run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aksdns.settings import Settings
from tests.armstandin import ArmStandIn, recorded
from tests.integration.test_chart import CHART, by_kind, containers, env_names, one, render, render_error
from workers.probes.azure import read_cluster

AZURE_VALUES = CHART / "ci" / "azure-values.yaml"
USE_LABEL = "azure.workload.identity/use"
CLIENT_ID = "azure.workload.identity/client-id"
TENANT_ID = "azure.workload.identity/tenant-id"
WEBHOOK_TOKEN = "/var/run/secrets/azure/tokens/azure-identity-token"  # where the webhook projects the token


def _values() -> dict:
    values: dict = yaml.safe_load(AZURE_VALUES.read_text())
    return values


def _worker_env(docs: list[dict]) -> dict[str, str]:
    """The worker container's settings: the ConfigMap it loads and its literal env values."""
    worker = one(docs, "Deployment", "-worker")
    env = dict(by_kind(docs, "ConfigMap")[0]["data"])
    for c in containers(worker):
        env.update({k: v["value"] for k, v in env_names(c).items() if "value" in v})
    return env


def test_off_by_default_nothing_azure_is_rendered() -> None:
    docs = render()
    worker = one(docs, "Deployment", "-worker")
    assert USE_LABEL not in worker["spec"]["template"]["metadata"]["labels"]
    assert not any(k.startswith("AKSDNS_AZURE_C") or k.startswith("AKSDNS_AZURE_ARM") for k in _worker_env(docs))
    sa = one(docs, "ServiceAccount", "-worker")
    assert not (sa["metadata"].get("annotations") or {})


def test_enabled_gives_the_worker_alone_a_workload_identity() -> None:
    docs = render([AZURE_VALUES], sets={"worker.serviceAccount.annotations.team": "dns"})
    values = _values()
    sa = one(docs, "ServiceAccount", "-worker")
    assert sa["metadata"]["annotations"] == {CLIENT_ID: values["azure"]["workloadIdentity"]["clientId"],
                                             TENANT_ID: values["azure"]["workloadIdentity"]["tenantId"],
                                             "team": "dns"}
    worker = one(docs, "Deployment", "-worker")
    assert worker["spec"]["template"]["metadata"]["labels"][USE_LABEL] == "true"
    env = _worker_env(docs)
    assert env["AKSDNS_AZURE_CLUSTER_ID"] == values["azure"]["clusterId"]
    assert env["AKSDNS_AZURE_ARM_URL"] == "https://management.azure.com"
    # The bot, the helm test pod and Redis never get Azure's identity or settings.
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "Pod"} and doc is not worker:
            meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
            assert USE_LABEL not in meta.get("labels", {}), doc["metadata"]["name"]
            for c in containers(doc):
                assert not any(n.startswith("AKSDNS_AZURE_C") for n in env_names(c)), doc["metadata"]["name"]
    for other in by_kind(docs, "ServiceAccount"):
        if other is not sa:
            assert CLIENT_ID not in (other["metadata"].get("annotations") or {})


def test_a_worker_only_release_can_read_azure_too() -> None:
    docs = render([CHART / "ci" / "worker-only-values.yaml", AZURE_VALUES])
    assert one(docs, "Deployment", "-worker")["spec"]["template"]["metadata"]["labels"][USE_LABEL] == "true"
    assert "AKSDNS_AZURE_CLUSTER_ID" in _worker_env(docs)


def test_an_existing_service_account_is_annotated_by_its_owner() -> None:
    """With worker.serviceAccount.create=false the chart cannot annotate it: no client id is demanded."""
    docs = render(sets={"azure.enabled": "true", "azure.clusterId": _values()["azure"]["clusterId"],
                        "worker.serviceAccount.create": "false", "worker.serviceAccount.name": "dns-worker"})
    worker = one(docs, "Deployment", "-worker")
    assert worker["spec"]["template"]["spec"]["serviceAccountName"] == "dns-worker"
    assert worker["spec"]["template"]["metadata"]["labels"][USE_LABEL] == "true"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"azure.clusterId": "aks-prod-weu"}, "azure/clusterId"),
        ({"azure.clusterId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"},
         "azure/clusterId"),
        ({"azure.armUrl": "http://management.azure.com"}, "azure/armUrl"),
        ({"azure.workloadIdentity.clientId": "my-identity"}, "azure/workloadIdentity/clientId"),
        ({"azure.workloadIdentity.tenantId": "contoso.onmicrosoft.com"}, "azure/workloadIdentity/tenantId"),
        ({"azure.workloadIdentity.objectId": "x"}, "additional properties"),
    ],
)
def test_schema_rejects_bad_azure_values(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"azure.enabled": "true"}, "azure.enabled needs azure.clusterId"),
        ({"azure.enabled": "true", "azure.clusterId": "/subscriptions/s/resourceGroups/rg/providers/"
          "Microsoft.ContainerService/managedClusters/c"}, "azure.enabled needs azure.workloadIdentity.clientId"),
        ({"azure.enabled": "true", "worker.enabled": "false"}, "azure.enabled needs worker.enabled"),
    ],
)
def test_incomplete_azure_values_fail_with_a_reason(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets)


def test_what_the_chart_renders_signs_in_and_reads_the_cluster(tmp_path: Path) -> None:
    """Chart env + the webhook's injection (from the ServiceAccount's annotations) → the worker's settings →
    the Azure SDK's workload identity flow and the managed cluster GET, against the ARM stand-in."""
    values = _values()
    rid = values["azure"]["clusterId"]
    with ArmStandIn(tmp_path / "arm", federated_token="projected-sa-token") as arm:
        arm.add_cluster(rid, recorded("public_authorized_ranges"))
        docs = render([AZURE_VALUES], sets={"azure.armUrl": arm.url})
        annotations = one(docs, "ServiceAccount", "-worker")["metadata"]["annotations"]
        token = tmp_path / "azure-identity-token"
        token.write_text("projected-sa-token")
        webhook = {  # what AKS's workload identity webhook injects (its token path, here a file of ours)
            "AZURE_CLIENT_ID": annotations[CLIENT_ID], "AZURE_TENANT_ID": annotations[TENANT_ID],
            "AZURE_FEDERATED_TOKEN_FILE": str(token), "AZURE_AUTHORITY_HOST": arm.url,
        }
        settings = Settings.from_env({**_worker_env(docs), **webhook, "AKSDNS_AZURE_CA_BUNDLE": str(arm.ca_path)})
        assert settings.azure.configured
        az = read_cluster(settings.azure)
    assert az.read and not az.error, az.error
    assert az.authorized_ranges == ("198.51.100.0/24", "203.0.113.17/32")
    assert arm.state.requests[0] == ("POST", f"/{values['azure']['workloadIdentity']['tenantId']}/oauth2/v2.0/token")
    assert arm.state.client_ids == [values["azure"]["workloadIdentity"]["clientId"]]
    assert arm.state.requests[1][0] == "GET" and arm.state.requests[1][1].lower() == rid.lower()
