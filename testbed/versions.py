"""Pinned versions of everything the testbed builds.

Kubernetes 1.35 is a minor AKS supports and its go.mod builds with the machine's Go 1.26; etcd 3.6 is
the series Kubernetes 1.35 is tested against (Debian's 3.4 is too old).
"""

from __future__ import annotations

KUBERNETES = "v1.35.4"
ETCD = "v3.6.16"
KWOK = "v0.8.0"
COREDNS = "v1.14.7"
HELM = "v3.21.4"
# kwok serves emulated kubelet resource metrics at the path a node annotation names; metrics-server
# honours that annotation since v0.8.0.
METRICS_SERVER = "v0.8.0"

# binary name -> (cache component, version). The four Kubernetes binaries share one build.
BINARIES: dict[str, tuple[str, str]] = {
    "helm": ("helm", HELM),
    "metrics-server": ("metrics-server", METRICS_SERVER),
    "coredns": ("coredns", COREDNS),
    "kwok": ("kwok", KWOK),
    "etcd": ("etcd", ETCD),
    "kube-apiserver": ("kubernetes", KUBERNETES),
    "kube-controller-manager": ("kubernetes", KUBERNETES),
    "kube-scheduler": ("kubernetes", KUBERNETES),
    "kubectl": ("kubernetes", KUBERNETES),
}

# Names envtest users keep in $KUBEBUILDER_ASSETS; we take them from there when present.
KUBEBUILDER_NAMES = frozenset({"etcd", "kube-apiserver", "kubectl"})
