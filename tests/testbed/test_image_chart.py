"""The chart's pods as containers of the real image on the testbed (the runner's container mode).

`helm install` with image.repository=localhost/aksdns (the image scripts/image builds) gives a bot and a
worker that run as podman containers inside their pods' network namespaces, against the testbed's API
server (the worker's own ServiceAccount token, mounted as a kubelet would) and a redis-server on the
testbed's gateway address. A `/aksdns check` typed as a signed Slack request to the bot pod's IP is
answered in the Slack stand-in's thread by the containerised worker, whose probe pods run as containers
too. `helm test` runs its pod as a container. A capture pod's tcpdump captures DNS under the chart's
capture securityContext and fails, saying why, when a capability is removed.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import yaml

from console.standin import SlackStandIn
from testbed import containers, image, layout
from tests.dnsservers import free_port
from tests.integration.test_chart import CHART
from tests.services import BOT_TOKEN, SIGNING_SECRET, post, sign, slash_body
from tests.testbed.test_chart_install import drop_namespace, helm, kubectl, make_namespace

pytestmark = pytest.mark.testbed

NAMESPACE = "chart-containers"
RELEASE = "tbx"
CLUSTER = "tbx-cluster"
CHANNEL = "C0INCIDENT"
FORM = "application/x-www-form-urlencoded"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@dataclass
class Backends:
    redis_url: str
    slack: SlackStandIn


@pytest.fixture(scope="module")
def image_ref() -> str:
    why = image.unavailable()
    if why:
        pytest.skip(why)
    return image.image_ref()


@pytest.fixture(scope="module")
def backends(testbed: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """redis-server (with a password) and the Slack stand-in on the testbed's gateway address, where
    pods reach the host (nothing listens beyond the testbed's bridge)."""
    host = layout.GATEWAY_IP
    port = free_port(host)
    password = secrets.token_urlsafe(16)
    workdir = tmp_path_factory.mktemp("redis-gw")
    proc = subprocess.Popen(["redis-server", "--bind", host, "--port", str(port), "--requirepass", password,
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://:{password}@{host}:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    wait_for(lambda: _pings(client) or proc.poll() is not None, 15, "redis-server")
    assert proc.poll() is None, "redis-server exited"
    slack = SlackStandIn(BOT_TOKEN, host=host).start()
    try:
        yield Backends(url, slack)
    finally:
        slack.stop()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def release(testbed: Any, image_ref: str, backends: Backends) -> Iterator[str]:
    repository, tag = image_ref.rsplit(":", 1)
    if kubectl(testbed, "get", "namespace", NAMESPACE, check=False).returncode == 0:
        helm(testbed, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
        kubectl(testbed, "delete", "namespace", NAMESPACE, "--wait=true", "--timeout=90s", check=False, timeout=120)
    make_namespace(testbed, NAMESPACE)
    kubectl(testbed, "-n", NAMESPACE, "create", "secret", "generic", "aksdns-slack",
            f"--from-literal=SLACK_BOT_TOKEN={BOT_TOKEN}", f"--from-literal=SLACK_SIGNING_SECRET={SIGNING_SECRET}")
    sets = [f"image.repository={repository}", f"image.tag={tag}", "image.pullPolicy=Never",
            f"cluster={CLUSTER}", "bot.mode=http", "bot.replicas=1", "bot.httpWorkers=1",
            "slack.existingSecret=aksdns-slack", f"slack.apiUrl={backends.slack.api_url}",
            "redis.enabled=false", f"redis.external.url={backends.redis_url}",
            f"settings.azureDns={testbed.upstream}", "settings.jobTimeoutSeconds=120", "capture.enabled=true"]
    args = ["install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "240s"]
    for s in sets:
        args += ["--set", s]
    try:
        helm(testbed, *args, timeout=300)
        yield NAMESPACE
    finally:
        helm(testbed, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
        drop_namespace(testbed, NAMESPACE)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def pods(testbed: Any, component: str) -> list[dict[str, Any]]:
    out = kubectl(testbed, "-n", NAMESPACE, "get", "pods", "-o", "json",
                  "-l", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return [p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def running_containers(namespace: str) -> dict[str, str]:
    """podman's view: container name -> pod name, for the testbed's containers of a namespace."""
    proc = subprocess.run(["podman", "ps", "--filter", f"label=io.kubernetes.pod.namespace={namespace}",
                           "--format", '{{.Names}} {{index .Labels "io.kubernetes.pod.name"}}'],
                          capture_output=True, text=True, timeout=30, check=False)
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def test_bot_and_worker_run_as_containers_of_the_image(testbed: Any, release: str, image_ref: str,
                                                       backends: Backends) -> None:
    bot, worker = pods(testbed, "bot"), pods(testbed, "worker")
    assert len(bot) == 1 and len(worker) == 1
    names = {p["metadata"]["name"] for p in bot + worker}
    running = wait_for(lambda: names <= set(running_containers(NAMESPACE).values()) and running_containers(NAMESPACE),
                       60, "bot and worker containers")
    assert names <= set(running.values()), running
    # The worker registered on its queue from inside its container (RQ records the host name: the pod's).
    client = redis.Redis.from_url(backends.redis_url, socket_timeout=5)
    from rq import Queue, Worker

    queue = Queue(f"aksdns:{CLUSTER}", connection=client)
    hosts = wait_for(lambda: {w.hostname for w in Worker.all(queue=queue)}, 90, "the worker on its queue")
    assert worker[0]["metadata"]["name"] in hosts
    inspect = subprocess.run(["podman", "inspect", next(n for n, p in running.items() if p in
                                                        {worker[0]["metadata"]["name"]})],
                             capture_output=True, text=True, timeout=30, check=True)
    info = json.loads(inspect.stdout)[0]
    assert info["ImageName"] == image_ref
    assert info["Config"]["User"] == "10001:10001"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapAdd"] in ([], None) and "no-new-privileges" in " ".join(
        info["HostConfig"].get("SecurityOpt") or [])


def test_check_typed_in_slack_is_answered_by_the_containerised_worker(testbed: Any, release: str,
                                                                     backends: Backends) -> None:
    bot = pods(testbed, "bot")[0]
    url = f"http://{bot['status']['podIP']}:{VALUES['bot']['port']}"
    wait_for(lambda: _healthy(url), 90, "the bot pod's /healthz")
    slack = backends.slack
    body = slash_body("check microsoft.com", channel=CHANNEL)
    status, _ = post(url + "/slack/events", body, sign(body), FORM)
    assert status == 200

    def replied() -> bool:
        return any(m.thread_ts and m.blocks and m.ephemeral_to is None for m in slack.state.messages)

    worker = pods(testbed, "worker")[0]["metadata"]["name"]
    if not slack.wait_for(lambda s: replied(), timeout=180):
        logs = kubectl(testbed, "-n", NAMESPACE, "logs", worker, check=False).stdout[-3000:]
        pytest.fail(f"no diagnosis in the thread; worker logs:\n{logs}")
    reply = next(m for m in slack.state.messages if m.thread_ts and m.blocks and m.ephemeral_to is None)
    transcript = slack.transcript(CHANNEL, reply.thread_ts)
    print(transcript)
    assert "CoreDNS pods" in transcript and "Virtual network DNS" in transcript
    # The worker's logs (kubectl logs, from its container) show it ran the job.
    logs = kubectl(testbed, "-n", NAMESPACE, "logs", worker).stdout
    assert "check" in logs


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_helm_test_runs_its_pod_as_a_container(testbed: Any, release: str) -> None:
    """The test pod reaches Succeeded only by running (kwok alone would keep it Running); its hook policy
    deletes it then, logs and all."""
    proc = helm(testbed, "test", RELEASE, "--namespace", NAMESPACE, "--timeout", "180s", timeout=240)
    assert re.search(r"TEST SUITE:\s+tbx-aksdns-test\s+Last Started:.*\s+Last Completed:.*\s+Phase:\s+Succeeded",
                     proc.stdout), proc.stdout


def capture_pod(image_ref: str, node: str, caps: list[str]) -> dict[str, Any]:
    sc = {**VALUES["capture"]["securityContext"], "capabilities": {"drop": ["ALL"], "add": caps}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"aksdns-capture-test-{uuid.uuid4().hex[:6]}", "namespace": NAMESPACE,
                     "labels": {"app.kubernetes.io/managed-by": "aksdns", "app.kubernetes.io/component": "capture"}},
        "spec": {
            "nodeName": node, "hostNetwork": True, "dnsPolicy": "Default", "restartPolicy": "Never",
            "activeDeadlineSeconds": 90, "automountServiceAccountToken": False, "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "capture", "image": image_ref, "imagePullPolicy": "Never",
                "command": ["tcpdump", "-i", "eth0", "-n", "-p", "-c", "4", "-w", "/tmp/dns.pcap",
                            "udp port 53"],
                "securityContext": sc, "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }


def run_capture(testbed: Any, pod: dict[str, Any]) -> tuple[str, str]:
    """Create the pod, send DNS queries from its node until it ends; (phase, logs)."""
    name = pod["metadata"]["name"]
    node_netns = next(n.netns for n in layout.node_specs(len(testbed.nodes)) if n.name == pod["spec"]["nodeName"])
    kubectl(testbed, "create", "-f", "-", stdin=json.dumps(pod))
    try:
        deadline = time.monotonic() + 120
        phase = ""
        while time.monotonic() < deadline:
            phase = kubectl(testbed, "-n", NAMESPACE, "get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
            if phase in {"Succeeded", "Failed"}:
                break
            subprocess.run(["ip", "netns", "exec", node_netns, "dig", "+tries=1", "+time=1",
                            f"@{layout.UPSTREAM_IP}", "capture.example.internal"],
                           capture_output=True, timeout=10, check=False)
        logs = kubectl(testbed, "-n", NAMESPACE, "logs", name, check=False).stdout
        return phase, logs
    finally:
        kubectl(testbed, "-n", NAMESPACE, "delete", "pod", name, "--wait=false", check=False)


def test_capture_pod_container_captures_dns_under_the_chart_context(testbed: Any, release: str,
                                                                     image_ref: str) -> None:
    phase, logs = run_capture(testbed, capture_pod(image_ref, testbed.nodes[0], ["NET_RAW", "NET_ADMIN"]))
    assert phase == "Succeeded", logs
    assert "4 packets captured" in logs


@pytest.mark.parametrize("kept", ["NET_RAW", "NET_ADMIN"])
def test_capture_pod_fails_clearly_without_a_capability(testbed: Any, release: str, image_ref: str,
                                                        kept: str) -> None:
    phase, logs = run_capture(testbed, capture_pod(image_ref, testbed.nodes[1], [kept]))
    assert phase == "Failed"
    assert "operation not permitted" in logs.lower(), logs


def test_no_container_outlives_its_pod(testbed: Any, release: str) -> None:
    """Probe, capture and test pods ended or were deleted: only the bot's and worker's containers run."""
    def only_bot_and_worker() -> bool:
        live = {p["metadata"]["name"] for p in pods(testbed, "bot") + pods(testbed, "worker")}
        return set(running_containers(NAMESPACE).values()) == live

    wait_for(only_bot_and_worker, 60, "containers of ended pods to go")
    proc = subprocess.run(["podman", "ps", "--filter", f"label={containers.MANAGED_LABEL}=true", "--format",
                           "{{.Names}}"], capture_output=True, text=True, timeout=30, check=True)
    assert all(n.startswith(containers.NAME_PREFIX) for n in proc.stdout.split()), proc.stdout
