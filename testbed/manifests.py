"""The AKS-shaped objects the testbed creates: nodes, kube-system's CoreDNS, and the worker's RBAC."""

from __future__ import annotations

from typing import Any

from testbed import layout, versions

JSON = dict[str, Any]

# AKS's default Corefile (the `coredns` ConfigMap in kube-system); custom/ is the coredns-custom
# ConfigMap, whose *.override keys are imported into the default server block and *.server keys
# after it.
AKS_COREFILE = r""".:53 {
    errors
    ready
    health {
      lameduck 5s
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
      ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import custom/*.override
    template ANY ANY internal.cloudapp.net {
      match "^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$"
      rcode NXDOMAIN
      fallthrough
    }
    template ANY ANY reddog.microsoft.com {
      rcode NXDOMAIN
    }
}
import custom/*.server
"""

COREDNS_IMAGE = "mcr.microsoft.com/oss/v2/kubernetes/coredns:v1.12.1-1"
WORKER_NAMESPACE = "aksdns"
WORKER_SERVICE_ACCOUNT = "aksdns-worker"
WORKER_BINDING = "aksdns-worker"

# Standard_DS2_v2-sized nodes, with AKS's reservations taken off allocatable.
NODE_CAPACITY = {"cpu": "2", "memory": "7110508Ki", "pods": "110", "ephemeral-storage": "129886128Ki"}
NODE_ALLOCATABLE = {"cpu": "1900m", "memory": "4694956Ki", "pods": "110",
                    "ephemeral-storage": "119703055367"}


def node(spec: layout.NodeSpec) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            # metrics-server reads this node's kubelet resource metrics where kwok serves them.
            "annotations": {layout.KWOK_NODE_ANNOTATION: "fake",
                            "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{spec.name}/metrics/resource"},
            "labels": {
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "agentpool": "nodepool1",
                "kubernetes.azure.com/agentpool": "nodepool1",
                "kubernetes.azure.com/mode": "system",
                "kubernetes.azure.com/cluster": "MC_testbed_testbed_eastus",
                "node.kubernetes.io/instance-type": "Standard_DS2_v2",
                "topology.kubernetes.io/region": "eastus",
                "topology.kubernetes.io/zone": "0",
                "type": "kwok",
            },
        },
        "spec": {
            "podCIDR": spec.pod_cidr,
            "podCIDRs": [spec.pod_cidr],
            "providerID": "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                          f"mc_testbed_testbed_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/"
                          f"aks-nodepool1-17046773-vmss/virtualMachines/{spec.index}",
        },
    }


def node_status(spec: layout.NodeSpec) -> JSON:
    """Written before kwok initialises the node: kwok keeps addresses, capacity and allocatable."""
    return {
        "status": {
            "addresses": [{"type": "InternalIP", "address": spec.ip},
                          {"type": "Hostname", "address": spec.name}],
            "capacity": NODE_CAPACITY,
            "allocatable": NODE_ALLOCATABLE,
            "nodeInfo": {
                "architecture": "amd64", "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS", "kernelVersion": "5.15.0-1079-azure",
                "containerRuntimeVersion": "containerd://1.7.27-1",
                "kubeletVersion": versions.KUBERNETES, "kubeProxyVersion": versions.KUBERNETES,
                "machineID": "", "systemUUID": "", "bootID": "",
            },
        }
    }


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> JSON:
    meta: JSON = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return meta


def kube_system() -> list[JSON]:
    labels = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
              "addonmanager.kubernetes.io/mode": "Reconcile"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("coredns", "kube-system")},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": _meta("system:coredns"),
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta("system:coredns"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta("coredns", "kube-system", {"addonmanager.kubernetes.io/mode": "Reconcile"}),
         "data": {"Corefile": AKS_COREFILE}},
        # AKS's coredns-autoscaler (cluster-proportional-autoscaler) ladder: 2 replicas up to 7 nodes, at most 5.
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("coredns-autoscaler", "kube-system"),
         "data": {"ladder": '{"coresToReplicas":[[1,2],[512,3],[1024,4],[2048,5]],'
                            '"nodesToReplicas":[[1,2],[8,3],[16,4],[32,5]]}'}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta("coredns-custom", "kube-system",
                           {"addonmanager.kubernetes.io/mode": "EnsureExists"}),
         "data": {}},
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": _meta("kube-dns", "kube-system", labels),
            "spec": {
                "clusterIP": layout.KUBE_DNS_IP,
                "selector": {"k8s-app": "kube-dns"},
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}],
            },
        },
        coredns_deployment(),
    ]


def coredns_deployment() -> JSON:
    pod_labels = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "version": "v20"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta("coredns", "kube-system",
                          {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                           "kubernetes.io/name": "CoreDNS", "version": "v20"}),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"k8s-app": "kube-dns", "version": "v20"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "10%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": "coredns",
                    "dnsPolicy": "Default",
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }]}},
                    "containers": [{
                        "name": "coredns",
                        "image": COREDNS_IMAGE,
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"},
                                      "limits": {"cpu": "3", "memory": "500Mi"}},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                          "initialDelaySeconds": 60, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
                        "volumeMounts": [
                            {"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True},
                            {"name": "custom-config-volume", "mountPath": "/etc/coredns/custom",
                             "readOnly": True},
                        ],
                    }],
                    "volumes": [
                        {"name": "config-volume", "configMap": {
                            "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}},
                        {"name": "custom-config-volume",
                         "configMap": {"name": "coredns-custom", "optional": True}},
                    ],
                },
            },
        },
    }


def worker_rbac() -> list[JSON]:
    """What the aksdns worker needs in a cluster; the testbed's deny knob removes the binding."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(WORKER_NAMESPACE)},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(layout.FAULTS_NAMESPACE)},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta(WORKER_SERVICE_ACCOUNT, WORKER_NAMESPACE)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": _meta("aksdns-worker"),
            "rules": [
                {"apiGroups": [""],
                 "resources": ["pods", "services", "endpoints", "configmaps", "nodes", "events",
                               "namespaces"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete"]},
                # capture: exec tcpdump in capture containers (a WebSocket exec is a GET that also needs
                # create), add ephemeral containers to target pods
                {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
                {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["update"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "daemonsets"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                 "verbs": ["get", "list"]},
                # `apiserver --as`: what another ServiceAccount may do (the chart grants the same).
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
                 "verbs": ["create"]},
                # coredns-log (the chart's rbac.verboseLog): only its own key, by JSON patch.
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["coredns-custom"],
                 "verbs": ["patch"]},
                # ipam and service (the chart grants the NodeNetworkConfigs in kube-system only)
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list"]},
                {"apiGroups": ["acn.azure.com"], "resources": ["nodenetworkconfigs"], "verbs": ["get", "list"]},
            ],
        },
        worker_binding(),
    ]


def worker_binding() -> JSON:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": _meta(WORKER_BINDING),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aksdns-worker"},
        "subjects": [{"kind": "ServiceAccount", "name": WORKER_SERVICE_ACCOUNT,
                      "namespace": WORKER_NAMESPACE}],
    }


# `kubectl exec` (and so `kubectl cp`) through kwok's kubelet endpoint. kwok can only run the command
# on its own host, so it runs in the host's network namespace and file system, not in the pod's: good
# for fetching files a really-run pod wrote (they live on the host), not for network checks.
CLUSTER_EXEC = """apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: testbed-host-exec
spec:
  execs:
  - local:
      workDir: /
"""


def kwok_config(stage_texts: list[str]) -> str:
    return "\n---\n".join(t.strip() for t in [*stage_texts, CLUSTER_EXEC]) + "\n"
