"""The built image (scripts/image), inspected and run with podman.

What it holds is read from container storage: size, user, no build tools, no pip, no set-user-ID file,
tcpdump's file capabilities, the SBOM. Then every entry point runs as a container under the chart's
securityContexts (values.yaml, turned into podman flags by the testbed's container mode): the bot
answers a signed slash command, the worker runs the job against bind9 and posts the thread to the Slack
stand-in, the probe answers with its JSON line, and tcpdump captures DNS as the unprivileged user with
exactly NET_RAW and NET_ADMIN — and fails, saying why, without either or with no_new_privs.

`scripts/test` builds the image first (cached); without it these tests skip, saying how to build it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from console.standin import SlackStandIn
from testbed import containers, image
from tests.dnsservers import RealServer, free_port
from tests.services import (
    BOT_TOKEN,
    JOB_SIGNING_KEY,
    SIGNING_SECRET,
    RedisServer,
    post,
    sign,
    slash_body,
    wait_http,
)

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "charts" / "aksdns" / "values.yaml").read_text())
FORM = "application/x-www-form-urlencoded"
CHANNEL = "C0INCIDENT"
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def ref() -> str:
    why = image.unavailable()
    if why:
        pytest.skip(why)
    return image.image_ref()


@pytest.fixture(scope="module")
def facts(ref: str) -> image.Facts:
    return image.facts(ref)


def chart_security() -> list[str]:
    """podman flags for the chart's securityContext of bot and worker pods."""
    pod = {"spec": {"securityContext": VALUES["podSecurityContext"]}}
    return containers.security_args(pod, {"securityContext": VALUES["securityContext"]}, "10001:10001")


def podman_argv(ref: str, *args: str, network: str = "host", security: list[str] | None = None,
                env: dict[str, str] | None = None, entrypoint: str | None = None,
                volumes: tuple[str, ...] = (), name: str = "") -> list[str]:
    name = name or f"aksdns-imgtest-{uuid.uuid4().hex[:8]}"
    argv = ["podman", "run", "--rm", f"--name={name}", f"--runtime={image.RUNTIME}",
            f"--label={containers.MANAGED_LABEL}=true", "--pull=never", f"--timeout={RUN_TIMEOUT_S}",
            *[f"--ulimit={u}" for u in image.ULIMITS], f"--network={network}",
            "--mount=type=tmpfs,destination=/tmp,tmpfs-mode=1777",  # the chart's /tmp emptyDir
            *(security if security is not None else chart_security())]
    argv += [f"--volume={v}" for v in volumes]
    argv += [f"--env={k}={v}" for k, v in (env or {}).items()]
    if entrypoint:
        argv.append(f"--entrypoint={entrypoint}")
    return [*argv, ref, *args]


def run(argv: list[str], timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Any]:
    """Start long-running containers; each is stopped (and its podman process killed) at the end."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(argv: list[str], name: str) -> Path:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append((proc, log))
        return log

    yield start
    for proc, _log in procs:
        proc.terminate()  # podman proxies SIGTERM to the container
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    containers.remove_all()


# --- what the image holds ---------------------------------------------------------------------------


def test_final_image_is_slim_non_root_and_holds_no_build_tools(facts: image.Facts) -> None:
    print(f"image {facts.ref}: {facts.size_bytes / 1e6:.0f} MB, {facts.deb_count} Debian packages, "
          f"{facts.python_count} Python distributions, {facts.layers} layers")
    assert facts.user == "10001:10001"
    assert facts.entrypoint == ["/usr/bin/tini", "--", "aksdns"] and facts.cmd == ["worker"]
    assert facts.build_tools == [], facts.build_tools
    assert not facts.venv_has_pip and not facts.rust_in_image
    assert facts.setid_files == [], facts.setid_files
    assert facts.debian_version.startswith("12.") and facts.python.startswith("3.11.")


def test_tcpdump_carries_exactly_net_raw_and_net_admin(facts: image.Facts) -> None:
    assert facts.tcpdump_caps == "cap_net_admin,cap_net_raw=ep"


def test_sbom_lists_the_debian_and_python_packages(ref: str, facts: image.Facts, tmp_path: Path) -> None:
    out = image.sbom(ref, tmp_path / "sbom.cdx.json")
    doc = json.loads(out.read_text())
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    purls = [c["purl"] for c in doc["components"]]
    assert len(purls) == facts.deb_count + facts.python_count
    assert any(p.startswith("pkg:deb/debian/tcpdump@") for p in purls)
    assert any(p.startswith("pkg:deb/debian/python3.11@") for p in purls)
    for name in ("aksdns", "aksdns-native", "slack-bolt", "rq", "kubernetes"):
        assert any(p.startswith(f"pkg:pypi/{name}@") for p in purls), name


# --- every entry point as a container ---------------------------------------------------------------


def test_console_script_answers_in_the_image(ref: str) -> None:
    proc = run(podman_argv(ref, "--help"))
    assert proc.returncode == 0, proc.stderr
    for program in ("bot", "worker", "probe", "healthcheck"):
        assert program in proc.stdout


def test_nothing_imports_the_trimmed_asyncio_kubernetes_client(ref: str) -> None:
    """The image leaves out kubernetes.aio (about 70 MB); the worker's modules must not need it."""
    code = ("import sys, workers.jobs.check, workers.probes.kube, workers.runner; "
            "print(sorted(m for m in sys.modules if m.startswith('kubernetes.aio')))")
    proc = run(podman_argv(ref, "-c", code, entrypoint="python"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_bot_and_worker_containers_answer_a_slash_command(
    ref: str, container: Any, redis_server: RedisServer, slack: SlackStandIn, bind9_server: RealServer
) -> None:
    """Signed slash command → bot container → Redis → worker container → bind9 → the stand-in's thread."""
    cluster = "img" + uuid.uuid4().hex[:6]
    env = {"REDIS_URL": redis_server.url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "AKSDNS_CLUSTER": cluster, "AKSDNS_JOB_TIMEOUT": "30",
           "AKSDNS_DIG_ALLOW": "127.0.0.0/8",  # bind9 listens on loopback, which the dig policy refuses by default
           "AKSDNS_JOB_SIGNING_KEY": JOB_SIGNING_KEY}  # bot and worker refuse to start without it
    port = free_port()
    bot_log = container(podman_argv(ref, "bot", "--http", "--host", "127.0.0.1", "--port", str(port),
                                    "--workers", "1", env=env), "bot")
    worker = f"aksdns-imgtest-worker-{cluster}"
    worker_log = container(podman_argv(ref, "worker", env=env, name=worker), "worker")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", timeout=90)
    except Exception:
        pytest.fail("bot container did not answer /healthz: " + bot_log.read_text()[-2000:])
    server = bind9_server.server
    body = slash_body(f"dig @{server.host}:{server.port} www.aksdns.test --type A")
    assert post(url + "/slack/events", body, sign(body), FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.thread_ts and m.blocks for m in s.messages), timeout=90), (
        worker_log.read_text()[-3000:])
    parent = next(m for m in slack.state.messages if m.thread_ts is None and m.ephemeral_to is None)
    transcript = slack.transcript(CHANNEL, parent.ts)
    assert "10.53.1.10" in transcript and "NOERROR" in transcript  # what bind9 serves
    # The worker container's own health check, as the chart's probes run it.
    health = run(["podman", "exec", worker, "aksdns", "healthcheck", "worker"])
    assert health.returncode == 0, health.stdout + health.stderr


def test_probe_container_answers_with_its_json_line(ref: str, bind9_server: RealServer, tmp_path: Path) -> None:
    server = bind9_server.server
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {server.host}\n")
    proc = run(podman_argv(ref, "probe", "node-dns", "--name", "www.aksdns.test", "--type", "A",
                           "--port", str(server.port), "--node", "node-x", "--termination-log", "/tmp/msg",
                           volumes=(f"{resolv}:/etc/resolv.conf:ro",)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["node"] == "node-x" and out["ns"] == [server.host] and not out["error"]
    assert [row[4] for row in out["r"]] == ["NOERROR"]


# --- tcpdump under the chart's capture securityContext ------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of this test's own: a capture sees only what the test sends there."""
    name = f"aksdns-imgtest-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=20)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=20)


def capture_argv(ref: str, netns: str, tmp_path: Path, command: list[str], **security: Any) -> list[str]:
    """`podman run` of a capture container as the testbed's container mode starts it (the chart's capture
    securityContext with `security` on top), in the test's namespace, /out bound to tmp_path/capture."""
    out_dir = tmp_path / "capture"
    out_dir.mkdir(exist_ok=True)
    out_dir.chmod(0o777)
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "capture.termination-log").touch()
    container = {"name": "capture", "image": ref, "command": command,
                 "securityContext": {**VALUES["capture"]["securityContext"], **security},
                 "volumeMounts": [{"name": "out", "mountPath": "/out"}]}
    pod = {"metadata": {"name": "capture", "namespace": "imgtest", "uid": uuid.uuid4().hex},
           "spec": {"nodeName": "imgtest", "hostNetwork": True, "containers": [container]}}
    run = containers.PodRun(uid=pod["metadata"]["uid"], namespace="imgtest", name="capture", node="imgtest",
                            netns=netns, resolv_conf=tmp_path / "resolv.conf", files=tmp_path,
                            deadline_s=RUN_TIMEOUT_S, volumes={"out": out_dir})
    config = containers.ImageCache().config(ref)
    assert config is not None
    return containers.run_argv(pod, container, run, {}, config)


TCPDUMP = ["tcpdump", "-i", "lo", "-n", "-p", "-c", "4", "-w", "/out/dns.pcap", "udp port 53"]


def capture(ref: str, netns: str, tmp_path: Path, command: list[str] = TCPDUMP, **security: Any
            ) -> tuple[subprocess.CompletedProcess[str], Path]:
    """tcpdump -i lo in the namespace while dig sends DNS queries there; the file lands in tmp_path."""
    argv = capture_argv(ref, netns, tmp_path, command, **security)
    tcpdump = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(60):  # send until tcpdump has its packets or has given up
            if tcpdump.poll() is not None:
                break
            subprocess.run(["ip", "netns", "exec", netns, "dig", "+tries=1", "+time=1", "@127.0.0.1",
                            "aks.example.internal"], capture_output=True, timeout=10, check=False)
        stdout, stderr = tcpdump.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if tcpdump.poll() is None:
            tcpdump.kill()
            tcpdump.wait(timeout=10)
    return subprocess.CompletedProcess(argv, tcpdump.returncode, stdout, stderr), tmp_path / "capture" / "dns.pcap"


def only(*caps: str) -> dict[str, Any]:
    return {"capabilities": {"drop": ["ALL"], "add": list(caps)}}


def test_capture_context_is_unprivileged_with_exactly_two_capabilities() -> None:
    sc = VALUES["capture"]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False


def test_unprivileged_tcpdump_captures_dns_with_net_raw_and_net_admin(ref: str, netns: str, tmp_path: Path) -> None:
    proc, pcap = capture(ref, netns, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "4 packets captured" in proc.stderr
    tshark = shutil.which("tshark")
    assert tshark, "tshark is the oracle (scripts/bootstrap installs it)"
    fields = subprocess.run([tshark, "-r", str(pcap), "-Y", "dns", "-T", "fields", "-e", "dns.qry.name"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert fields and set(fields) == {"aks.example.internal"}, fields


def test_only_tcpdump_holds_the_capabilities(ref: str, netns: str, tmp_path: Path) -> None:
    """No ambient capabilities (as under containerd): any other program in a capture container holds none."""
    code = ("import re; s = open('/proc/self/status').read(); "
            "print(' '.join(re.search(k + r':\\s+(\\w+)', s).group(1) "
            "for k in ('CapEff', 'CapPrm', 'CapAmb', 'CapBnd')))")
    proc = run(capture_argv(ref, netns, tmp_path, ["python", "-c", code]))
    assert proc.returncode == 0, proc.stderr
    eff, prm, amb, bnd = (int(x, 16) for x in proc.stdout.split())
    assert (eff, prm, amb) == (0, 0, 0)
    assert bnd == (1 << 12) | (1 << 13)  # CAP_NET_ADMIN | CAP_NET_RAW: the bounding set, nothing more


@pytest.mark.parametrize("removed", ["NET_RAW", "NET_ADMIN"])
def test_tcpdump_fails_clearly_without_one_of_the_capabilities(ref: str, netns: str, tmp_path: Path,
                                                               removed: str) -> None:
    kept = {"NET_RAW", "NET_ADMIN"} - {removed}
    proc, pcap = capture(ref, netns, tmp_path, **only(*kept))
    assert proc.returncode != 0
    assert "operation not permitted" in (proc.stderr + proc.stdout).lower(), proc.stderr
    assert not pcap.exists() or pcap.stat().st_size == 0


@pytest.mark.parametrize("escalation", [False, True])
def test_no_new_privs_grants_tcpdump_its_capabilities_only_as_the_container_command(
    ref: str, netns: str, tmp_path: Path, escalation: bool
) -> None:
    """Started by another program (here tini), tcpdump would gain its file capabilities, which
    no_new_privs forbids: that is why capture containers run tcpdump as their command."""
    proc, _ = capture(ref, netns, tmp_path, ["/usr/bin/tini", "--", *TCPDUMP], allowPrivilegeEscalation=escalation)
    if escalation:
        assert proc.returncode == 0 and "4 packets captured" in proc.stderr, proc.stderr
    else:
        assert proc.returncode != 0
        assert "operation not permitted" in (proc.stderr + proc.stdout).lower(), proc.stderr
