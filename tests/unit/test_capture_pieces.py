"""The capture's pure pieces: container and pod specs, busy targets, the agent's interface lookup,
live rows, the report's findings, the Capture button, the confirmation flow's messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from aksdns import grammar
from aksdns.commands import CaptureCommand, ObjectRef
from aksdns.verbs import spec_of
from bot import capture_flow
from workers.analysis.capture_button import capture_command
from workers.analysis.capture_live import LiveTracker, Row
from workers.analysis.capture_wire import DnsMessage
from workers.evidence.capture import Role, Target
from workers.findings import Finding, Subject
from workers.probes import capture_agent as agent
from workers.probes import capture_pods as cp
from workers.report import Hypothesis

AGENT = cp.AgentSpec("run1", "aksdns:1", ("aksdns", "probe"), cp.agent_deadline(30), "job", "U1")
TARGET = Target(Role.CLIENT, "default", "app", "node-0", "10.244.0.7")


def test_capture_containers_get_exactly_net_raw_and_net_admin_and_a_deadline() -> None:
    eph = cp.ephemeral_container(AGENT)
    pod = cp.capture_pod(AGENT, TARGET, "aksdns", now=1000.0)
    for sc in (eph["securityContext"], pod["spec"]["containers"][0]["securityContext"]):
        assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"]
        assert "privileged" not in sc
    assert eph["command"][-4:] == ["--run", "run1", "--deadline", str(30 + cp.START_GRACE_S + cp.STOP_GRACE_S)]
    spec = pod["spec"]
    assert spec["activeDeadlineSeconds"] == AGENT.deadline_s and spec["automountServiceAccountToken"] is False
    assert spec["hostNetwork"] and spec["nodeName"] == "node-0" and "volumes" not in spec and "hostPID" not in spec
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "aksdns" and labels["aksdns.io/role"] == "capture"
    assert pod["metadata"]["annotations"]["aksdns.io/expires"] == str(int(1000 + AGENT.deadline_s + 30))
    # One name per target, so a second capture of it collides.
    assert cp.capture_pod_name(TARGET) == cp.capture_pod(AGENT, TARGET, "aksdns")["metadata"]["name"]


def test_the_worker_runs_capture_containers_with_the_charts_capture_security_context() -> None:
    import yaml

    values = yaml.safe_load((Path(__file__).resolve().parents[2] / "charts/aksdns/values.yaml").read_text())
    assert values["capture"]["securityContext"] == cp.SECURITY_CONTEXT


def _pod(containers: list[dict], statuses: list[dict]) -> SimpleNamespace:
    def ns(d: dict) -> SimpleNamespace:
        return SimpleNamespace(**{k: ns(v) if isinstance(v, dict) else v for k, v in d.items()})

    eph = [SimpleNamespace(name=c["name"], env=[SimpleNamespace(name=k, value=v) for k, v in c["env"].items()])
           for c in containers]
    empty = {"running": None, "terminated": None, "waiting": None}
    st = [SimpleNamespace(name=s["name"], state=ns({**empty, **s["state"]})) for s in statuses]
    return SimpleNamespace(spec=SimpleNamespace(ephemeral_containers=eph),
                           status=SimpleNamespace(ephemeral_container_statuses=st))


def test_a_running_capture_container_makes_the_pod_busy_an_ended_one_does_not() -> None:
    env = {"AKSDNS_CAPTURE_RUN": "r9", "AKSDNS_REQUESTED_BY": "U2", "AKSDNS_CAPTURE_EXPIRES": str(time.time() + 60)}
    running = _pod([{"name": "aksdns-capture-r9", "env": env}], [{"name": "aksdns-capture-r9",
                                                                   "state": {"running": {"x": 1}}}])
    assert cp.ephemeral_busy(running) == "capture r9 by U2"
    done = {"terminated": {"exit_code": 0, "message": "", "reason": ""}}
    ended = _pod([{"name": "aksdns-capture-r9", "env": env}], [{"name": "aksdns-capture-r9", "state": done}])
    assert cp.ephemeral_busy(ended) is None
    other = _pod([{"name": "debugger-x", "env": {}}], [{"name": "debugger-x", "state": {"running": {"x": 1}}}])
    assert cp.ephemeral_busy(other) is None
    stale = _pod([{"name": "aksdns-capture-r1", "env": {**env, "AKSDNS_CAPTURE_EXPIRES": "1"}}], [])
    assert cp.ephemeral_busy(stale) is None  # never started and past its deadline


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0000E00A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
aksp1234abcd\t0700F40A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
cbr0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_the_agent_finds_a_pods_veth_from_the_node_routes_or_the_bridge(tmp_path: Path) -> None:
    assert agent.route_interface(ROUTES, "10.244.0.7") == "aksp1234abcd"
    assert agent.route_interface(ROUTES, "10.244.1.9") == "cbr0"
    assert agent.route_interface(ROUTES, "192.168.1.1") is None
    # kubenet's bridge: the pod's MAC (ARP) -> the port it was learned on (FDB) -> the veth.
    net, procnet = tmp_path / "sys", tmp_path / "proc"
    (net / "cbr0" / "bridge").mkdir(parents=True)
    for name, no in (("veth1", 1), ("veth2", 2)):
        (net / "cbr0" / "brif" / name).mkdir(parents=True)
        (net / "cbr0" / "brif" / name / "port_no").write_text(f"0x{no:x}\n")
    mac = bytes.fromhex("0a580af40109")
    (net / "cbr0" / "brforward").write_bytes(
        bytes.fromhex("0a580af40108") + bytes([1, 0]) + b"\0" * 8 + mac + bytes([2, 0]) + b"\0" * 8)
    procnet.mkdir()
    (procnet / "route").write_text(ROUTES)
    (procnet / "arp").write_text("IP address HW type Flags HW address Mask Device\n"
                                 "10.244.1.9 0x1 0x2 0a:58:0a:f4:01:09 * cbr0\n")
    assert agent.find_interface("10.244.1.9", procnet, net) == {"iface": "veth2", "how": "bridge cbr0 port"}
    assert agent.find_interface("10.244.0.7", procnet, net)["iface"] == "aksp1234abcd"
    assert agent.find_interface("192.168.1.1", procnet, net)["iface"] == "any"


def test_the_agent_holds_until_stopped_and_says_why(tmp_path: Path) -> None:
    log = tmp_path / "termination"
    run = f"t{os.getpid()}x"
    hold = subprocess.Popen([sys.executable, "-m", "workers.probes.capture_agent", "hold", "--run", run,
                             "--deadline", "60", "--termination-log", str(log)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ})
    try:
        assert hold.stdout is not None and json.loads(hold.stdout.readline())["agent"] == "ready"
        stop = subprocess.run([sys.executable, "-m", "workers.probes.capture_agent", "stop", "--run", run],
                              capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[2])
        assert stop.returncode == 0 and json.loads(stop.stdout) == {"stopped": 1}
        assert hold.wait(30) == 0
        assert json.loads(log.read_text())["ended"] == "stopped"
        again = subprocess.run([sys.executable, "-m", "workers.probes.capture_agent", "stop", "--run", run],
                               capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[2])
        assert again.returncode == 3  # nothing left to stop
    finally:
        hold.kill()
        hold.wait(10)


def _m(ts_ms: int, src: str, dst: str, sport: int, dport: int, response: bool, rcode: int = 0) -> DnsMessage:
    return DnsMessage(ts_ms * 1_000_000, src, sport, dst, dport, False, 7, response, rcode, "x.example.", 1, False)


def test_live_rows_pair_answers_and_close_unanswered_queries_after_the_wait() -> None:
    rows: list[Row] = []
    t = LiveTracker({"10.244.0.2": "default/app", "10.0.0.10": "kube-dns (Service)"}, rows.append, slow_ms=100)
    t.feed("default/app", _m(0, "10.244.0.2", "10.0.0.10", 4000, 53, False))
    t.feed("default/app", _m(250, "10.0.0.10", "10.244.0.2", 53, 4000, True, rcode=3))
    t.feed("default/app", _m(300, "10.244.0.2", "10.0.0.10", 4001, 53, False))
    t.feed("default/app", _m(6000, "10.244.0.2", "10.0.0.10", 4002, 53, False))  # closes the one at 300
    t.finish()
    assert [(r.client, r.server, r.rcode, r.latency_ms) for r in rows] == [
        ("default/app", "kube-dns (Service)", "NXDOMAIN", 250.0),
        ("default/app", "kube-dns (Service)", "", None), ("default/app", "kube-dns (Service)", "", None)]
    s = t.summary
    assert (s.answered, s.unanswered, s.slow) == (1, 2, 1) and rows[1].cells()[7] == "UNANSWERED"


def test_the_capture_command_flags_default_and_confirm() -> None:
    assert grammar.parse("capture") == CaptureCommand(coredns=True)
    assert grammar.parse("capture --node aks-nodepool1-1 --live") == CaptureCommand(node="aks-nodepool1-1", live=True)
    assert spec_of(CaptureCommand()).confirm and spec_of(CaptureCommand()).privileged
    cmd = grammar.parse("capture --pod default/a --coredns --duration 30s --live")
    assert grammar.command_from_dict(cmd.to_dict()) == cmd


@pytest.mark.parametrize("text", ["capture --duration 0s", "capture --duration 601s", "capture --duration -5s",
                                  "capture --filter 'port 53 or $(reboot)'", "capture --filter '-w /tmp/x'",
                                  "capture --node 'a;b'", "capture --live=yes"])
def test_hostile_capture_text_is_refused(text: str) -> None:
    from aksdns.errors import UsageError

    with pytest.raises(UsageError):
        grammar.parse(text)


def test_the_capture_button_carries_the_targets_a_diagnosis_named() -> None:
    found = [Finding.of("x", 50, Hypothesis("t", "high", (), ()),
                        subjects=[Subject("pod", "coredns-1", "kube-system"), Subject("pod", "web", "shop"),
                                  Subject("node", "aks-n-1")])]
    cmd = capture_command("prod", found)
    assert cmd.coredns and cmd.pods == (ObjectRef("shop", "web"),) and cmd.node == "aks-n-1"
    assert cmd.cluster == "prod" and grammar.command_from_dict(cmd.to_dict()) == cmd


def test_the_confirmation_names_targets_filter_and_duration_and_its_buttons_carry_the_command() -> None:
    cmd = grammar.parse("capture --coredns --pod default/web --duration 45s --filter 'udp port 53'")
    text, blocks = capture_flow.confirmation(cmd, user="U1", cluster="prod")
    assert "every CoreDNS pod, default/web" in text and "45 s" in text and "`udp port 53`" in text
    buttons = blocks[-1]["elements"]
    assert [b["action_id"] for b in buttons] == [capture_flow.START, capture_flow.CANCEL]
    assert grammar.command_from_dict(json.loads(buttons[0]["value"])) == cmd
    _text, running = capture_flow.started(cmd, user="U2", cluster="prod", job_id="ab12" * 8)
    stop = running[-1]["elements"][0]
    assert stop["action_id"] == capture_flow.STOP and capture_flow.read_stop_value(stop["value"])[0] == "ab12" * 8
    for junk in ('{"job": "../x"}', '{"job": ""}', "[]", '{"job": "' + "a" * 80 + '"}'):
        with pytest.raises((ValueError, AttributeError)):
            capture_flow.read_stop_value(junk)
