"""CoreDNS log lines → classes with counts and samples (the guide's `kubectl logs -l k8s-app=kube-dns`).

The forward plugin's own health checks ask the root (``. NS``) of each upstream; their time-outs say
an upstream is unhealthy, not that a client query failed (coredns/coredns#5028), so they are counted
apart from client time-outs. The ``log`` plugin writes NOERROR even for queries whose upstream timed
out (#4724): SERVFAIL lines are counted when CoreDNS wrote them, never inferred from their absence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from workers.evidence.health import LogClass, LogSummary

MAX_SAMPLES = 3
SAMPLE_CHARS = 240

# `[ERROR] plugin/errors: 2 example.com. A: read udp 10.244.0.2:46128->10.224.0.254:53: i/o timeout`
_ERRORS = re.compile(r"plugin/errors: (\d+) (\S+) (\S+):")
_TIMEOUT = re.compile(r"i/o timeout|context deadline exceeded|timed? ?out", re.IGNORECASE)
# the log plugin: `... "A IN example.com. udp 40 false 512" SERVFAIL qr,rd 40 0.000s`
_LOG_RCODE = re.compile(r'" (NOERROR|NXDOMAIN|SERVFAIL|REFUSED|FORMERR|NOTIMP) ')
_LOOP = re.compile(r"plugin/loop: .*[Ll]oop|Loop \(.*\) detected")
_API = re.compile(r"[Ff]ailed to (list|watch)|plugin/kubernetes: .*(forbidden|unauthorized|connection refused)")
_RELOAD = re.compile(r"Restart failed|[Rr]eload failed|SIGUSR1: starting with|Corefile changed but|"
                     r"plugin/reload: .*(error|fail)")
_PANIC = re.compile(r"\bpanic\b|Recovered from panic", re.IGNORECASE)


def health_check_line(line: str) -> bool:
    """An errors-plugin line about the root NS query the forward plugin uses as its health check."""
    m = _ERRORS.search(line)
    return bool(m and m.group(2) == "." and m.group(3) == "NS")


def classify(line: str) -> LogClass | None:
    """The class of one log line, or None for lines that say nothing wrong."""
    if _PANIC.search(line):
        return LogClass.PANIC
    if _LOOP.search(line):
        return LogClass.LOOP
    if _RELOAD.search(line):
        return LogClass.RELOAD_ERROR
    if _API.search(line):
        return LogClass.API_ACCESS
    m = _ERRORS.search(line)
    if m:
        if health_check_line(line):
            return None  # counted by health_checks(), never as client traffic
        if _TIMEOUT.search(line):
            return LogClass.UPSTREAM_TIMEOUT
        return LogClass.SERVFAIL if m.group(1) == "2" else LogClass.OTHER_ERROR
    rcode = _LOG_RCODE.search(line)
    if rcode and rcode.group(1) == "SERVFAIL":
        return LogClass.SERVFAIL
    if line.startswith(("[ERROR]", "[FATAL]")):
        return LogClass.OTHER_ERROR
    return None


def summarize(logs: Mapping[str, Sequence[str]]) -> tuple[LogSummary, ...]:
    """Per class: count, pods, first samples (pod-prefixed), in the order of LogClass."""
    counts: dict[LogClass, int] = {}
    pods: dict[LogClass, dict[str, None]] = {}
    samples: dict[LogClass, list[str]] = {}
    for pod, lines in logs.items():
        for line in lines:
            kind = classify(line)
            if kind is None:
                continue
            counts[kind] = counts.get(kind, 0) + 1
            pods.setdefault(kind, {})[pod] = None
            bucket = samples.setdefault(kind, [])
            if len(bucket) < MAX_SAMPLES:
                bucket.append(f"{pod}: {line.strip()[:SAMPLE_CHARS]}")
    return tuple(
        LogSummary(kind, counts[kind], tuple(pods[kind]), tuple(samples[kind])) for kind in LogClass if kind in counts
    )


def health_checks(logs: Mapping[str, Iterable[str]]) -> int:
    """How many health-check (`. NS`) error lines the window holds: a sick upstream, quietly."""
    return sum(1 for lines in logs.values() for line in lines if health_check_line(line))
