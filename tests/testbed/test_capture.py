"""`capture` on the testbed: capture containers really run behind their nodes, tcpdump really captures.

Ground truth comes from a client pod that sends DNS queries on demand (testbed/traffic.py) and from the
testbed's fault knobs (an upstream delay, a dead CoreDNS pod, ephemeral containers refused by policy).
Every test ends by checking that nothing was left behind. Durations are short (5–10 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aksdns.errors import AksDnsError
from tests.testbed.capture_kit import (
    CLIENT,
    NAMESPACE,
    TSHARK,
    Run,
    capture_pods,
    capture_processes,
    interface_names,
    nothing_left,
    running_capture_containers,
    tshark_fields,
    wait_for,
)
from workers.analysis.traffic import analysis
from workers.capture import spool
from workers.probes import kube, pods

pytestmark = pytest.mark.testbed


@pytest.fixture(scope="module")
def client(testbed: Any) -> Iterator[Any]:
    pod = testbed.dns_client(CLIENT)
    try:
        yield pod
    finally:
        pod.delete()


@pytest.fixture
def run(testbed: Any, tmp_path: Path) -> Iterator[Run]:
    r = Run(testbed, tmp_path / "work", tmp_path / "out")
    r.workdir.mkdir()
    try:
        yield r
    finally:
        testbed.reset_faults()


def names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}-{int(time.time() * 1000) % 10**7}.wild.example.com." for i in range(n)]


def test_queries_appear_per_interface_and_analyze_equals_tshark(testbed: Any, client: Any, run: Run) -> None:
    wait = run.in_background(f"capture --coredns --pod default/{CLIENT} --duration 6s")
    assert run.capturing.wait(60), run.progress
    sent = client.query(names("merge", 8), rate=10)
    report = wait()
    pcapng = run.pcapng()
    coredns = [p.name for p in testbed.coredns_pods()]
    rows = tshark_fields(pcapng, "frame.interface_name", "ip.src", "ip.dst", "dns.id", "dns.qry.name",
                         "dns.flags.response")
    # One interface per target, named after the pod, whether or not packets reached it (kube-proxy picks a
    # CoreDNS pod per query at random, so eight queries may all land on one); every query the client sent is
    # on its interface, and at a CoreDNS pod with the same client address, port and id (kube-proxy rewrote
    # only the destination).
    interfaces = interface_names(pcapng)
    assert sorted(interfaces) == sorted([f"default/{CLIENT}", *(f"kube-system/{n}" for n in coredns)]), interfaces
    for s in sent:
        mine = [r for r in rows if int(r[3], 16) == s.id and r[4] == s.name.rstrip(".")]
        seen_at = {r[0] for r in mine if r[1] == client.ip and r[5] in ("0", "False")}  # the query
        assert f"default/{CLIENT}" in seen_at, (s, mine)
        assert len(seen_at - {f"default/{CLIENT}"}) == 1, (s, mine)  # and at exactly one CoreDNS pod
    # `analyze` on the very file the thread gets equals tshark's dns,tree on it.
    tree = subprocess.run([TSHARK, "-q", "-n", "-r", str(pcapng), "-z", "dns,tree"], capture_output=True,
                          text=True, timeout=60).stdout
    assert analysis.tshark_text([pcapng]) == tree
    assert run.reports and pcapng.name in run.reports[0].title  # `analyze`'s own report of that file
    data = report.data
    assert {t["mechanism"] for t in data["targets"]} == {"ephemeral"}
    assert data["per_hop"]["hops"]["upstream"]["queries"] == len(sent)
    nothing_left(testbed)


def test_per_hop_puts_an_upstream_delay_on_the_upstream_hop(testbed: Any, client: Any, run: Run) -> None:
    testbed.upstream_delay(0.3)
    wait = run.in_background(f"capture --coredns --pod default/{CLIENT} --duration 7s")
    assert run.capturing.wait(60), run.progress
    sent = client.query(names("slow", 6), rate=6, timeout_s=3)
    assert all(s.rcode == "NOERROR" for s in sent)
    report = wait()
    hops = report.data["per_hop"]
    assert hops["slowest_hop"] == "upstream", hops
    assert hops["hops"]["upstream"]["p50_ms"] >= 290 > hops["hops"]["CoreDNS"]["p50_ms"]
    assert hops["hops"]["client → CoreDNS"]["p50_ms"] < 100
    assert report.findings[0].rule == "capture.upstream_slow"
    nothing_left(testbed)


def test_per_hop_names_the_dead_coredns_pod(testbed: Any, client: Any, run: Run) -> None:
    dead = testbed.coredns_kill()
    wait = run.in_background(f"capture --coredns --pod default/{CLIENT} --duration 8s")
    assert run.capturing.wait(60), run.progress
    sent = client.query(names("dead", 16), rate=8, timeout_s=1.5)
    lost = [s for s in sent if s.rcode == "TIMEOUT"]
    report = wait()
    hops = report.data["per_hop"]
    assert lost, "the VIP sent no query to the dead pod (random choice); run again"
    assert hops["lost_before_coredns"] == len(lost)
    assert hops["silent_endpoints"] == [dead]
    assert report.findings[0].rule == "capture.silent_endpoint" and dead in report.findings[0].title
    testbed.coredns_reset()
    nothing_left(testbed)


def test_refused_ephemeral_containers_fall_back_and_say_so(testbed: Any, client: Any, run: Run) -> None:
    testbed.ephemeral_refuse()
    wait = run.in_background(f"capture --pod default/{CLIENT} --duration 5s")
    assert run.capturing.wait(60), run.progress
    sent = client.query(names("fallback", 4), rate=8)
    report = wait()
    target = report.data["targets"][0]
    assert target["mechanism"] == "node-veth" and "not allowed" in target["fallback"]
    assert target["interface"].startswith("aksp")  # the pod's veth on its node
    assert "ephemeral containers refused" in " ".join(run.progress)
    ids = {int(r[0], 16) for r in tshark_fields(run.pcapng(), "dns.id")}
    assert {s.id for s in sent} <= ids
    nothing_left(testbed)


def test_second_capture_of_a_target_is_refused_and_stop_ends_the_first(testbed: Any, client: Any, run: Run,
                                                                       tmp_path: Path) -> None:
    first = run.in_background(f"capture --pod default/{CLIENT} --duration 120s")
    assert run.capturing.wait(60), run.progress
    second = Run(testbed, tmp_path / "w2", tmp_path / "o2")
    second.workdir.mkdir()
    with pytest.raises(AksDnsError, match="already being captured"):
        second.execute(f"capture --pod default/{CLIENT} --duration 5s")
    run.stop.set()  # the Stop button
    report = first(timeout=60)
    assert report.data["ended_by"] == "stopped" and report.data["elapsed_s"] < 60
    nothing_left(testbed, timeout=20)


def test_the_byte_cap_holds_under_a_flood(testbed: Any, client: Any, run: Run) -> None:
    run.max_bytes = 1024 * 1024
    wait = run.in_background(f"capture --pod default/{CLIENT} --duration 8s")
    assert run.capturing.wait(60), run.progress
    sent = client.flood(seconds=4, rate=2500, size=300)
    report = wait()
    target = report.data["targets"][0]
    assert sent > 5000
    assert target["ring_dropped_packets"] > 0  # the ring let the oldest go
    kept = sum(int(r[0]) for r in tshark_fields(run.pcapng(), "frame.cap_len", display_filter=""))
    assert kept <= run.max_bytes, kept
    nothing_left(testbed)


def test_live_rows_name_both_ends_and_go_to_csv(testbed: Any, client: Any, run: Run) -> None:
    wait = run.in_background(f"capture --live --coredns --pod default/{CLIENT} --duration 6s")
    assert run.capturing.wait(60), run.progress
    sent = client.query(names("live", 5), rate=10)
    report = wait()
    csv_path = next(p for n, p in run.delivered.items() if n.endswith(".csv"))
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("time,target,client,server,name,type,id,rcode,latency_ms")
    for s in sent:
        mine = [line for line in lines if f",{s.id}," in line and s.name in line]
        assert any(f"default/{CLIENT},default/{CLIENT},kube-dns (Service)" in line for line in mine), mine
        assert any(",upstream " in line for line in lines if s.name in line)
    assert report.data["live"]["answered"] >= 3 * len(sent)
    nothing_left(testbed)


def test_bad_targets_get_one_line_each(testbed: Any, client: Any, run: Run) -> None:
    pending = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "never-scheduled", "namespace": "default"},
               "spec": {"nodeSelector": {"aksdns.io/no-such-node": "x"},
                        "containers": [{"name": "c", "image": "mcr.microsoft.com/azurelinux/base/core:3.0"}]}}
    testbed.kube.create("/api/v1/namespaces/default/pods", pending)
    node = testbed.node_not_ready(client.node)
    try:
        with pytest.raises(AksDnsError) as err:
            run.execute("capture --pod default/missing --pod default/never-scheduled "
                        f"--pod default/{CLIENT} --duration 5s")
        text = err.value.message
        assert "default/missing no such pod" in text
        assert "default/never-scheduled is Pending, not Running" in text
        assert f"default/{CLIENT} is on node {node}, which is NotReady" in text
    finally:
        testbed.kube.delete("/api/v1/namespaces/default/pods/never-scheduled")
        testbed.node_ready_reset()
    assert not capture_pods(testbed) and not running_capture_containers(testbed)


def test_an_api_error_mid_capture_leaves_nothing_once_deadlines_pass(testbed: Any, client: Any, run: Run) -> None:
    """The worker loses its rights mid-capture: it cannot stop or delete what it made; deadlines and the
    janitor end them anyway."""
    wait = run.in_background(f"capture --pod default/{CLIENT} --node {testbed.nodes[1]} --duration 5s")
    assert run.capturing.wait(60), run.progress
    testbed.worker_deny()
    try:
        sent = client.query(names("denied", 3), rate=10)  # tcpdump's next writes fail once the stream closes
        report = wait()
        notes = [n for t in report.data["targets"] for n in t["notes"]]
        assert any("could not stop the capture container" in n for n in notes), notes
    except AksDnsError:
        sent = []  # failing with one line is as good
    finally:
        testbed.worker_allow()
    client.query(names("after", 3), rate=10)
    assert sent is not None
    wait_for("capture containers ended by their deadline", lambda: not running_capture_containers(testbed), 90)
    c = kube.connect(str(testbed.worker_kubeconfig))
    pods.janitor(c.core, NAMESPACE, now=time.time() + 3600)  # the next worker start, past the expiry
    nothing_left(testbed)


def test_a_worker_killed_mid_capture_leaves_nothing_after_deadlines_and_the_janitor(
        testbed: Any, client: Any, tmp_path: Path) -> None:
    # A node with a CoreDNS pod: its forwards to the upstream cross that node's eth0.
    node = next(p.node for p in testbed.coredns_pods() if p.node != client.node)
    script = tmp_path / "job.py"
    script.write_text(f"""
import sys
from pathlib import Path
from tests.testbed.capture_kit import Run
from testbed import cluster
tb = cluster.attach()
run = Run(tb, Path({str(tmp_path / 'aksdns-killed-job')!r}), Path({str(tmp_path / 'o')!r}))
run.workdir.mkdir()
import threading
def watch():
    run.capturing.wait(120)
    print("CAPTURING", flush=True)
threading.Thread(target=watch, daemon=True).start()
run.execute("capture --pod default/{CLIENT} --node {node} --duration 20s")
""")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=repo,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "CAPTURING"
    assert running_capture_containers(testbed) and capture_pods(testbed) and capture_processes()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    client.query(names("orphan", 10), rate=20)  # traffic goes on: tcpdump's next write finds its stream gone
    # The exec streams died with the worker: tcpdump ends at its next write, the agents at their deadline
    # (duration + graces) at the latest; the janitor of the next worker start removes the pod after expiry.
    wait_for("capture containers ended", lambda: not running_capture_containers(testbed), 150)
    wait_for("capture processes gone", lambda: not capture_processes(), 30)
    c = kube.connect(str(testbed.worker_kubeconfig))
    assert pods.janitor(c.core, NAMESPACE, now=time.time() + 3600) >= 1
    # The killed job's files: kept until their retention ends, then swept (at the next worker start).
    assert list((tmp_path / "aksdns-killed-job").glob("capture/*"))
    assert spool.sweep(tmp_path, now=time.time() + 2 * 3600) == 1
    assert not list((tmp_path / "aksdns-killed-job").glob("capture"))
    nothing_left(testbed)


def test_capture_containers_of_the_real_image_capture_with_exactly_their_two_capabilities(
        testbed: Any, client: Any, run: Run) -> None:
    """With the image built (scripts/image), capture containers run from it under podman as the testbed's
    container mode runs the chart's pods: the unprivileged user, NET_RAW and NET_ADMIN only, no_new_privs.
    tcpdump exec'd into them captures; the ephemeral container and the fallback capture pod both."""
    from testbed import image

    ref = os.environ.get("AKSDNS_CAPTURE_TEST_IMAGE") or image.image_ref()  # another tag of it, by hand
    why = image.unavailable(ref)
    if why:
        pytest.skip(why)
    with image.mounted(ref) as root:
        if not (image.site_packages(root) / "workers" / "probes" / "capture_agent.py").is_file():
            pytest.skip(f"{ref} was built from code without the capture agent: rebuild it (scripts/image)")
    run.image = ref
    wait = run.in_background(f"capture --pod default/{CLIENT} --duration 5s")
    assert run.capturing.wait(90), run.progress
    sent = client.query(names("image", 3), rate=10)
    report = wait()
    assert report.data["targets"][0]["mechanism"] == "ephemeral" and report.data["targets"][0]["packets"] >= 6
    assert {int(r[0], 16) for r in tshark_fields(run.pcapng(), "dns.id")} >= {s.id for s in sent}
    nothing_left(testbed)
    testbed.ephemeral_refuse()
    run.capturing.clear()
    run.delivered.clear()
    wait = run.in_background(f"capture --pod default/{CLIENT} --duration 5s")
    assert run.capturing.wait(90), run.progress
    sent = client.query(names("image-pod", 3), rate=10)
    report = wait()
    assert report.data["targets"][0]["mechanism"] == "node-veth" and report.data["targets"][0]["packets"] >= 6
    nothing_left(testbed)
