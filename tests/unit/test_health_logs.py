"""CoreDNS log classes. The loop, time-out, SERVFAIL and reload lines were written by the testbed's
CoreDNS 1.14.7 binary (a forward to itself, a silent upstream, a Corefile with a plugin twice); the
API-access and panic lines are in the form CoreDNS writes them, not recorded here (the testbed test
produces the API one for real)."""

from __future__ import annotations

import pytest

from workers.analysis.health_logs import classify, health_checks, summarize
from workers.evidence.health import LogClass

REAL = [
    ('[FATAL] plugin/loop: Loop (127.0.0.1:58200 -> 127.0.0.77:15353) detected for zone ".", see '
     'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO 3076109588776708461.2393849726059227040."',
     LogClass.LOOP),
    ("[ERROR] plugin/errors: 2 example.com. A: read udp 127.0.0.1:56433->127.0.0.78:15354: i/o timeout",
     LogClass.UPSTREAM_TIMEOUT),
    ('[INFO] 127.0.0.1:48156 - 47181 "A IN example.com. udp 52 false 1232" SERVFAIL qr,rd 29 4.002467302s',
     LogClass.SERVFAIL),
    ("[ERROR] Restart failed: plugin/cache: this plugin can only be used once per Server Block",
     LogClass.RELOAD_ERROR),
    ("[ERROR] SIGUSR1: starting with listener file descriptors: cannot serve dns://.:15356 on 127.0.0.80 - it is "
     "already defined", LogClass.RELOAD_ERROR),
    ("[ERROR] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.34.1/tools/cache/reflector.go:290: Failed to watch "
     '*v1.Namespace: failed to list *v1.Namespace: namespaces is forbidden: User "system:serviceaccount:kube-system:'
     'coredns" cannot list resource "namespaces"', LogClass.API_ACCESS),
    ("[ERROR] Recovered from panic in server: \"dns://:53\" runtime error: index out of range", LogClass.PANIC),
    ('[INFO] 127.0.0.1:48156 - 47181 "A IN example.com. udp 52 false 1232" NOERROR qr,rd,ra 56 0.0001s', None),
    ("[INFO] Reloading complete", None),
    ("[INFO] plugin/reload: Running configuration SHA512 = 8d3f", None),
]


@pytest.mark.parametrize(("line", "kind"), REAL)
def test_real_lines(line: str, kind: LogClass | None) -> None:
    assert classify(line) is kind


def test_forward_health_checks_are_not_client_timeouts() -> None:
    hc = "[ERROR] plugin/errors: 2 . NS: read udp 10.244.0.2:39470->10.224.0.254:53: i/o timeout"
    assert classify(hc) is None
    logs = {"coredns-a": [hc, hc, REAL[1][0]], "coredns-b": [REAL[0][0]]}
    assert health_checks(logs) == 2
    summary = {s.kind: s for s in summarize(logs)}
    assert summary[LogClass.UPSTREAM_TIMEOUT].count == 1
    assert summary[LogClass.LOOP].pods == ("coredns-b",)
    assert summary[LogClass.UPSTREAM_TIMEOUT].samples[0].startswith("coredns-a: [ERROR] plugin/errors: 2 example.com.")


def test_samples_are_bounded() -> None:
    lines = [REAL[1][0]] * 500
    (s,) = summarize({"p": lines})
    assert s.count == 500 and len(s.samples) == 3
