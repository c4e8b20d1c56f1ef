"""What `ipam` gathered, as plain data: the input of the per-node accounts and the rules.

JSON round-trippable (``to_dict`` / ``from_dict``) so a run can be recorded
(tests/unit/data/ipam/*.json), attached to the thread and read back. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.evidence.ipam import NodeNetworkConfig, NodeRange, PodIp, SandboxEvent, StoreReading
from workers.evidence.plain import from_plain, to_plain


@dataclass(frozen=True)
class IpamEvidence:
    """Everything one `ipam` run saw."""

    cluster: str
    node_filter: str = ""  # --node
    nodes: tuple[NodeRange, ...] = ()
    pods: tuple[PodIp, ...] = ()
    stores: tuple[StoreReading, ...] = ()  # one per node probed (nodes without a NodeNetworkConfig)
    nncs: tuple[NodeNetworkConfig, ...] = ()
    nnc_crd: bool = False  # the NodeNetworkConfig CRD is served: Azure CNI with dynamic IP allocation
    events: tuple[SandboxEvent, ...] = ()
    notes: tuple[str, ...] = ()  # partial views: a 403 on one read, probe pods refused, ...
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IpamEvidence:
        return from_plain(cls, data)
