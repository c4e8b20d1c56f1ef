"""Typed view of one analysis: what the compiled core measured over the captures.

Vocabulary (the troubleshooting guide's): a *transaction* is a query and its response,
matched as Wireshark matches them; an *unanswered query* is a query Wireshark's
two-pass filter ``(dns.flags.response == 0) && ! dns.response_in`` shows (queries never
answered plus every re-sent query); a *response time* is the time from the original
query to its first response (``dns.time``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TxRecord:
    """One query (unanswered list) or response (slow list)."""

    time_ns: int
    client: str
    server: str
    transport: str
    id: int
    qtype: str
    qname: str
    rcode: str | None = None
    response_time_ms: float | None = None
    retransmissions: int = 0

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TxRecord:
        # The core writes exactly these keys with these JSON types: keyword construction is
        # half the cost of converting each field, and an analysis builds thousands of these.
        return cls(**d)


@dataclass(frozen=True)
class Peer:
    """A DNS server or client seen in the captures, with its outcomes."""

    address: str
    queries: int
    responses: int
    noerror: int
    nxdomain: int
    servfail: int
    refused: int
    other_errors: int
    unanswered: int
    slow: int
    timed: int
    rt_sum_ms: float
    rt_max_ms: float

    @property
    def rt_avg_ms(self) -> float:
        return self.rt_sum_ms / self.timed if self.timed else 0.0

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Peer:
        return cls(**d)  # the core's keys and types, as for TxRecord


@dataclass(frozen=True)
class Second:
    """One second of the per-second timeline (epoch seconds)."""

    second: int
    queries: int
    responses: int
    errors: int
    unanswered: int
    slow: int
    servfail: int = 0


@dataclass(frozen=True)
class ServerTimeline:
    """The per-second timeline of one server (the first few servers seen get one)."""

    address: str
    seconds: tuple[Second, ...]


@dataclass(frozen=True)
class AnswerDiff:
    """A name whose UDP answer (TC clear) differs from its TCP answer."""

    time_ns: int
    qname: str
    qtype: str
    server: str
    udp_answers: int
    udp_bytes: int
    tcp_answers: int
    tcp_bytes: int


@dataclass(frozen=True)
class SignatureData:
    """What the compiled pass saw of the failure signatures (see ``signatures.py``)."""

    race_events: int = 0
    race: tuple[TxRecord, ...] = ()
    udp_large_no_tc: int = 0
    udp_large: tuple[TxRecord, ...] = ()
    udp_tcp_differ_events: int = 0
    udp_tcp_differ: tuple[AnswerDiff, ...] = ()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SignatureData:
        return cls(
            race_events=int(d["race_events"]),
            race=tuple(TxRecord.from_json(r) for r in d["race"]),
            udp_large_no_tc=int(d["udp_large_no_tc"]),
            udp_large=tuple(TxRecord.from_json(r) for r in d["udp_large"]),
            udp_tcp_differ_events=int(d["udp_tcp_differ_events"]),
            udp_tcp_differ=tuple(AnswerDiff(**a) for a in d["udp_tcp_differ"]),
        )


@dataclass(frozen=True)
class Agg:
    """Count, average, min and max of a bucket (the guide table's rows)."""

    label: str
    count: int
    average: float
    min: float
    max: float

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Agg:
        return cls(str(d["label"]), int(d["count"]), float(d["average"]), float(d["min"]), float(d["max"]))


@dataclass(frozen=True)
class Latency:
    """Response times of answered transactions (ms); percentiles within 0.2 %."""

    count: int
    average_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    histogram: tuple[tuple[float, float, int], ...]


@dataclass(frozen=True)
class TreeRow:
    """One row of tshark's ``dns,tree`` output, as printed."""

    depth: int
    name: str
    count: int
    average: str
    min: str
    max: str
    rate_ms: str
    percent: str
    burst_rate: str
    burst_start: str


@dataclass(frozen=True)
class FailingName:
    name: str
    rcode: str
    count: int


# Followed lookups the model keeps (the JSON payload lists them; nothing else does): the core
# lists the first 100 too (HOPS_LISTED in native/src/analyzer.rs); 1,000 were 2,000 records
# built for 100 shown, and 40 % of the core's JSON.
HOPS_KEPT = 100


@dataclass(frozen=True)
class Hop:
    """One lookup followed from the client to CoreDNS to its upstream."""

    client_query: TxRecord
    upstream_query: TxRecord
    before_upstream_ms: float
    upstream_ms: float | None
    after_upstream_ms: float | None
    client_ms: float | None


@dataclass(frozen=True)
class GuideTable:
    """The figures behind the guide's table: its layout, each row computed by a stated
    Wireshark counting rule (``guide_table.py`` documents every row)."""

    rcodes: tuple[tuple[str, int], ...]
    query_types: tuple[tuple[str, int], ...]
    response_types: tuple[tuple[str, int], ...]
    answer_rrs: Agg
    answer_types: tuple[tuple[str, int], ...]
    ttl_by_type: tuple[Agg, ...]
    response_time_buckets: tuple[Agg, ...]
    unsolicited: int
    retransmissions: int
    request_not_found: int
    payload_size_buckets: tuple[Agg, ...]


def _pairs(v: Any) -> tuple[tuple[str, int], ...]:
    return tuple((str(a), int(b)) for a, b in v)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one pass over the captures measured."""

    files: tuple[tuple[str, int], ...]
    warnings: tuple[str, ...]
    frames: int
    dns_messages: int
    queries: int
    responses: int
    malformed: int
    ignored: dict[str, int]
    first_time_ns: int | None
    last_time_ns: int | None
    tshark_tree: str
    tree_rows: tuple[TreeRow, ...]
    transactions: int
    answered_transactions: int
    unanswered_queries: int
    unanswered_transactions: int
    retransmitted_queries: int
    retransmitted_responses: int
    unsolicited_responses: int
    slow_threshold_s: float
    slow_responses: int
    response_rcodes: tuple[tuple[str, int], ...]
    latency: Latency
    # The first entries the report shows (analysis.SHOWN); tx_csv has every kept record.
    unanswered: tuple[TxRecord, ...]
    slow: tuple[TxRecord, ...]
    servers: tuple[Peer, ...]
    clients: tuple[Peer, ...]  # also the first analysis.SHOWN (by queries)
    failing_names: tuple[FailingName, ...]
    failing_names_truncated: bool
    aaaa_pairs: int
    aaaa_pair_members_lost: int
    timeline: tuple[Second, ...]
    guide: GuideTable
    hops: tuple[Hop, ...]  # the first HOPS_KEPT of hop_count
    hop_count: int
    # dns_qr's "Unanswered" (Wireshark 4.4): queries not re-sent, less one per answered response.
    qr_unanswered: int = 0
    server_timelines: tuple[ServerTimeline, ...] = ()
    signatures: SignatureData = field(default_factory=SignatureData)
    # `-z dns,tree -z dns_qr,tree` of Wireshark 4.4, when it was asked for.
    tshark_tree_44: str | None = None
    # The CSV rows of every kept unanswered query and slow response (up to analysis.LIST_LIMIT
    # each), written by the core: `--format csv` and the report's CSV attachment.
    tx_csv: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        if self.first_time_ns is None or self.last_time_ns is None:
            return 0.0
        return max(0.0, (self.last_time_ns - self.first_time_ns) / 1e9)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AnalysisResult:
        lat = d["latency"]
        g = d["guide"]
        return cls(
            files=tuple((str(f["path"]), int(f["packets"])) for f in d["files"]),
            warnings=tuple(str(w) for w in d["warnings"]),
            frames=int(d["frames"]),
            dns_messages=int(d["dns_messages"]),
            queries=int(d["queries"]),
            responses=int(d["responses"]),
            malformed=int(d["malformed"]),
            ignored={str(k): int(v) for k, v in d["ignored"].items()},
            first_time_ns=d.get("first_time_ns"),
            last_time_ns=d.get("last_time_ns"),
            tshark_tree=str(d["tshark_tree"]),
            tree_rows=tuple(TreeRow(**r) for r in d["tree_rows"]),
            transactions=int(d["transactions"]),
            answered_transactions=int(d["answered_transactions"]),
            unanswered_queries=int(d["unanswered_queries"]),
            unanswered_transactions=int(d["unanswered_transactions"]),
            retransmitted_queries=int(d["retransmitted_queries"]),
            retransmitted_responses=int(d["retransmitted_responses"]),
            unsolicited_responses=int(d["unsolicited_responses"]),
            slow_threshold_s=float(d["slow_threshold_s"]),
            slow_responses=int(d["slow_responses"]),
            response_rcodes=_pairs(d["response_rcodes"]),
            latency=Latency(
                count=int(lat["count"]),
                average_ms=float(lat["average_ms"]),
                min_ms=float(lat["min_ms"]),
                max_ms=float(lat["max_ms"]),
                p50_ms=float(lat["p50_ms"]),
                p90_ms=float(lat["p90_ms"]),
                p99_ms=float(lat["p99_ms"]),
                histogram=tuple((float(a), float(b), int(c)) for a, b, c in lat["histogram"]),
            ),
            unanswered=tuple(TxRecord.from_json(r) for r in d["unanswered"]),
            slow=tuple(TxRecord.from_json(r) for r in d["slow"]),
            servers=tuple(Peer.from_json(p) for p in d["servers"]),
            clients=tuple(Peer.from_json(p) for p in d["clients"]),
            failing_names=tuple(
                FailingName(str(f["name"]), str(f["rcode"]), int(f["count"])) for f in d["failing_names"]
            ),
            failing_names_truncated=bool(d["failing_names_truncated"]),
            aaaa_pairs=int(d["aaaa_pairs"]),
            aaaa_pair_members_lost=int(d["aaaa_pair_members_lost"]),
            timeline=tuple(Second(**s) for s in d["timeline"]),
            guide=GuideTable(
                rcodes=_pairs(g["rcodes"]),
                query_types=_pairs(g["query_types"]),
                response_types=_pairs(g["response_types"]),
                answer_rrs=Agg.from_json(g["answer_rrs"]),
                answer_types=_pairs(g["answer_types"]),
                ttl_by_type=tuple(Agg.from_json(a) for a in g["ttl_by_type"]),
                response_time_buckets=tuple(Agg.from_json(a) for a in g["response_time_buckets"]),
                unsolicited=int(g["unsolicited"]),
                retransmissions=int(g["retransmissions"]),
                request_not_found=int(g["request_not_found"]),
                payload_size_buckets=tuple(Agg.from_json(a) for a in g["payload_size_buckets"]),
            ),
            hops=tuple(
                Hop(
                    client_query=TxRecord.from_json(h["client_query"]),
                    upstream_query=TxRecord.from_json(h["upstream_query"]),
                    before_upstream_ms=float(h["before_upstream_ms"]),
                    upstream_ms=None if h["upstream_ms"] is None else float(h["upstream_ms"]),
                    after_upstream_ms=None if h["after_upstream_ms"] is None else float(h["after_upstream_ms"]),
                    client_ms=None if h["client_ms"] is None else float(h["client_ms"]),
                )
                for h in d["hops"][:HOPS_KEPT]
            ),
            hop_count=int(d["hop_count"]),
            qr_unanswered=int(d["qr_unanswered"]),
            server_timelines=tuple(
                ServerTimeline(str(t["address"]), tuple(Second(**s) for s in t["seconds"]))
                for t in d["server_timelines"]
            ),
            signatures=SignatureData.from_json(d["signatures"]),
            tshark_tree_44=None if d.get("tshark_tree_44") is None else str(d["tshark_tree_44"]),
            tx_csv=str(d.get("tx_csv", "")),
        )
