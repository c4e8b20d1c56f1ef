"""Fault knobs for `ipam`: the guide's "Pod fails to allocate the IP address", each with a reset.

* :func:`kubenet_stale` — stale entries (old, matching no pod) in one node's kubenet host-local
  store, enough to fill its range: the guide's Cause 1, addresses the plugin never released.
* :func:`pod_churn` — pods that ran and finished on one node, their addresses still in its store:
  the guide's Cause 2, pods created faster than terminated ones are collected.
* :func:`sandbox_failures` — a pod held in ContainerCreating (kwok leaves it alone) with
  FailedCreatePodSandBox events carrying one of the guide's two messages.
* :func:`nnc_exhausted` / :func:`nnc_leaked` — Azure CNI dynamic IP allocation: the
  NodeNetworkConfig CRD and one object per node; on one node the subnet is full (requested above
  assigned, network container status NCUpdateSubnetFullError) or every address is assigned while
  few pods run.

:func:`reset` undoes all of them (``Testbed.reset_faults`` calls it).
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from testbed import layout, nodefs, procs
from testbed.kube import JSON, ApiError, apply_object

if TYPE_CHECKING:
    from testbed.cluster import Testbed

FAULT_LABEL = "testbed.aksdns.dev/fault"
FAULT_VALUE = "ipam"
NS = layout.FAULTS_NAMESPACE
CRD_NAME = "nodenetworkconfigs.acn.azure.com"
NNC_PATH = "/apis/acn.azure.com/v1alpha/namespaces/kube-system/nodenetworkconfigs"
BATCH = 16
STALE_AGE_S = 3 * 86400.0
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"

# The guide's two messages, with this pod's names in them.
KUBENET_MESSAGE = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = NetworkPlugin cni failed to set up pod "
    '"{pod}_{ns}" network: Failed to allocate address: Failed to delegate: Failed to allocate address: '
    "No available addresses"
)
AZURE_MESSAGE = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "
    "'{sandbox}': plugin type='azure-vnet' failed (add): IPAM Invoker Add failed with error: Failed to get IP "
    "address from CNS with error: %w: AllocateIPConfig failed: not enough IPs available for {uuid}, waiting on "
    "Azure CNS to allocate more with NC Status: , IP config request is [IPConfigRequest: DesiredIPAddress , "
    "PodInterfaceID {short}-eth0, InfraContainerID {sandbox}, OrchestratorContext "
    "{{'PodName':'{pod}','PodNamespace':'{ns}'}}]"
)


def _stamp(seconds_ago: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() - seconds_ago, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(kind: str) -> dict[str, str]:
    return {FAULT_LABEL: FAULT_VALUE, "testbed.aksdns.dev/ipam": kind}


def _pods_on(tb: Testbed, node: str) -> list[JSON]:
    pods = tb.kube.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _running_ips(tb: Testbed, node: str) -> set[str]:
    return {p["status"]["podIP"] for p in _pods_on(tb, node)
            if p.get("status", {}).get("podIP") and not p["spec"].get("hostNetwork")}


def _node(tb: Testbed, node: str | None, index: int = 0) -> str:
    return node or tb.nodes[index]


# ---------------------------------------------------------------------------- kubenet store


def kubenet_stale(tb: Testbed, node: str | None = None, count: int = 250) -> str:
    """``count`` entries that match no pod, written three days ago, in ``node``'s store."""
    name = _node(tb, node)
    cidr = ipaddress.ip_network(next(n.pod_cidr for n in tb.state.nodes() if n.name == name))
    used = _running_ips(tb, name)
    free = [str(ip) for ip in reversed(list(cidr.hosts())) if str(ip) not in used and not str(ip).endswith(".1")]
    store = nodefs.store_dir(tb.run_dir, name)
    then = time.time() - STALE_AGE_S
    for ip in free[:count]:
        nodefs.write_entry(store, ip, nodefs.sandbox_id(f"stale-{ip}"), mtime=then)
    return name


def pod_churn(tb: Testbed, node: str | None = None, count: int = 12) -> str:
    """``count`` pods that ran and finished on ``node``; their addresses stay in its store."""
    name = _node(tb, node)
    made = []
    for i in range(count):
        pod_name = f"churn-{i:02d}"
        apply_object(tb.kube, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": NS, "labels": _labels("churn"),
                         "annotations": {layout.RUN_ANNOTATION: "true"}},
            "spec": {"nodeName": name, "restartPolicy": "Never", "activeDeadlineSeconds": 60,
                     "containers": [{"name": "job", "image": IMAGE, "command": ["true"]}]},
        })
        made.append(pod_name)

    def finished() -> list[JSON]:
        pods = tb.kube.get(f"/api/v1/namespaces/{NS}/pods", labelSelector="testbed.aksdns.dev/ipam=churn")["items"]
        return [p for p in pods if p.get("status", {}).get("phase") == "Succeeded" and p["status"].get("podIP")]

    procs.wait_for(f"{count} churn pods Succeeded", lambda: len(finished()) >= count, 90.0, 0.5)
    store = nodefs.store_dir(tb.run_dir, name)
    held = {pod["status"]["podIP"]: nodefs.sandbox_id(pod["metadata"]["uid"]) for pod in finished()}

    def holding() -> bool:
        # The sandbox of a finished pod not yet collected still holds its address. Written until it
        # sticks: the dataplane drops the entries it made while these pods ran, maybe just after.
        missing = {ip: sid for ip, sid in held.items()
                   if not (store / ip).exists() or (store / ip).read_text().startswith(nodefs.OWN_PREFIX)}
        for ip, sid in missing.items():
            nodefs.write_entry(store, ip, sid)
        return not missing

    procs.wait_for("the finished pods' addresses held in the store", holding, 10.0, 0.6)
    return name


# ---------------------------------------------------------------------------- sandbox failures


def sandbox_failures(tb: Testbed, node: str | None = None, plugin: str = "kubenet",
                     pod_name: str = "web-7d9c4b6f5-x2k8q") -> tuple[str, str]:
    """A pod stuck in ContainerCreating on ``node`` with the guide's FailedCreatePodSandBox message
    (``plugin`` "kubenet": No available addresses; "azure": not enough IPs available)."""
    name = _node(tb, node)
    node_ip = next(n.ip for n in tb.state.nodes() if n.name == name)
    pod = apply_object(tb.kube, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": NS, "labels": {**_labels("sandbox"), "app": "web"},
                     "annotations": {layout.KWOK_HOLD_ANNOTATION: "hold"}},
        "spec": {"nodeName": name, "containers": [{"name": "web", "image": IMAGE, "command": ["sleep", "infinity"]}]},
    })
    started = _stamp(8 * 60)
    tb.kube.merge_patch(f"/api/v1/namespaces/{NS}/pods/{pod_name}/status", {"status": {
        "phase": "Pending", "hostIP": node_ip, "startTime": started,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": started,
             "message": "containers with unready status: [web]"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady",
             "lastTransitionTime": started, "message": "containers with unready status: [web]"},
        ],
        "containerStatuses": [{"name": "web", "image": IMAGE, "imageID": "", "ready": False, "restartCount": 0,
                               "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}}],
    }})
    sandbox = nodefs.sandbox_id(pod_name)
    message = (KUBENET_MESSAGE if plugin == "kubenet" else AZURE_MESSAGE).format(
        pod=pod_name, ns=NS, sandbox=sandbox, uuid=uuid.uuid4(), short=sandbox[:8])
    ref = {"apiVersion": "v1", "kind": "Pod", "namespace": NS, "name": pod_name, "uid": pod["metadata"]["uid"]}
    for reason, text, kind, count in (
        ("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.", "Normal", 74),
        ("FailedCreatePodSandBox", message, "Warning", 204),
    ):
        tb.kube.create(f"/api/v1/namespaces/{NS}/events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod_name}.{uuid.uuid4().hex[:16]}", "namespace": NS, "labels": _labels("sandbox")},
            "involvedObject": ref, "reason": reason, "message": text, "type": kind, "count": count,
            "firstTimestamp": started, "lastTimestamp": _stamp(21),
            "source": {"component": "kubelet", "host": name},
            "reportingComponent": "kubelet", "reportingInstance": name,
        })
    return NS, pod_name


# ---------------------------------------------------------------------------- Azure CNI


def nnc_crd() -> JSON:
    """The NodeNetworkConfig CRD: the fields `ipam` reads, the rest of status kept as given."""
    columns = [
        ("Requested IPs", "integer", ".spec.requestedIPCount"),
        ("Allocated IPs", "integer", ".status.assignedIPCount"),
        ("Subnet", "string", ".status.networkContainers[*].subnetName"),
        ("Subnet CIDR", "string", ".status.networkContainers[*].subnetAddressSpace"),
        ("NC Mode", "string", ".status.networkContainers[*].assignmentMode"),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {FAULT_LABEL: FAULT_VALUE}},
        "spec": {
            "group": "acn.azure.com", "scope": "Namespaced",
            "names": {"kind": "NodeNetworkConfig", "listKind": "NodeNetworkConfigList", "plural": "nodenetworkconfigs",
                      "singular": "nodenetworkconfig", "shortNames": ["nnc"]},
            "versions": [{
                "name": "v1alpha", "served": True, "storage": True, "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": n, "type": t, "jsonPath": p} for n, t, p in columns],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "requestedIPCount": {"type": "integer", "format": "int64"},
                        "ipsNotInUse": {"type": "array", "items": {"type": "string"}},
                    }},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                }}},
            }],
        },
    }


def _install_crd(tb: Testbed) -> None:
    apply_object(tb.kube, nnc_crd())

    def served() -> bool:
        try:
            tb.kube.get(NNC_PATH)
        except ApiError:
            return False
        return True

    procs.wait_for("the NodeNetworkConfig CRD to be served", served, 30.0, 0.25)


def _nnc(tb: Testbed, node: str, requested: int, assigned: int, *, max_ips: int = 250, subnet_full: bool = False,
         subnet_base: int = 0) -> None:
    base = ipaddress.ip_address("10.225.0.0") + subnet_base
    assignments = [{"name": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{node}/{i}")), "ip": str(base + 4 + i)}
                   for i in range(assigned)]
    apply_object(tb.kube, {
        "apiVersion": "acn.azure.com/v1alpha", "kind": "NodeNetworkConfig",
        "metadata": {"name": node, "namespace": "kube-system"},
        "spec": {"requestedIPCount": requested},
    })
    tb.kube.merge_patch(f"{NNC_PATH}/{node}/status", {"status": {
        "assignedIPCount": assigned,
        "status": "Updating" if subnet_full else "Updated",
        "scaler": {"batchSize": BATCH, "maxIPCount": max_ips, "releaseThresholdPercent": 150,
                   "requestThresholdPercent": 50},
        "networkContainers": [{
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nc/{node}")), "assignmentMode": "dynamic", "type": "vnet",
            "subnetName": "aks-podsubnet", "subnetAddressSpace": "10.225.0.0/24", "version": 1,
            "primaryIP": str(base + 3), "defaultGateway": "10.225.0.1", "ipAssignments": assignments,
            "status": "NCUpdateSubnetFullError" if subnet_full else "NCUpdateSuccess",
        }],
    }})


def _healthy_nncs(tb: Testbed, skip: str) -> None:
    for i, node in enumerate(tb.nodes):
        if node == skip:
            continue
        running = len(_running_ips(tb, node))
        size = BATCH * (running // BATCH + 1)
        _nnc(tb, node, size, size, subnet_base=64 * (i + 1))


def _fillers(tb: Testbed, node: str, count: int) -> None:
    """Pods kwok keeps Running on ``node`` (not executed): what uses the node's addresses."""
    for i in range(count):
        apply_object(tb.kube, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"batch-{i:02d}", "namespace": NS, "labels": _labels("filler")},
            "spec": {"nodeName": node,
                     "containers": [{"name": "app", "image": IMAGE, "command": ["sleep", "infinity"]}]},
        })
    procs.wait_for(f"{count} filler pods Running", lambda: len(_running_ips(tb, node)) >= count, 60.0, 0.5)


def nnc_exhausted(tb: Testbed, node: str | None = None) -> str:
    """Azure CNI: ``node`` uses its batch, asks for the next one, and the subnet has none left."""
    name = _node(tb, node)
    _install_crd(tb)
    _fillers(tb, name, BATCH - 2)
    _healthy_nncs(tb, skip=name)
    running = len(_running_ips(tb, name))
    assigned = BATCH * max(1, -(-running // BATCH))
    _nnc(tb, name, assigned + BATCH, assigned, subnet_full=True)
    sandbox_failures(tb, name, plugin="azure")
    return name


def nnc_leaked(tb: Testbed, node: str | None = None) -> str:
    """Azure CNI: every address ``node`` may have is assigned while a few pods run."""
    name = _node(tb, node)
    _install_crd(tb)
    _healthy_nncs(tb, skip=name)
    _nnc(tb, name, 64, 64, max_ips=64)
    sandbox_failures(tb, name, plugin="azure")
    return name


# ---------------------------------------------------------------------------- reset


def _delete_labelled(tb: Testbed, path: str, force: bool = False) -> None:
    try:
        items = tb.kube.get(path, labelSelector=f"{FAULT_LABEL}={FAULT_VALUE}")["items"]
    except ApiError:
        return
    for obj in items:
        suffix = "?gracePeriodSeconds=0" if force else ""
        tb.kube.delete(f"{path}/{obj['metadata']['name']}{suffix}")


def reset(tb: Testbed) -> None:
    """Undo every ipam knob: CRD (and its objects), fault pods and events, stale store entries."""
    tb.kube.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")
    # Held pods have no kubelet (nor kwok) to confirm their deletion: delete them at once.
    _delete_labelled(tb, f"/api/v1/namespaces/{NS}/pods", force=True)
    _delete_labelled(tb, f"/api/v1/namespaces/{NS}/events")
    for node in tb.nodes:
        store = nodefs.store_dir(tb.run_dir, node)
        for entry in store.glob("*") if store.is_dir() else []:
            if entry.name[:1].isdigit():
                try:
                    owner = entry.read_text().splitlines()[0]
                except (OSError, IndexError):
                    owner = ""
                if not owner.startswith(nodefs.OWN_PREFIX):
                    entry.unlink(missing_ok=True)

    def gone() -> bool:
        try:
            tb.kube.get(NNC_PATH)
        except ApiError:
            pods = tb.kube.get(f"/api/v1/namespaces/{NS}/pods", labelSelector=f"{FAULT_LABEL}={FAULT_VALUE}")
            return not pods["items"]
        return False

    procs.wait_for("the ipam faults to be gone", gone, 60.0, 0.25)


def describe_store(tb: Testbed, node: str) -> dict[str, Any]:
    """What a node's store holds (for tests and the demo): entries by owner kind."""
    store = nodefs.store_dir(tb.run_dir, node)
    entries = [e for e in store.glob("*") if e.name[:1].isdigit()]
    own = sum(e.read_text().startswith(nodefs.OWN_PREFIX) for e in entries)
    return {"entries": len(entries), "running_pods": own, "other": len(entries) - own}
