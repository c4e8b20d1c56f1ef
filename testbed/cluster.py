"""Start, stop and inspect the testbed; the `Testbed` handle with its fault knobs.

`up()` starts, in order: the network (bridge, node and upstream namespaces, nftables), etcd,
kube-apiserver, the nodes and the kwok CRD, kube-controller-manager, kube-scheduler, kwok, the upstream
DNS stand-in, the runner (which starts one CoreDNS per CoreDNS pod), then AKS's kube-system objects, and
waits until CoreDNS answers at every pod IP and at the Service VIP. Every process is detached in its own
session with a pid file under run/pids, so `python -m testbed up` can return and `down` (from any
process) stops everything; `down` also removes every namespace, link and table with the testbed's prefix.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import dns.exception
import dns.message
import dns.query
import dns.rcode

from testbed import (
    containerexec,
    dataplane,
    faults_apiserver,
    layout,
    localdns,
    manifests,
    metrics,
    net,
    paths,
    pki,
    procs,
    versions,
)
from testbed.kube import JSON, ApiError, Kube, apply_object
from testbed.sh import run
from testbed.state import State

BUILD_HINT = "build them once with testbed/build.sh (about 20 min cold; cached in ~/.cache/aksdns)"
STOP_ORDER = ("dataplane", "runner", "metrics-server", "kwok", "kube-scheduler", "kube-controller-manager", "upstream",
              "kube-apiserver", "authn", "etcd")
UP_TIMEOUT_S = 120.0
BAD_CUSTOM_KEY = "testbed-bad.server"


class TestbedError(RuntimeError):
    pass


class NotBuilt(TestbedError):
    pass


def requirements_missing(env: Mapping[str, str] | None = None) -> str | None:
    """One line saying why the testbed cannot start here, or None."""
    missing = paths.missing_binaries(env)
    if missing:
        return f"testbed binaries missing ({', '.join(missing)}): {BUILD_HINT}"
    if os.geteuid() != 0:
        return "the testbed needs root (network namespaces, veths, nftables)"
    for tool in ("ip", "nft", "openssl", "mount"):
        if shutil.which(tool) is None:
            return f"the testbed needs `{tool}` on PATH (apt-get install -y iproute2 nftables openssl)"
    return None


@contextlib.contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    """Serialises up/down between processes (several engineers share one machine)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / "testbed.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


SESSION_WAIT_S = 1800.0


def acquire_session(wait_s: float = SESSION_WAIT_S, who: str = "") -> IO[str]:
    """Exclusive use of the machine's testbed (its fault knobs are global). Blocks while another test
    session or script holds it, saying so once on stderr; the lock is held until the returned file is
    closed (or the process exits)."""
    lock_dir = paths.run_dir().parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    fh = open(lock_dir / "testbed.session", "a+")  # held by the caller
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                fh.close()
                raise TestbedError(f"another session held the testbed for {wait_s:.0f} s") from None
            if not told:
                fh.seek(0)
                print(f"testbed: waiting for {fh.read().strip() or 'another session'} to finish with it ...",
                      file=sys.stderr, flush=True)
                told = True
            time.sleep(1.0)
    fh.seek(0)
    fh.truncate()
    fh.write(f"{who or Path(sys.argv[0]).name} pid {os.getpid()}\n")
    fh.flush()
    return fh


@contextlib.contextmanager
def session(wait_s: float = SESSION_WAIT_S) -> Iterator[Testbed]:
    """For scripts (benchmarks, the demo): exclusive use of a ready testbed. Uses a running one (faults
    reset, left running) or starts one and stops it on exit."""
    lock = acquire_session(wait_s)
    started = False
    try:
        tb = attach(same_code=True)  # a testbed other code started is replaced (up() stops it first)
        if tb is None:
            tb = up()
            started = True
        else:
            tb.reset_faults()
        yield tb
    finally:
        try:
            if started:
                down()
        finally:
            lock.close()


def session_holder(run_dir: Path | None = None) -> str | None:
    """Who holds the test-session lock (a pytest session using the testbed), or None."""
    path = (run_dir or paths.run_dir()).parent / "testbed.session"
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            return fh.read().strip() or "a test session"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def _bin(name: str) -> str:
    path = paths.binary(name)
    if path is None:
        raise NotBuilt(f"testbed binary {name} missing: {BUILD_HINT}")
    return str(path)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Children run `python -m testbed.*`; make that work whether or not the package is installed.
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _dns_answers(server: str, name: str = f"kubernetes.default.svc.{layout.CLUSTER_DOMAIN}",
                 timeout: float = 1.0) -> bool:
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def _wait_port(port: int, timeout_s: float) -> None:
    import socket

    def _open() -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    procs.wait_for(f"127.0.0.1:{port}", _open, timeout_s)


def _kwok_config(state: State) -> Path:
    share = paths.kwok_share_dir()
    stages = ["node-initialize.yaml", "node-heartbeat-with-lease.yaml", "pod-ready.yaml",
              "pod-complete.yaml", "pod-delete.yaml"]
    texts = [(share / s).read_text() for s in stages]
    path = state.run / "kwok.yaml"
    path.write_text(manifests.kwok_config(texts))
    return path


def up(run_dir: Path | None = None, node_count: int = 3, timeout_s: float = UP_TIMEOUT_S) -> Testbed:
    why = requirements_missing()
    if why:
        raise NotBuilt(why)
    run_dir = run_dir or paths.run_dir()
    with _lock(run_dir):
        _down_locked(run_dir)
        started = time.monotonic()
        try:
            return _up_locked(run_dir, node_count, started + timeout_s)
        except (TimeoutError, ApiError, OSError) as exc:
            _down_locked(run_dir)
            raise TestbedError(f"testbed did not come up: {exc}; logs in {run_dir.parent / 'last-run-logs'}") \
                from exc
        except BaseException:
            _down_locked(run_dir)
            raise


def _up_locked(run_dir: Path, node_count: int, deadline: float) -> Testbed:
    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    for sub in ("pki", "pids", "logs", "pods", "etcd"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    state = State(run_dir=str(run_dir), api_port=procs.free_port(), etcd_port=procs.free_port(),
                  kubelet_port=procs.free_port(), node_names=[n.name for n in layout.node_specs(node_count)],
                  coredns_binary=_bin("coredns"), python=sys.executable, started_at=time.time(),
                  extra={"code": code_digest()})
    state.save()
    pki.make_control_plane_pki(state.pki)
    metrics.make_pki(state.pki)
    p = state.pki
    server = state.api_url
    for user in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
        pki.write_kubeconfig(state.run / f"{user}.kubeconfig", server, p / "ca.crt", user,
                             cert=p / f"{user}.crt", key=p / f"{user}.key")
    # Token users: a TokenReview webhook that accepts tokens minted by Testbed.token_kubeconfig.
    authn_port = procs.free_port()
    state.extra["authn_port"] = str(authn_port)
    state.save()
    pki.make_cert(p, "authn", "testbed-authn", ips=["127.0.0.1"])
    (p / "token.secret").write_bytes(os.urandom(32))
    (p / "token.secret").chmod(0o600)
    authn_kubeconfig = pki.write_kubeconfig(
        state.run / "authn-webhook.kubeconfig", f"https://127.0.0.1:{authn_port}/authenticate",
        p / "ca.crt", "kube-apiserver", cert=p / "apiserver-kubelet-client.crt",
        key=p / "apiserver-kubelet-client.key")
    net.create_base(state.nodes(), state.api_port, state.kubelet_port)
    state.upstream_state.write_text("{}")
    env = _child_env()
    logs, pids = state.logs, state.pids

    peer = procs.free_port()
    procs.start("etcd", [
        _bin("etcd"), "--name", "testbed", "--data-dir", str(state.run / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{state.etcd_port}",
        "--advertise-client-urls", f"http://127.0.0.1:{state.etcd_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"testbed=http://127.0.0.1:{peer}",
        # A throwaway store: skipping fsync makes start-up and every write much faster.
        "--unsafe-no-fsync", "--log-level", "warn",
    ], pids, logs / "etcd.log", env=env)
    procs.start("authn", [sys.executable, "-m", "testbed.authn", "--port", str(authn_port),
                          "--cert", str(p / "authn.crt"), "--key", str(p / "authn.key"),
                          "--secret", str(p / "token.secret")], pids, logs / "authn.log", env=env)
    _wait_port(state.etcd_port, left())

    procs.start("kube-apiserver", [
        _bin("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
        # Listens on loopback only; advertises the bridge address, which nodes and pods reach through
        # DNAT, so the `kubernetes` Service gets a valid endpoint (loopback ones are rejected).
        "--bind-address=127.0.0.1", f"--advertise-address={layout.GATEWAY_IP}",
        f"--secure-port={state.api_port}",
        f"--cert-dir={state.run / 'apiserver'}",
        f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true", "--profiling=false", "--event-ttl=1h",
        f"--authentication-token-webhook-config-file={authn_kubeconfig}",
        "--authentication-token-webhook-version=v1",
        *metrics.apiserver_flags(p),
    ], pids, logs / "kube-apiserver.log", env=env)
    admin = state.admin(timeout=10)
    procs.wait_for("kube-apiserver /readyz", admin.healthy, left(), 0.25)

    # Nodes exist with their addresses and sizes before kwok sees them: kwok keeps what is there.
    for spec in state.nodes():
        apply_object(admin, manifests.node(spec))
        admin.merge_patch(f"/api/v1/nodes/{spec.name}/status", manifests.node_status(spec))
    import yaml

    crd = yaml.safe_load((paths.kwok_share_dir() / "kwok.x-k8s.io_logs.yaml").read_text())
    apply_object(admin, crd)
    for crd in metrics.crds():
        apply_object(admin, crd)
    apply_object(admin, containerexec.EXEC_CRD)  # exec lands inside containers (testbed/containerexec.py)

    procs.start("kube-controller-manager", [
        _bin("kube-controller-manager"),
        f"--kubeconfig={state.run / 'kube-controller-manager.kubeconfig'}",
        "--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=true",
        f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--cluster-cidr={layout.POD_CIDR}", f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--concurrent-deployment-syncs=2",
        # Notice a node whose heartbeats stopped (kwok lease 10 s) within about 20 s, not 50.
        "--node-monitor-period=2s", "--node-monitor-grace-period=20s",
    ], pids, logs / "kube-controller-manager.log", env=env)
    procs.start("kube-scheduler", [
        _bin("kube-scheduler"), f"--kubeconfig={state.run / 'kube-scheduler.kubeconfig'}",
        "--leader-elect=false", "--secure-port=0",
    ], pids, logs / "kube-scheduler.log", env=env)
    procs.wait_for("the kwok Logs and Exec CRDs to be served",
                   lambda: {"logs", "execs"} <= {r["name"] for r in admin.get("/apis/kwok.x-k8s.io/v1alpha1")
                                                 .get("resources", [])}, left(), 0.25)
    procs.start("kwok", [
        _bin("kwok"), f"--kubeconfig={state.run / 'kwok.kubeconfig'}", f"--config={_kwok_config(state)}",
        f"--manage-nodes-with-annotation-selector={layout.KWOK_NODE_ANNOTATION}=fake",
        f"--cidr={layout.POD_CIDR}", f"--node-ip={state.nodes()[0].ip}",
        f"--node-port={state.kubelet_port}", f"--server-address=127.0.0.1:{state.kubelet_port}",
        f"--tls-cert-file={p / 'kwok-serving.crt'}", f"--tls-private-key-file={p / 'kwok-serving.key'}",
        f"--enable-crds=Logs,Exec,{metrics.KWOK_CRDS}", "--node-lease-duration-seconds=10",
        # Pods a fault knob holds in ContainerCreating (its status is the knob's, not kwok's).
        f"--disregard-status-with-annotation-selector={layout.KWOK_HOLD_ANNOTATION}=hold",
    ], pids, logs / "kwok.log", env={**env, "PATH": f"{containerexec.write_shims(state.run, sys.executable)}"
                                                    f"{os.pathsep}{env.get('PATH', '')}"})
    procs.start("upstream", [
        "ip", "netns", "exec", layout.UPSTREAM_NETNS, sys.executable, "-m", "testbed.upstream",
        "--address", layout.UPSTREAM_IP, "--state", str(state.upstream_state),
    ], pids, logs / "upstream.log", env=env)
    procs.start("runner", [sys.executable, "-m", "testbed.runner", "--run-dir", str(state.run)],
                pids, logs / "runner.log", env=env)
    procs.start("dataplane", [sys.executable, "-m", "testbed.dataplane", "--run-dir", str(state.run)],
                pids, logs / "dataplane.log", env=env)

    for obj in [*manifests.kube_system(), dataplane.kube_proxy_daemonset(), *manifests.worker_rbac()]:
        apply_object(admin, obj)
    faults_apiserver.install(admin, state)  # konnectivity-agent (the `apiserver` faults need it)
    metrics.apply(admin, state)
    metrics.start(state, env)
    tb = Testbed(state)
    tb.write_worker_kubeconfig()
    tb.wait_ready(left())
    return tb


def _kill_strays(run_dir: Path) -> None:
    """Processes that lost their pid file but still name our run directory (every testbed process
    does: data dir, kubeconfig, Corefile or --run-dir). Only the run directory counts, never the
    cache: other people run the cached binaries (helm) and builds write there."""
    marker = str(run_dir) + os.sep
    me = os.getpid()
    strays: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or cmdline.rstrip().endswith(str(run_dir)):
            strays.append(int(entry.name))
    # All at once: SIGTERM, a short grace for everybody together, then SIGKILL.
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not all(procs.gone(p) for p in strays):
            time.sleep(0.05)


def down(run_dir: Path | None = None) -> None:
    run_dir = run_dir or paths.run_dir()
    with _lock(run_dir):
        _down_locked(run_dir)


def _down_locked(run_dir: Path) -> None:
    procs.stop_all(run_dir / "pids", STOP_ORDER)
    _kill_strays(run_dir)
    net.destroy_all()
    faults_apiserver.cleanup_host()
    dataplane.cleanup()
    if run_dir.exists():
        # Keep the last run's logs for a post-mortem (a failed `up` cleans up after itself).
        last = run_dir.parent / "last-run-logs"
        shutil.rmtree(last, ignore_errors=True)
        if (run_dir / "logs").is_dir():
            shutil.move(str(run_dir / "logs"), str(last))
        shutil.rmtree(run_dir, ignore_errors=True)


def code_digest() -> str:
    """What the testbed's own code is: a testbed started from other code (another checkout) is not reused."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def attach(run_dir: Path | None = None, *, same_code: bool = False) -> Testbed | None:
    """The running testbed, if its API server answers (with ``same_code``: only if this code started it)."""
    state = State.load(run_dir or paths.run_dir())
    if state is None or not procs.alive(state.pids, "kube-apiserver") or not state.admin().healthy():
        return None
    if same_code and state.extra.get("code") != code_digest():
        return None
    return Testbed(state)


@dataclass
class CorednsPod:
    name: str
    ip: str
    node: str
    ready: bool


class Testbed:
    """Handle on a running testbed: addresses, credentials and fault knobs (each with its reset)."""

    __test__ = False  # not a pytest test class, whatever module imports it

    def __init__(self, state: State) -> None:
        self.state = state
        self.run_dir = state.run
        self.kubeconfig: Path = state.kubeconfig
        self.api_url: str = state.api_url
        self.kube_dns_ip: str = layout.KUBE_DNS_IP
        self.upstream: str = layout.UPSTREAM_IP
        self.azure_dns_ip: str = layout.AZURE_DNS_IP
        self.nodes: list[str] = list(state.node_names)
        self.node_netns: dict[str, str] = {n.name: n.netns for n in state.nodes()}
        self.node_ips: dict[str, str] = {n.name: n.ip for n in state.nodes()}
        self.worker_kubeconfig: Path = state.run / "worker.kubeconfig"
        self.worker_service_account = f"{manifests.WORKER_NAMESPACE}/{manifests.WORKER_SERVICE_ACCOUNT}"
        self.kube: Kube = state.admin()
        self.apiserver_faults = faults_apiserver.ApiserverFaults(self)  # `apiserver`'s knobs, each with a reset

    # ---- inspection ------------------------------------------------------------------------------
    def coredns_pods(self) -> list[CorednsPod]:
        pods = self.kube.get("/api/v1/namespaces/kube-system/pods", labelSelector="k8s-app=kube-dns")
        out = []
        for pod in pods["items"]:
            status = pod.get("status", {})
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in status.get("conditions") or [])
            if status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
                out.append(CorednsPod(pod["metadata"]["name"], status["podIP"], pod["spec"].get("nodeName", ""),
                                      ready))
        return sorted(out, key=lambda p: p.name)

    @property
    def coredns_pod_ips(self) -> list[str]:
        return [p.ip for p in self.coredns_pods()]

    def node_ready(self, node: str) -> bool:
        obj = self.kube.get(f"/api/v1/nodes/{node}")
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in obj.get("status", {}).get("conditions") or [])

    def kubectl(self, *args: str, kubeconfig: Path | None = None,
                timeout: float = 30.0) -> Any:
        return run([_bin("kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
                   check=False, timeout=timeout)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        procs.wait_for("all nodes Ready", lambda: all(self.node_ready(n) for n in self.nodes), timeout_s)

        def coredns_up() -> bool:
            pods = self.coredns_pods()
            return len(pods) >= 2 and all(p.ready and _dns_answers(p.ip) for p in pods)

        procs.wait_for("CoreDNS answering at every pod IP", coredns_up, timeout_s, 0.25)
        procs.wait_for("the kube-dns Service IP answering", lambda: _dns_answers(self.kube_dns_ip),
                       timeout_s, 0.25)

    def describe(self) -> dict[str, Any]:
        return {
            "kubeconfig": str(self.kubeconfig), "api_url": self.api_url, "kube_dns_ip": self.kube_dns_ip,
            "coredns_pods": [p.__dict__ for p in self.coredns_pods()], "nodes": self.nodes,
            "node_ips": self.node_ips, "node_netns": self.node_netns, "upstream": self.upstream,
            "stands_in_for": self.azure_dns_ip, "worker_kubeconfig": str(self.worker_kubeconfig),
            "kubernetes_version": versions.KUBERNETES, "run_dir": str(self.run_dir),
            "memory_mib": {k: round(v / 2**20) for k, v in procs.memory_in_use(self.state.pids).items()},
            "processes": {f.stem: pid for f in sorted(self.state.pids.glob("*.pid"))
                          if (pid := procs.read_pid(f)) is not None},
        }

    # ---- credentials -----------------------------------------------------------------------------
    def user_kubeconfig(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig authenticating as `user` in `groups` (client certificate), for RBAC tests."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        name = f"user-{safe}-{abs(hash((user, tuple(groups)))) % 10**8}"
        crt, key = pki.make_cert(self.state.pki, name, user, groups=groups)
        return pki.write_kubeconfig(self.run_dir / f"{name}.kubeconfig", self.api_url,
                                    self.state.pki / "ca.crt", user, cert=crt, key=key)

    def token_kubeconfig(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A bearer-token kubeconfig for any user in any groups (the testbed's token webhook vouches
        for the token), for RBAC tests that need token users rather than certificates."""
        from testbed import authn

        token = authn.mint((self.state.pki / "token.secret").read_bytes(), user, groups)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        name = f"token-{safe}-{abs(hash((user, tuple(groups)))) % 10**8}"
        return pki.write_kubeconfig(self.run_dir / f"{name}.kubeconfig", self.api_url,
                                    self.state.pki / "ca.crt", user, token=token)

    def service_account_kubeconfig(self, namespace: str, name: str, seconds: int = 86400) -> Path:
        """A bearer-token kubeconfig for a ServiceAccount (TokenRequest API), as a pod would have."""
        resp = self.kube.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": seconds}})
        return pki.write_kubeconfig(self.run_dir / f"sa-{namespace}-{name}.kubeconfig", self.api_url,
                                    self.state.pki / "ca.crt", f"system:serviceaccount:{namespace}:{name}",
                                    token=resp["status"]["token"])

    def write_worker_kubeconfig(self) -> Path:
        path = self.service_account_kubeconfig(manifests.WORKER_NAMESPACE, manifests.WORKER_SERVICE_ACCOUNT)
        path.replace(self.worker_kubeconfig)
        return self.worker_kubeconfig

    # ---- upstream knobs --------------------------------------------------------------------------
    def _upstream(self, **faults: Any) -> None:
        import json

        tmp = self.state.upstream_state.with_suffix(".tmp")
        tmp.write_text(json.dumps(faults))
        tmp.replace(self.state.upstream_state)

    def upstream_drop(self, percent: float = 100.0) -> None:
        """The upstream silently drops this share of queries."""
        self._upstream(drop_percent=percent)

    def upstream_delay(self, seconds: float) -> None:
        """The upstream answers every query after `seconds` (6 s reproduces the guide's SERVFAILs)."""
        self._upstream(delay_s=seconds)

    def upstream_rcode(self, rcode: str) -> None:
        """The upstream answers every query with this rcode (SERVFAIL, NXDOMAIN, REFUSED)."""
        if rcode.upper() not in ("SERVFAIL", "NXDOMAIN", "REFUSED"):
            raise ValueError(f"unsupported rcode {rcode}")
        self._upstream(rcode=rcode.upper())

    def upstream_reset(self) -> None:
        self._upstream()

    # ---- CoreDNS pod knobs -----------------------------------------------------------------------
    def _pick_coredns(self, pod: str | None) -> str:
        if pod:
            return pod
        pods = self.coredns_pods()
        if not pods:
            raise TestbedError("no CoreDNS pod")
        return pods[0].name

    def _annotate(self, pod: str, value: str | None) -> None:
        self.kube.merge_patch(f"/api/v1/namespaces/kube-system/pods/{pod}",
                              {"metadata": {"annotations": {layout.FAULT_ANNOTATION: value}}})

    def _fault_of(self, pod: str) -> str:
        obj = self.kube.get_or_none(f"/api/v1/namespaces/kube-system/pods/{pod}") or {}
        return str(((obj.get("metadata") or {}).get("annotations") or {}).get(layout.FAULT_ANNOTATION, ""))

    def coredns_kill(self, pod: str | None = None, timeout_s: float = 30.0) -> str:
        """One CoreDNS pod dead: its process killed and its IP unreachable, the API still says Ready.

        Returns once the pod's IP has stopped answering: the runner applies the annotation on its own
        loop, and a check started before that would see a healthy pod."""
        name = self._pick_coredns(pod)
        ip = next(p.ip for p in self.coredns_pods() if p.name == name)
        self._annotate(name, "dead")
        procs.wait_for(f"CoreDNS pod {name} to stop answering", lambda: not _dns_answers(ip, timeout=0.5),
                       timeout_s, 0.2)
        return name

    def coredns_crashloop(self, pod: str | None = None) -> str:
        """One CoreDNS pod not Ready and restarting (CrashLoopBackOff, restartCount growing)."""
        name = self._pick_coredns(pod)
        self._annotate(name, "crashloop")
        return name

    def coredns_oom(self, pod: str | None = None) -> str:
        """One CoreDNS process SIGKILLed as the OOM killer would; the pod shows an OOMKilled restart."""
        name = self._pick_coredns(pod)
        self._annotate(name, "oom")
        return name

    def coredns_loop(self, pod: str | None = None) -> str:
        """One CoreDNS pod's resolv.conf names CoreDNS itself: the real loop plugin detects the
        forwarding loop and exits; the pod crash-loops (Error, plugin/loop in its previous log)."""
        name = self._pick_coredns(pod)
        self._annotate(name, "loop")
        return name

    def coredns_custom_bad(self) -> str:
        """A coredns-custom `.server` key redefining `.:53` (Azure/AKS#919): CoreDNS refuses the reload
        ("already defined"), keeps its old configuration and logs why."""
        self.kube.merge_patch("/api/v1/namespaces/kube-system/configmaps/coredns-custom",
                              {"data": {BAD_CUSTOM_KEY: f".:53 {{\n    forward . {layout.UPSTREAM_IP}\n}}\n"}})
        return BAD_CUSTOM_KEY

    def coredns_custom_reset(self, timeout_s: float = 30.0) -> None:
        data = (self.kube.get("/api/v1/namespaces/kube-system/configmaps/coredns-custom").get("data") or {})
        self.kube.merge_patch("/api/v1/namespaces/kube-system/configmaps/coredns-custom",
                              {"data": {BAD_CUSTOM_KEY: None, "aksdns-verbose-log.override": None}})
        if BAD_CUSTOM_KEY in data:
            # After a refused reload CoreDNS 1.14 fails every later reload too ("getting old listener file:
            # use of closed network connection"): replace the pods, as one would with a rollout restart.
            old = {p.name for p in self.coredns_pods()}
            for name in old:
                self.kube.delete(f"/api/v1/namespaces/kube-system/pods/{name}")
            procs.wait_for("fresh CoreDNS pods answering", lambda: len(pods := self.coredns_pods()) >= 2
                           and not old & {p.name for p in pods} and all(p.ready and _dns_answers(p.ip) for p in pods),
                           timeout_s, 0.5)

    def metrics_server_down(self) -> None:
        """metrics-server stops: metrics.k8s.io answers 503 (the APIService is unavailable)."""
        metrics.stop(self.state)

    def metrics_server_reset(self) -> None:
        if not metrics.running(self.state):
            metrics.start(self.state, _child_env())

    def metrics_ready(self, timeout_s: float = 90.0) -> None:
        """Wait until `kubectl top pods` has every CoreDNS pod (metrics-server needs two scrapes)."""
        def ready() -> bool:
            out = self.kubectl("top", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "--no-headers")
            names = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
            return out.returncode == 0 and {p.name for p in self.coredns_pods()} <= names

        procs.wait_for("kubectl top pods to list every CoreDNS pod", ready, timeout_s, 1.0)

    def hot_pod(self, pod: str | None = None, qps: float = 40.0, seconds: float = 90.0) -> str:
        """One client sends `qps` queries a second to one CoreDNS pod for `seconds` (then stops)."""
        name = self._pick_coredns(pod)
        ip = next(p.ip for p in self.coredns_pods() if p.name == name)
        procs.start("hotpod", [sys.executable, "-m", "testbed.hotpod", "--server", ip, "--qps", str(qps),
                               "--seconds", str(seconds)], self.state.pids, self.state.logs / "hotpod.log",
                    env=_child_env())
        return name

    def hot_pod_reset(self) -> None:
        pid = procs.read_pid(self.state.pids / "hotpod.pid")
        if pid is not None:
            procs.stop_pid(pid, grace_s=1.0)
        (self.state.pids / "hotpod.pid").unlink(missing_ok=True)

    def localdns_on(self) -> None:
        """AKS LocalDNS on every node (a real CoreDNS on 169.254.10.10/11 in each node namespace)."""
        localdns.on(self.state)
        for node in self.state.nodes():
            procs.wait_for(f"LocalDNS answering on {node.name}", lambda n=node: localdns.answers(n), 20.0, 0.25)

    def localdns_dead(self, node: str | None = None) -> str:
        """LocalDNS on, then dead on one node (its process killed, the node still points at it)."""
        self.localdns_on()
        spec = next(n for n in self.state.nodes() if n.name == (node or self.nodes[-1]))
        localdns.kill(self.state, spec)
        return spec.name

    def localdns_off(self) -> None:
        localdns.off(self.state)

    def coredns_reset(self, timeout_s: float = 30.0) -> None:
        restarted = [p.name for p in self.coredns_pods() if self._fault_of(p.name) in ("oom", "loop")]
        for p in self.coredns_pods():
            self._annotate(p.name, None)
        # A restart stays in a pod's status for good: replace the pods those knobs restarted, as one
        # would with `kubectl delete pod`, so the next test starts from fresh pods.
        for name in restarted:
            self.kube.delete(f"/api/v1/namespaces/kube-system/pods/{name}")
        if restarted:
            procs.wait_for("the replaced CoreDNS pods to appear", lambda: len(self.coredns_pods()) >= 2
                           and not set(restarted) & {p.name for p in self.coredns_pods()}, timeout_s, 0.5)
        procs.wait_for("CoreDNS pods Ready and answering again",
                       lambda: all(p.ready and _dns_answers(p.ip) for p in self.coredns_pods()), timeout_s, 0.25)

    # ---- node knobs ------------------------------------------------------------------------------
    def node_not_ready(self, node: str | None = None) -> str:
        """A node NotReady: kwok stops managing it (no heartbeat) and its Ready condition is False."""
        name = node or self.nodes[-1]
        self.kube.merge_patch(f"/api/v1/nodes/{name}",
                              {"metadata": {"annotations": {layout.KWOK_NODE_ANNOTATION: None}}})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [
            {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
             "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
        ]
        obj = self.kube.get(f"/api/v1/nodes/{name}")
        others = [c for c in obj.get("status", {}).get("conditions") or [] if c.get("type") != "Ready"]
        self.kube.merge_patch(f"/api/v1/nodes/{name}/status", {"status": {"conditions": others + conditions}})
        return name

    def node_ready_reset(self, node: str | None = None, timeout_s: float = 30.0) -> None:
        for name in [node] if node else self.nodes:
            self.kube.merge_patch(f"/api/v1/nodes/{name}",
                                  {"metadata": {"annotations": {layout.KWOK_NODE_ANNOTATION: "fake"}}})
        procs.wait_for("nodes Ready again", lambda: all(self.node_ready(n) for n in self.nodes), timeout_s)

    def node_overcommit(self, node: str | None = None) -> str:
        """A node over-committed: a pod bound to it whose limits exceed the node's allocatable."""
        name = node or self.nodes[0]
        pod: JSON = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"overcommit-{name[-6:]}", "namespace": layout.FAULTS_NAMESPACE,
                         "labels": {"testbed.aksdns.dev/fault": "overcommit"}},
            "spec": {"nodeName": name, "containers": [{
                "name": "hog", "image": "mcr.microsoft.com/azurelinux/base/core:3.0",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "8", "memory": "32Gi"}},
            }]},
        }
        apply_object(self.kube, pod)
        return name

    def node_overcommit_reset(self) -> None:
        pods = self.kube.get(f"/api/v1/namespaces/{layout.FAULTS_NAMESPACE}/pods",
                             labelSelector="testbed.aksdns.dev/fault=overcommit")
        for pod in pods["items"]:
            self.kube.delete(f"/api/v1/namespaces/{layout.FAULTS_NAMESPACE}/pods/{pod['metadata']['name']}")

    # ---- Service and RBAC knobs ------------------------------------------------------------------
    def service_without_endpoints(self, name: str = "orphan") -> tuple[str, str]:
        """A Service whose selector matches no pod (so it has no endpoints)."""
        apply_object(self.kube, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": layout.FAULTS_NAMESPACE,
                         "labels": {"testbed.aksdns.dev/fault": "orphan"}},
            "spec": {"selector": {"app": "matches-nothing"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        })
        return layout.FAULTS_NAMESPACE, name

    def service_without_endpoints_reset(self) -> None:
        svcs = self.kube.get(f"/api/v1/namespaces/{layout.FAULTS_NAMESPACE}/services",
                             labelSelector="testbed.aksdns.dev/fault=orphan")
        for svc in svcs["items"]:
            self.kube.delete(f"/api/v1/namespaces/{layout.FAULTS_NAMESPACE}/services/{svc['metadata']['name']}")

    def worker_deny(self) -> None:
        """The worker's ServiceAccount loses its ClusterRoleBinding: every call answers 403."""
        self.kube.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{manifests.WORKER_BINDING}")

    def worker_allow(self) -> None:
        apply_object(self.kube, manifests.worker_binding())

    # ---- ephemeral containers and DNS clients (testbed/containerexec.py, testbed/traffic.py) ------
    def ephemeral_refuse(self) -> None:
        """Ephemeral containers refused, as a cluster policy would (a ValidatingAdmissionPolicy)."""
        for obj in containerexec.refuse_policy():
            apply_object(self.kube, obj)
        # The API server compiles a new policy within a second or so; wait until it bites.
        procs.wait_for("the ephemeral-container policy to be enforced", self._ephemeral_refused, 20.0, 0.25)

    def _ephemeral_refused(self) -> bool:
        from testbed import traffic

        return traffic.ephemeral_refused(self.kube)

    def ephemeral_refuse_reset(self) -> None:
        api = "/apis/admissionregistration.k8s.io/v1"
        self.kube.delete(f"{api}/validatingadmissionpolicybindings/{containerexec.REFUSE_POLICY}")
        self.kube.delete(f"{api}/validatingadmissionpolicies/{containerexec.REFUSE_POLICY}")

    def dns_client(self, name: str = "dns-client", namespace: str = "default", node: str | None = None) -> Any:
        """A really-run client pod (dnsPolicy ClusterFirst) that sends DNS queries on demand."""
        from testbed import traffic

        return traffic.ClientPod.create(self, name, namespace, node or self.nodes[0])

    def reset_faults(self) -> None:
        """Undo every knob; tests that turn one call this (or its own reset) in a finally."""
        self.ephemeral_refuse_reset()
        from testbed import faults_ipam, faults_service  # knobs kept in modules of their own

        self.upstream_reset()
        self.hot_pod_reset()
        self.localdns_off()
        self.metrics_server_reset()
        self.coredns_custom_reset()
        faults_ipam.reset(self)
        faults_service.reset(self)
        self.node_overcommit_reset()
        self.service_without_endpoints_reset()
        self.worker_allow()
        self.apiserver_faults.reset()
        self.node_ready_reset()
        self.coredns_reset()


def status(run_dir: Path | None = None) -> dict[str, Any]:
    run_dir = run_dir or paths.run_dir()
    state = State.load(run_dir)
    if state is None:
        return {"running": False}
    alive = {name: procs.alive(state.pids, name) for name in STOP_ORDER}
    out: dict[str, Any] = {"running": all(alive.values()), "processes": alive}
    try:
        if alive["kube-apiserver"]:
            out.update(Testbed(state).describe())
    except (ApiError, OSError) as exc:
        out["error"] = str(exc)
    return out
