"""The README's run command ends in `aksdns demo`: it must print real threads."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.services import VENV_BIN, aksdns_env

pytestmark = pytest.mark.testbed


def test_demo_prints_the_threads_and_ends_with_a_handoff(testbed: Any) -> None:
    result = subprocess.run([str(VENV_BIN / "aksdns"), "demo"], capture_output=True, text=True, timeout=600,
                            env=aksdns_env(AKSDNS_TESTBED_SESSION_HELD="1"))  # this session holds the lock
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    # dig: the kubernetes Service's ClusterIP, as the real CoreDNS kubernetes plugin answers it
    assert "kubernetes.default.svc.cluster.local  A     NOERROR" in out
    assert "`dig` done" in out
    assert "DNS check · testbed" in out and "Facts (the guide's baseline questions)" in out
    assert "DNS traffic analysis" in out and "dns-response-times.png" in out
    # apiserver: one node's way to the API server dropped by the demo, named as the guide's cause
    assert "API server · testbed" in out and "A network policy or firewall: TCP to the API server is dropped" in out
    # health: pods with `kubectl top` usage, metrics, nodes as `kubectl describe node` prints them, logs, config
    assert "CoreDNS and node health · testbed" in out and "Allocated resources:" in out
    assert "CoreDNS metrics (:9153)" in out and "MEMORY(bytes)" in out
    assert "`ipam` done" in out and "Pod IP addresses · testbed" in out
    assert "`service` done" in out and "A NetworkPolicy drops the traffic to the Service's pods" in out
    # capture: confirmed with Start, the merged pcapng, analyze's report of it and the per-hop view
    assert "Started by <@U0ONCALL>" in out and "capture: every CoreDNS pod, default/demo-client" in out
    assert "Where the time went, per hop" in out and ".pcapng" in out
    # It ends with an incident handed over: the Re-run saw the pod come back, the handoff says so.
    incident = out.split("an incident, re-run and handed over", 1)[1]
    assert "Since the previous run" in incident and "no longer: One CoreDNS pod misbehaves" in incident
    # check → dig → capture (confirmed with Start, its merged pcapng in the thread) → Re-run → handoff
    assert "Started by <@U0ONCALL>" in incident and ".pcapng" in incident
    assert "*Timeline* (UTC)" in incident and "*Ruled out*" in incident
    assert "# DNS incident handoff" in incident and "~~One CoreDNS pod misbehaves" in incident
    assert "Traceback" not in out + result.stderr
