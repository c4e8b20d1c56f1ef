"""Per node: allocated addresses against running pods, the guide's two counts, and what explains
the difference. Pure: evidence in, accounts, status lines, the facts table and CSV rows out.

kubenet: "allocated" is the number of address files in the node's host-local store; each file
not matching a running pod's IP is *stale*: held by a pod that finished but is not yet collected
(churn), recently freed and still in flight, or matching no pod for a long time (leaked).
Azure CNI (dynamic IP allocation): "allocated" is the NodeNetworkConfig's assigned count; CNS keeps
up to ``batch × releaseThreshold%`` spare addresses on purpose, so only a surplus above that counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from workers.analysis.figures import age_text, plural
from workers.analysis.ipam_evidence import IpamEvidence
from workers.evidence.ipam import (
    NO_AVAILABLE_ADDRESSES,
    NOT_ENOUGH_IPS,
    NodeNetworkConfig,
    PodIp,
    SandboxEvent,
    StoreReading,
)
from workers.report import Status, StatusLine, Table

AZURE_CNI = "Azure CNI (dynamic IP allocation)"
KUBENET = "kubenet"
UNKNOWN = "unknown"
STALE_AGE_S = 600.0  # a store entry this old that matches no pod is not a deletion in flight
STUCK_S = 120.0  # ContainerCreating this long, with no event saying why, is worth a line
DEFAULT_BATCH = 16  # AKS's default when the NodeNetworkConfig does not say
DEFAULT_RELEASE_PCT = 150
ADDRESS_FAILURES = frozenset({NO_AVAILABLE_ADDRESSES, NOT_ENOUGH_IPS})


@dataclass(frozen=True)
class NodeAccount:
    """One node's addresses: what is allocated, what runs, and where the difference sits."""

    node: str
    plugin: str
    allocated: int | None  # None: not measured on this node
    running: int
    terminated: int  # pods that finished (or are being deleted) but are still in the API
    capacity: int = 0  # kubenet: the podCIDR's usable addresses; Azure CNI: maxIPCount
    pod_cidr: str = ""
    store: str = ""  # kubenet: which store directory was read
    stale_held: int = 0  # stale entries whose address a terminated pod still shows
    stale_recent: int = 0  # stale entries younger than STALE_AGE_S, matching no pod
    stale_old: int = 0  # stale entries older than STALE_AGE_S, matching no pod
    oldest_stale_s: float = 0.0
    stale_sample: tuple[str, ...] = ()  # a few stale addresses with their sandboxes
    nnc: NodeNetworkConfig | None = None
    events: tuple[SandboxEvent, ...] = ()
    creating: tuple[PodIp, ...] = ()
    unmeasured: str = ""  # why allocated is None

    @property
    def surplus(self) -> int:
        """Allocated beyond the running pods (negative: the store holds fewer than run)."""
        return (self.allocated or 0) - self.running

    @property
    def spare_allowed(self) -> int:
        """Azure CNI: spare addresses CNS keeps on purpose before it releases any."""
        if self.nnc is None:
            return 0
        batch = self.nnc.batch or DEFAULT_BATCH
        pct = self.nnc.release_threshold_pct or DEFAULT_RELEASE_PCT
        return batch * pct // 100

    @property
    def full(self) -> bool:
        """No address left to hand out: the node's range (kubenet) or its maxIPCount (Azure CNI)."""
        if self.allocated is None or not self.capacity:
            return False
        return self.allocated >= self.capacity - (1 if self.plugin == KUBENET else 0)

    @property
    def address_failures(self) -> tuple[SandboxEvent, ...]:
        return tuple(e for e in self.events if e.kind in ADDRESS_FAILURES)

    @property
    def pods_failing(self) -> bool:
        """Pods on this node cannot get an address now."""
        stuck = any(p.waiting_s is not None and p.waiting_s >= STUCK_S for p in self.creating)
        return bool(self.address_failures) or stuck or self.full


def _stale(reading: StoreReading, pods: Sequence[PodIp]) -> tuple[int, int, int, float, tuple[str, ...]]:
    running = {p.ip for p in pods if p.running}
    terminated = {p.ip for p in pods if p.terminated and p.ip}
    held = recent = old = 0
    oldest = 0.0
    sample: list[str] = []
    for e in reading.entries:
        if e.ip in running:
            continue
        if e.ip in terminated:
            held += 1
        elif e.age_s >= STALE_AGE_S:
            old += 1
        else:
            recent += 1
        oldest = max(oldest, e.age_s)
        if len(sample) < 4:
            sample.append(f"{e.ip} ({e.container_id or 'no sandbox id'})")
    return held, recent, old, oldest, tuple(sample)


def accounts(ev: IpamEvidence) -> list[NodeAccount]:
    """One account per node, in node order."""
    stores = {s.node: s for s in ev.stores}
    nncs = {n.node: n for n in ev.nncs}
    pod_node = {(p.namespace, p.name): p.node for p in ev.pods}
    out = []
    for node in ev.nodes:
        on_node = [p for p in ev.pods if p.node == node.name]
        running = sum(p.running for p in on_node)
        terminated = sum(p.terminated for p in on_node)
        events = tuple(
            e for e in ev.events if (e.node or pod_node.get((e.namespace, e.pod), "")) == node.name
        )
        creating = tuple(p for p in on_node if p.creating)
        base = NodeAccount(node=node.name, plugin=UNKNOWN, allocated=None, running=running, terminated=terminated,
                           pod_cidr=node.pod_cidr, events=events, creating=creating)
        nnc = nncs.get(node.name)
        reading = stores.get(node.name)
        if nnc is not None:
            out.append(replace(base, plugin=AZURE_CNI, allocated=nnc.assigned, capacity=nnc.max_ips, nnc=nnc))
        elif reading is not None and reading.found:
            held, recent, old, oldest, sample = _stale(reading, on_node)
            out.append(
                replace(
                    base,
                    plugin=KUBENET,
                    allocated=len(reading.entries),
                    capacity=node.capacity,
                    store=f"/var/lib/cni/networks/{reading.network}",
                    stale_held=held,
                    stale_recent=recent,
                    stale_old=old,
                    oldest_stale_s=oldest,
                    stale_sample=sample,
                )
            )
        else:
            if reading is None:
                why = "not probed"
            elif not reading.ok:
                why = f"store not read: {reading.error}"
            else:
                seen = ", ".join(reading.networks) or "nothing"
                why = f"no kubenet store ({seen} under /var/lib/cni/networks) and no NodeNetworkConfig"
            out.append(replace(base, unmeasured=why))
    return out


def counts_text(a: NodeAccount) -> str:
    """The guide's two counts, side by side."""
    if a.allocated is None:
        return f"{plural(a.running, 'running pod')}; allocations unknown ({a.unmeasured})"
    text = f"{a.allocated} allocated, {plural(a.running, 'running pod')}"
    if a.terminated:
        text += f", {a.terminated} terminated not yet collected"
    return text


def node_status(a: NodeAccount, flagged: set[str]) -> Status:
    if a.node in flagged:
        return Status.FAIL if a.pods_failing else Status.WARN
    if a.allocated is None:
        return Status.INFO
    return Status.OK


def node_lines(ev: IpamEvidence, flagged: set[str]) -> list[StatusLine]:
    """One status line per node: plugin, the two counts, events and stuck pods."""
    lines = []
    for a in accounts(ev):
        detail = f"{a.plugin} · {counts_text(a)}"
        if a.nnc is not None:
            detail += f" · requested {a.nnc.requested}, batch {a.nnc.batch or '?'}"
            if a.nnc.subnet:
                detail += f", subnet {a.nnc.subnet} {a.nnc.subnet_cidr}".rstrip()
        elif a.capacity:
            detail += f" · range {a.pod_cidr} ({a.capacity} addresses)"
        if a.address_failures:
            detail += f" · FailedCreatePodSandBox ×{sum(e.count for e in a.address_failures)}"
        if a.creating:
            detail += f" · {plural(len(a.creating), 'pod')} in ContainerCreating"
        lines.append(StatusLine(node_status(a, flagged), a.node, detail))
    return lines


QUESTIONS = (
    "Which network plugin allocates pod addresses?",
    "Allocated addresses vs running pods (the guide's two counts)",
    "Do pods fail to get an address? (FailedCreatePodSandBox)",
    "Pods stuck in ContainerCreating",
    "Finished pods not yet garbage-collected",
)


def facts_table(ev: IpamEvidence) -> Table:
    accts = accounts(ev)
    plugins = sorted({a.plugin for a in accts})
    counts = "; ".join(f"{a.node}: {counts_text(a)}" for a in accts) or "no node"
    failures = [e for e in ev.events if e.kind in ADDRESS_FAILURES]
    if failures:
        kinds = sorted({"No available addresses" if e.kind == NO_AVAILABLE_ADDRESSES else "not enough IPs available"
                        for e in failures})
        pods = len({(e.namespace, e.pod) for e in failures})
        events = f"yes: {sum(e.count for e in failures)} events on {plural(pods, 'pod')} ({', '.join(kinds)})"
    elif ev.events:
        events = f"{len(ev.events)} FailedCreatePodSandBox events, none about addresses"
    else:
        events = "none"
    creating = [p for p in ev.pods if p.creating]
    stuck = ", ".join(f"{p.namespace}/{p.name} ({age_text(p.waiting_s)})" for p in creating[:5]) or "none"
    terminated = sum(a.terminated for a in accts)
    rows = (
        (QUESTIONS[0], ", ".join(plugins) or "unknown"),
        (QUESTIONS[1], counts),
        (QUESTIONS[2], events),
        (QUESTIONS[3], stuck + (f" and {len(creating) - 5} more" if len(creating) > 5 else "")),
        (QUESTIONS[4], str(terminated)),
    )
    return Table(title="Facts (the guide's \"Pod fails to allocate the IP address\")", columns=("Question", "Answer"),
                 rows=rows)


CSV_COLUMNS = (
    "node", "plugin", "allocated", "running", "terminated", "capacity", "stale_held_by_terminated",
    "stale_recent", "stale_old", "requested", "assigned", "batch", "subnet", "subnet_cidr", "nc_status",
    "sandbox_failures", "containercreating",
)


def csv_rows(ev: IpamEvidence) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for a in accounts(ev):
        n = a.nnc
        rows.append(
            (
                a.node, a.plugin, "" if a.allocated is None else str(a.allocated), str(a.running), str(a.terminated),
                str(a.capacity), str(a.stale_held), str(a.stale_recent), str(a.stale_old),
                str(n.requested) if n else "", str(n.assigned) if n else "", str(n.batch) if n else "",
                n.subnet if n else "", n.subnet_cidr if n else "", " ".join(n.nc_statuses) if n else "",
                str(sum(e.count for e in a.address_failures)), str(len(a.creating)),
            )
        )
    return rows
