"""`aksdns demo`: the whole product on one machine, printing the Slack threads it produced.

It ends with an incident thread: a check that finds a dead CoreDNS pod, a dig, a Re-run once the pod
is back (what changed), and the handoff of that thread, also printed as the Markdown file.

Embedded defaults: its own redis-server, the local testbed cluster (a real kube-apiserver,
kwok nodes and CoreDNS), a worker and the bot in HTTP mode, and the Slack stand-in in
place of Slack's Web API. An on-call engineer's commands are sent as signed Slack
requests; everything after that is the real path.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aksdns.errors import AksDnsError
from console import embedded, slackreq
from console.standin import Message, SlackStandIn

BOT_TOKEN = "xoxb-demo-local"
SIGNING_SECRET = "demo-signing-secret"
CHANNEL = "C0INCIDENT"
DONE_MARKS = ("done in", "❌", "failed", "could not finish")


def _say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


@contextlib.contextmanager
def _testbed(keep: bool, env: Mapping[str, str]) -> Iterator[Any]:
    from testbed import cluster

    missing = cluster.requirements_missing()
    if missing:
        raise AksDnsError(f"the testbed is not ready: {missing}")
    # The testbed's fault knobs are global: take the machine's session lock like a test session
    # does (unless the test session that runs this demo already holds it).
    if not env.get("AKSDNS_TESTBED_SESSION_HELD"):
        lock = cluster.acquire_session(who="aksdns demo")
        atexit.register(lock.close)
    tb = cluster.attach()
    if tb is not None:
        tb.reset_faults()  # a session that died may have left a knob turned
    started = tb is None
    if tb is None:
        _say("starting the testbed cluster (kube-apiserver, etcd, kwok nodes, CoreDNS)")
        t0 = time.monotonic()
        tb = cluster.up()
        print(f"testbed up in {time.monotonic() - t0:.1f} s")
    try:
        yield tb
    finally:
        if started and not keep:
            _say("stopping the testbed")
            cluster.down()


def _pod_resolv_conf(workdir: Path, kube_dns_ip: str) -> Path:
    """What a pod with dnsPolicy ClusterFirst sees: the worker queries like a pod does."""
    path = workdir / "pod-resolv.conf"
    path.write_text(
        f"nameserver {kube_dns_ip}\n"
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )
    return path


class Engineer:
    """Sends what an on-call engineer types, as Slack would, and waits for the answer."""

    def __init__(self, events_url: str, slack: SlackStandIn) -> None:
        self.events_url = events_url
        self.slack = slack

    def slash(self, text: str, timeout_s: float = 120.0) -> Message:
        print(f"\n$ /aksdns {text}", flush=True)
        seen = self._seen()
        body = slackreq.slash_body(text, channel=CHANNEL)
        status, response = slackreq.post(self.events_url, body, slackreq.sign(body, SIGNING_SECRET), slackreq.FORM)
        if status != 200:
            raise AksDnsError(f"the bot answered HTTP {status}")
        if response.strip():
            print(f"(ephemeral) {response.decode()[:500]}")
        return self._wait_parent(seen, None, timeout_s)

    def mention(self, text: str, thread: Message, timeout_s: float = 120.0) -> Message:
        print(f"\n@aksdns {text}   (in the thread)", flush=True)
        seen = self._seen()
        ts = self.slack.state.next_ts()
        body = slackreq.mention_body(text, ts=ts, thread_ts=thread.ts, channel=CHANNEL)
        status, _ = slackreq.post(self.events_url, body, slackreq.sign(body, SIGNING_SECRET), slackreq.JSON)
        if status != 200:
            raise AksDnsError(f"the bot answered HTTP {status}")
        return self._wait_parent(seen, thread.ts, timeout_s)

    def click(self, action_id: str, value: str, thread: Message, timeout_s: float = 120.0) -> Message:
        """A button under a result in ``thread``; waits for the job it queued."""
        print(f"\n[{action_id}]   (button in the thread)", flush=True)
        seen = self._seen()
        body = slackreq.button_body(action_id, value, thread_ts=thread.ts, channel=CHANNEL)
        status, _ = slackreq.post(self.events_url, body, slackreq.sign(body, SIGNING_SECRET), slackreq.FORM)
        if status != 200:
            raise AksDnsError(f"the bot answered HTTP {status}")
        return self._wait_parent(seen, thread.ts, timeout_s)

    def _seen(self) -> set[int]:
        with self.slack.state.lock:
            return {id(m) for m in self.slack.state.messages}

    def _wait_parent(self, seen: set[int], thread_ts: str | None, timeout_s: float) -> Message:
        deadline = time.monotonic() + timeout_s

        def new_parent() -> Message | None:
            for m in self.slack.state.messages:
                if id(m) not in seen and m.thread_ts == thread_ts and m.user == self.slack.state.bot_user:
                    return m
            return None

        if not self.slack.wait_for(lambda _s: new_parent() is not None, timeout=timeout_s):
            raise AksDnsError("no answer from the bot")
        parent = new_parent()
        assert parent is not None
        left = max(1.0, deadline - time.monotonic())
        self.slack.wait_for(lambda _s: any(mark in parent.text for mark in DONE_MARKS), timeout=left)
        time.sleep(0.5)  # the attachments follow the result message
        return parent


@contextlib.contextmanager
def _capture(workdir: Path, interface: str) -> Iterator[Path]:
    """tcpdump for DNS while the demo runs (bounded, no shell).

    The testbed's bridge carries every hop once (worker → CoreDNS, CoreDNS and nodes → the
    virtual network's DNS); `-i any` would also see each packet again on the veths.
    """
    out = workdir / "demo-dns.pcap"
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None or os.geteuid() != 0:
        yield out
        return
    argv = [tcpdump, "-i", interface, "-U", "-n", "-s", "512", "-c", "200000", "-w", str(out), "port", "53"]
    with embedded.process(argv, os.environ, workdir / "tcpdump.log") as proc:
        time.sleep(1.0)  # let tcpdump open its socket before traffic starts
        yield out
        time.sleep(0.5)
        proc.send_signal(2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="aksdns-demo-"))
    with contextlib.ExitStack() as stack:
        tb = stack.enter_context(_testbed(args.keep_testbed, env))
        desc = tb.describe()
        kube_dns_ip = str(desc["kube_dns_ip"])
        pod_ips = [str(p["ip"]) for p in desc.get("coredns_pods", [])]
        _say("starting redis-server, the Slack stand-in, an aksdns worker and the bot (HTTP mode)")
        redis_url = stack.enter_context(embedded.redis_server(workdir / "redis"))
        slack = SlackStandIn(BOT_TOKEN).start()
        stack.callback(slack.stop)
        settings_env = {
            **env,
            "PATH": f"{embedded.VENV_BIN}:{env.get('PATH', '')}",
            "REDIS_URL": redis_url,
            "SLACK_API_URL": slack.api_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "AKSDNS_JOB_SIGNING_KEY": secrets.token_hex(32),  # a fresh key per demo run
            "AKSDNS_CLUSTER": "testbed",
            "AKSDNS_NAMESPACE": "aksdns",
            "AKSDNS_AZURE_DNS": str(desc["upstream"]).split(":")[0],
            "AKSDNS_EXTERNAL_NAME": "www.example.com",
            "AKSDNS_RESOLV_CONF": str(_pod_resolv_conf(workdir, kube_dns_ip)),
            "AKSDNS_LOG_LEVEL": "WARNING",
            "KUBECONFIG": str(desc.get("worker_kubeconfig") or desc["kubeconfig"]),
            "AKSDNS_PRIVILEGED_USERS": "U0ONCALL",  # who may capture (the engineer of this demo)
        }
        port = embedded.free_port()
        stack.enter_context(embedded.process(embedded.aksdns_argv("worker"), settings_env, workdir / "worker.log"))
        stack.enter_context(
            embedded.process(
                embedded.aksdns_argv("bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
                settings_env,
                workdir / "bot.log",
            )
        )
        embedded.wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        engineer = Engineer(f"http://127.0.0.1:{port}/slack/events", slack)
        from testbed.layout import BRIDGE

        capture = stack.enter_context(_capture(workdir, BRIDGE))

        threads: list[Message] = []
        servers = " ".join(f"@{ip}" for ip in [kube_dns_ip, *pod_ips])
        threads.append(engineer.slash(f"dig {servers} kubernetes.default.svc.cluster.local www.example.com"))
        if not args.skip_check:
            threads.append(engineer.slash("check www.example.com --repeat 3"))
        if not args.skip_health:
            tb.metrics_ready()  # metrics-server has usage after its second scrape (~20 s after start)
            threads.append(engineer.slash("health --minutes 10"))
        # Stop the capture, hand the file to the thread as a person would, ask for analyze.
        last = threads[-1]
        time.sleep(1.0)
        if capture.exists() and capture.stat().st_size > 24 and not args.skip_analyze:
            time.sleep(0.5)  # tcpdump writes packet by packet (-U); let the last ones land
            slack.state.add_user_file(CHANNEL, last.ts, "dns-cap1.pcap", capture.read_bytes())
            print(f"\n(uploaded dns-cap1.pcap, {capture.stat().st_size} bytes, to the thread)")
            engineer.mention("analyze", last)

        if not args.skip_apiserver:
            # One node's way to the API server is dropped (a testbed fault knob), so the thread shows a diagnosis.
            node = tb.apiserver_faults.node_unreachable()
            print(f"\n(testbed: TCP from {node} to the API server is now dropped)")
            try:
                threads.append(engineer.slash("apiserver"))
            finally:
                tb.apiserver_faults.reset()
        # Pod addresses per node (a healthy cluster), then a Service from its name to its pods: an app with
        # two backends that really listen, and a NetworkPolicy (testbed fault knob) that drops what reaches them.
        if not args.skip_ipam:
            threads.append(engineer.slash("ipam"))
        if not args.skip_service:
            from testbed import faults_service

            stack.callback(faults_service.reset, tb)
            namespace, name = faults_service.deny_policy(tb)
            print(f"\n(testbed: Service {namespace}/{name} deployed; a NetworkPolicy now drops traffic to its pods)")
            threads.append(engineer.slash(f"service {namespace}/{name}"))

        if not args.skip_capture:
            threads.append(_capture_thread(tb, f"http://127.0.0.1:{port}/slack/events", slack))

        incident = None if args.skip_check else _incident(tb, engineer, slack, capture=not args.skip_capture)
        for parent in threads:
            _say(f"Slack thread {parent.ts}")
            print(slack.transcript(CHANNEL, parent.ts))
        if incident is not None:
            _say(f"Slack thread {incident.ts}: an incident, re-run and handed over")
            print(slack.transcript(CHANNEL, incident.ts))
            handoff = [f for f in slack.state.files.values() if f.name.startswith("aksdns-handoff-")]
            if handoff:
                _say(f"{handoff[-1].name} (the handoff as a file)")
                print(handoff[-1].content.decode())
        print(f"\n(logs and files of this run: {workdir})")
    return 0


def _capture_thread(tb: Any, events_url: str, slack: SlackStandIn) -> Message:
    """`/aksdns capture --coredns --pod default/demo-client --duration 30s`, confirmed with Start, while
    the client pod asks some names (one of them does not exist)."""
    from console.capture_demo import capture_in_slack

    client = tb.dns_client("demo-client")
    text = "capture --coredns --pod default/demo-client --duration 30s"
    print(f"\n$ /aksdns {text}   (then Start on the confirmation)", flush=True)
    names = ["www.example.com.", "microsoft.com.", "db.contoso.com.", *[f"demo{i}.wild.example.com." for i in range(8)]]
    try:
        run = capture_in_slack(events_url, SIGNING_SECRET, slack, CHANNEL, text,
                               traffic=lambda: client.query(names, count=2, rate=4))
    finally:
        client.delete()
    print(f"(Start → analysis in the thread: {(run.analysis_at or 0) - run.clicked_at:.1f} s)")
    return run.root


def _capture_in_incident(tb: Any, engineer: Engineer, slack: SlackStandIn, thread: Message) -> None:
    """`@aksdns capture --coredns --duration 20s` in the incident's thread, Start pressed, while a client
    pod asks names through the kube-dns VIP (some of them land on the dead pod)."""
    from console.capture_demo import capture_in_slack

    text = "capture --coredns --pod default/incident-client --duration 20s"
    print(f"\n@aksdns {text}   (in the thread; then Start on the confirmation)", flush=True)
    client = tb.dns_client("incident-client")
    try:
        capture_in_slack(engineer.events_url, SIGNING_SECRET, slack, CHANNEL, text, thread_ts=thread.ts,
                         traffic=lambda: client.query(["www.example.com.", "microsoft.com."], count=4, rate=4))
    finally:
        client.delete()


def _incident(tb: Any, engineer: Engineer, slack: SlackStandIn, capture: bool = True) -> Message:
    """check finds a dead CoreDNS pod; dig and a capture in the thread; the pod comes back; Re-run says
    what changed; the thread is handed over."""
    _say("an incident: one CoreDNS pod stops answering")
    dead = tb.coredns_kill()
    print(f"(testbed: {dead} no longer answers)")
    try:
        thread = engineer.slash("check www.example.com --repeat 2")
        engineer.mention("dig www.example.com kubernetes.default.svc.cluster.local", thread)
        if capture:
            _capture_in_incident(tb, engineer, slack, thread)
    finally:
        tb.coredns_reset()
    print(f"(testbed: {dead} answers again)")
    result = next(m for m in slack.state.thread(CHANNEL, thread.ts) if m.blocks and m.thread_ts)
    rerun = next(e["value"] for b in result.blocks if b.get("type") == "actions" for e in b["elements"]
                 if e["action_id"] == "aksdns_rerun")
    engineer.click("aksdns_rerun", rerun, thread)
    engineer.mention("handoff", thread)
    slack.wait_for(lambda st: any(f.name.startswith("aksdns-handoff-") and f.content for f in st.files.values()),
                   timeout=20)
    return thread


def main(argv: list[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="aksdns demo", description=__doc__)
    parser.add_argument("--keep-testbed", action="store_true", help="leave the testbed running afterwards")
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--skip-health", action="store_true")
    parser.add_argument("--skip-ipam", action="store_true")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--skip-analyze", action="store_true")
    parser.add_argument("--skip-capture", action="store_true")
    parser.add_argument("--skip-apiserver", action="store_true")
    args = parser.parse_args(argv)
    return run(args, env)
