"""The chart's metrics: ports on bot and worker, a Service each, an optional ServiceMonitor, and
NetworkPolicies that let the scraper in (and only the scraper, when metricsFrom is set)."""

from __future__ import annotations

from tests.integration.test_chart import CHART, by_kind, one, pod_spec, render


def _port(doc: dict, name: str) -> int | None:  # type: ignore[type-arg]
    for c in pod_spec(doc)["containers"]:
        for p in c.get("ports", ()):
            if p["name"] == name:
                return int(p["containerPort"])
    return None


def test_bot_and_worker_serve_metrics_by_default_without_a_servicemonitor() -> None:
    docs = render()
    config = by_kind(docs, "ConfigMap")[0]["data"]
    assert config["AKSDNS_METRICS_PORT"] == "9102"
    assert _port(one(docs, "Deployment", "-bot"), "metrics") == 9102  # Socket Mode: metrics is its only port
    assert _port(one(docs, "Deployment", "-worker"), "metrics") == 9102
    for component in ("bot", "worker"):
        svc = one(docs, "Service", f"-{component}-metrics")
        assert svc["metadata"]["labels"]["aksdns.io/metrics"] == "true"
        assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}]
        assert svc["spec"]["selector"]["app.kubernetes.io/component"] == component
    assert not by_kind(docs, "ServiceMonitor")


def test_servicemonitor_and_network_policies() -> None:
    docs = render([CHART / "ci" / "metrics-values.yaml"])
    (sm,) = by_kind(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"]["aksdns.io/metrics"] == "true"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s",
                                        "scrapeTimeout": "10s"}]
    worker = one(docs, "NetworkPolicy", "-worker")["spec"]["ingress"]
    assert worker == [{"ports": [{"port": 9102, "protocol": "TCP"}],
                       "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]
    bot = one(docs, "NetworkPolicy", "-bot")["spec"]["ingress"]
    assert [r["ports"][0]["port"] for r in bot] == [3000, 9102]


def test_metrics_off() -> None:
    docs = render(sets={"metrics.enabled": "false", "networkPolicy.enabled": "true"})
    assert by_kind(docs, "ConfigMap")[0]["data"]["AKSDNS_METRICS_PORT"] == "0"
    assert _port(one(docs, "Deployment", "-worker"), "metrics") is None
    assert not [s for s in by_kind(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
    assert one(docs, "NetworkPolicy", "-worker")["spec"]["ingress"] == []
