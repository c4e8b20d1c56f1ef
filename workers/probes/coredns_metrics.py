"""CoreDNS's own metrics (the `prometheus :9153` plugin of AKS's Corefile), scraped per pod.

Two scrapes a few seconds apart give rates. The text is parsed with prometheus_client's reference
parser; only the counters `health` reads are kept (summed over the labels that do not matter here).
Network: GET http://POD_IP:9153/metrics from the worker (the same path a Prometheus scrape takes).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families

from workers.evidence.health import PodMetrics, Scrape

PORT = 9153
TIMEOUT_S = 3.0
MAX_BYTES = 8 * 2**20  # a CoreDNS scrape is tens of KiB; bound what one read may cost

_SUMS = {
    "coredns_dns_requests_total": "requests",
    "coredns_forward_requests_total": "forward_requests",
    "coredns_forward_request_duration_seconds_sum": "forward_duration_sum",
    "coredns_forward_request_duration_seconds_count": "forward_duration_count",
    "coredns_forward_healthcheck_broken_total": "healthcheck_broken",
    "coredns_cache_hits_total": "cache_hits",
    "coredns_cache_misses_total": "cache_misses",
    "coredns_panics_total": "panics",
    "coredns_reload_failed_total": "reload_failures",
}


def parse_scrape(text: str, at: float) -> Scrape:
    """The counters health uses, from one /metrics text."""
    sums: dict[str, float] = dict.fromkeys(_SUMS.values(), 0.0)
    responses: dict[str, float] = {}
    forward_rcodes: dict[str, float] = {}
    hc: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in _SUMS:
                sums[_SUMS[s.name]] += s.value
            elif s.name == "coredns_dns_responses_total":
                rcode = s.labels.get("rcode", "?")
                responses[rcode] = responses.get(rcode, 0.0) + s.value
            elif s.name == "coredns_forward_responses_total":
                rcode = s.labels.get("rcode", "?")
                forward_rcodes[rcode] = forward_rcodes.get(rcode, 0.0) + s.value
            elif s.name == "coredns_forward_healthcheck_failures_total":
                to = s.labels.get("to", "?")
                hc[to] = hc.get(to, 0.0) + s.value
    return Scrape(at=at, responses=responses, forward_rcodes=forward_rcodes, healthcheck_failures=hc, **sums)


def url_of(ip: str, port: int = PORT) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/metrics"


def fetch(url: str, timeout_s: float = TIMEOUT_S) -> tuple[Scrape | None, str]:
    """One scrape, or the reason it failed (one line)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - http to a pod IP we listed
            body = resp.read(MAX_BYTES).decode("utf-8", errors="replace")
        at = time.monotonic()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return None, f"{url}: {type(reason).__name__ if not str(reason) else str(reason)[:120]}"
    try:
        return parse_scrape(body, at), ""
    except ValueError as exc:
        return None, f"{url}: not Prometheus text ({str(exc)[:80]})"


def scrape_pods(pods: Sequence[tuple[str, str]], interval_s: float = 5.0, port: int = PORT) -> list[PodMetrics]:
    """Two scrapes of every (pod, ip), ``interval_s`` apart, all pods at once."""
    targets = [(name, url_of(ip, port)) for name, ip in pods if ip]
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(targets)), thread_name_prefix="coredns-metrics") as pool:
        first = list(pool.map(lambda t: fetch(t[1]), targets))
        time.sleep(interval_s)
        second = list(pool.map(lambda t: fetch(t[1]), targets))
    out = []
    for (name, url), (a, err_a), (b, err_b) in zip(targets, first, second, strict=True):
        out.append(PodMetrics(pod=name, url=url, first=a, second=b, error=err_b or err_a))
    return out
