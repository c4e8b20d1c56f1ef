"""What `check` gathered, as plain data: the input of the facts table and the rules.

Everything here is JSON round-trippable (``to_dict`` / ``from_dict``) so a run can be
recorded (tests/unit/data/check/*.json), attached to the thread, and compared with the
next run (the Re-run button).  No I/O, no kubernetes types: ``workers.probes.kube`` and
``workers.jobs.check`` translate into these classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workers.evidence.cluster import CorednsPod, CustomDns, Forwarder, NodeInfo, ServiceInfo, is_cluster_name
from workers.evidence.health import NodeHealth, PodHealth, from_plain, plain
from workers.evidence.layers import Layer, NodeProbe, ProbeRecord


@dataclass(frozen=True)
class SearchWalk:
    """A pod-style lookup of one name: the names tried in order and what each gave."""

    name: str
    server: str
    search: tuple[str, ...]
    ndots: int
    candidates: tuple[str, ...]
    statuses: tuple[str, ...]  # status of the A query of each candidate
    queries: int  # queries one lookup costs (A and AAAA for each candidate tried)
    answered_by: str = ""  # the candidate that answered NOERROR ("" when none)
    latency_ms: float = 0.0  # sum of the A latencies of the candidates tried (a stub asks in turn)
    synthesized: bool = False  # the search list was built pod-style, not read from a file


@dataclass
class CheckEvidence:
    """Everything one `check` run saw."""

    cluster: str
    names: tuple[str, ...]  # names probed, internal one first
    azure_dns: str = "168.63.129.16"
    probe_timeout_s: float = 7.0
    repeat: int = 1
    coredns_pods: tuple[CorednsPod, ...] = ()
    service: ServiceInfo | None = None
    nodes: tuple[NodeInfo, ...] = ()
    custom: CustomDns = field(default_factory=CustomDns)
    node_probes: tuple[NodeProbe, ...] = ()
    probes: tuple[ProbeRecord, ...] = ()
    walks: tuple[SearchWalk, ...] = ()
    # Queries of the search-list walks: attached for the record, kept out of the tallies
    # because their NXDOMAINs are the expected cost of the search list, not failures.
    search_probes: tuple[ProbeRecord, ...] = ()
    skipped_nodes: tuple[str, ...] = ()  # nodes not probed (NotReady, outside the sample)
    notes: tuple[str, ...] = ()  # partial failures worth saying (403 creating pods, ...)
    worker_search: tuple[str, ...] = ()
    worker_ndots: int = 1
    elapsed_s: float = 0.0
    # The performance facts, read as `health` reads them (restart reasons, limits, `kubectl top`,
    # Allocated resources); empty in recordings made before check read them.
    pod_health: tuple[PodHealth, ...] = ()
    node_health: tuple[NodeHealth, ...] = ()
    metrics_available: bool | None = None  # None: not read
    metrics_note: str = ""

    # ------------------------------------------------------------------ selections

    def records(
        self,
        layer: Layer | Iterable[Layer] | None = None,
        *,
        names: Iterable[str] | None = None,
        rdtype: str | None = None,
        target: str | None = None,
    ) -> list[ProbeRecord]:
        """Probe records filtered by layer(s), names, type and target."""
        layers = {layer} if isinstance(layer, Layer) else (set(layer) if layer is not None else None)
        wanted = set(names) if names is not None else None
        return [
            r
            for r in self.probes
            if (layers is None or r.layer in layers)
            and (wanted is None or r.name in wanted)
            and (rdtype is None or r.rdtype == rdtype)
            and (target is None or r.target == target)
        ]

    @property
    def internal_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if is_cluster_name(n))

    @property
    def external_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if not is_cluster_name(n))

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = plain(dataclasses.asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckEvidence:
        """Inverse of :meth:`to_dict` (recorded fixtures, the previous run of a Re-run)."""
        d = dict(data)
        service = d.get("service")
        custom = dict(d.get("custom") or {})
        custom["forwarders"] = tuple(
            Forwarder(f["key"], f["zone"], tuple(f["servers"])) for f in custom.get("forwarders", ())
        )
        custom["keys"] = tuple(custom.get("keys", ()))
        custom["overrides"] = tuple(custom.get("overrides", ()))
        return cls(
            cluster=d["cluster"],
            names=tuple(d["names"]),
            azure_dns=d.get("azure_dns", "168.63.129.16"),
            probe_timeout_s=float(d.get("probe_timeout_s", 7.0)),
            repeat=int(d.get("repeat", 1)),
            coredns_pods=tuple(CorednsPod(**p) for p in d.get("coredns_pods", ())),
            service=(
                ServiceInfo(
                    **{**service, "endpoint_ips": tuple(service.get("endpoint_ips", ()))}
                )
                if service
                else None
            ),
            nodes=tuple(NodeInfo(**{**n, "pressure": tuple(n.get("pressure", ()))}) for n in d.get("nodes", ())),
            custom=CustomDns(**custom),
            node_probes=tuple(
                NodeProbe(
                    **{**p, "nameservers": tuple(p.get("nameservers", ())), "search": tuple(p.get("search", ()))}
                )
                for p in d.get("node_probes", ())
            ),
            probes=tuple(
                ProbeRecord(**{**r, "layer": Layer(r["layer"]), "answers": tuple(r.get("answers", ()))})
                for r in d.get("probes", ())
            ),
            search_probes=tuple(
                ProbeRecord(**{**r, "layer": Layer(r["layer"]), "answers": tuple(r.get("answers", ()))})
                for r in d.get("search_probes", ())
            ),
            walks=tuple(
                SearchWalk(
                    **{
                        **w,
                        "search": tuple(w["search"]),
                        "candidates": tuple(w["candidates"]),
                        "statuses": tuple(w["statuses"]),
                    }
                )
                for w in d.get("walks", ())
            ),
            skipped_nodes=tuple(d.get("skipped_nodes", ())),
            notes=tuple(d.get("notes", ())),
            worker_search=tuple(d.get("worker_search", ())),
            worker_ndots=int(d.get("worker_ndots", 1)),
            elapsed_s=float(d.get("elapsed_s", 0.0)),
            pod_health=from_plain(tuple[PodHealth, ...], d.get("pod_health", ())),
            node_health=from_plain(tuple[NodeHealth, ...], d.get("node_health", ())),
            metrics_available=d.get("metrics_available"),
            metrics_note=str(d.get("metrics_note", "")),
        )

