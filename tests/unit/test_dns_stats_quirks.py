"""Each Wireshark 4.0 quirk the `dns,tree` copy must keep, pinned with known numbers.

The integration tests compare with tshark itself; these say *why* a number is what it is
(packet-dns.c and stats_tree.c are cited in the native sources).
"""

from __future__ import annotations

import struct
from pathlib import Path

from workers.analysis.traffic.analysis import analyze_files
from workers.analysis.traffic.model import AnalysisResult, TreeRow
from workers.pcap import synth as S

T0 = 1_711_990_000_000_000_000
C = S.Endpoint("10.0.0.5", 40000)
D = S.Endpoint("10.0.0.10", 53)


def run(tmp_path: Path, packets: list[S.Packet], **kw: float) -> AnalysisResult:
    path = tmp_path / "q.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, packets, nanosecond=True)
    return analyze_files([path], **kw)


def row(result: AnalysisResult, name: str, parent: str | None = None) -> TreeRow:
    rows = list(result.tree_rows)
    start = 0
    if parent is not None:
        start = next(i for i, r in enumerate(rows) if r.name == parent)
    return next(r for r in rows[start:] if r.name == name)


def q(ts: int, ident: int, name: str = "db.contoso.com", qtype: int = S.TYPE_A) -> S.Packet:
    return S.udp_packet(ts, C, D, S.dns_message(ident, name, qtype))


def r(ts: int, ident: int, name: str = "db.contoso.com", qtype: int = S.TYPE_A, rcode: int = 0) -> S.Packet:
    return S.udp_packet(ts, D, C, S.dns_message(ident, name, qtype, response=True, rcode=rcode))


def test_response_section_counts_are_added_twice_unless_unsolicited(tmp_path: Path) -> None:
    res = run(tmp_path, [q(T0, 1), r(T0 + 10**6, 1), r(T0 + 2 * 10**6, 99)])
    # 2 responses, 1 unsolicited: 2 * 2 - 1 rows in "no. of questions".
    assert row(res, "no. of questions").count == 3
    assert row(res, "no. of unsolicited responses").count == 1


def test_queries_count_in_rcode_and_type_rows(tmp_path: Path) -> None:
    res = run(tmp_path, [q(T0, 1), r(T0 + 10**6, 1, rcode=S.RCODE_NXDOMAIN)])
    assert row(res, "No error", "rcode").count == 1  # the query
    assert row(res, "No such name", "rcode").count == 1
    assert row(res, "A (Host Address)", "Query Type").count == 2
    # The report's own rcode figures are responses only.
    assert res.response_rcodes == (("No such name", 1),)


def test_payload_size_includes_the_tcp_length_prefix(tmp_path: Path) -> None:
    msg = S.dns_message(5, "a.b")
    flow = S.TcpFlow(C, D)
    res = run(tmp_path, [*flow.handshake(T0), flow.send(T0 + 10_000, True, [msg])])
    assert row(res, "Payload size").min == str(len(msg) + 2)


def test_qname_length_and_label_levels_are_for_queries_only(tmp_path: Path) -> None:
    root = struct.pack("!HHHHHH", 8, 0x0100, 1, 0, 0, 0) + b"\x00\x00\x02\x00\x01"
    packets = [
        S.udp_packet(T0, C, D, root),  # "<Root>": 6 characters, 1 label
        q(T0 + 1, 2, "x"),  # one character: level 0, shown as "4th Level or more"
        q(T0 + 2, 3, "a.b"),
        q(T0 + 3, 4, "db.contoso.com"),
        r(T0 + 4, 4, "db.contoso.com"),
    ]
    res = run(tmp_path, packets)
    qlen = row(res, "Qname Len")
    assert (qlen.count, qlen.min, qlen.max) == (4, "1", "14")
    assert row(res, "1st Level").count == 1
    assert row(res, "2nd Level").count == 1
    assert row(res, "3rd Level").count == 1
    assert row(res, "4th Level or more").count == 1


def test_retransmission_timer_is_five_seconds_strictly(tmp_path: Path) -> None:
    res = run(tmp_path, [q(T0, 1), q(T0 + 4_999_999_999, 1), r(T0 + 5_100_000_000, 1)])
    assert res.retransmitted_queries == 1
    assert res.unanswered_queries == 1  # the re-sent query never carries dns.response_in
    assert res.unanswered_transactions == 0
    # The response is timed from the original query.
    assert row(res, "request-response time (msec)").max == "5100.000000"

    res = run(tmp_path, [q(T0, 1), q(T0 + 5_000_000_000, 1), r(T0 + 5_100_000_000, 1)])
    assert res.retransmitted_queries == 0
    assert res.unanswered_transactions == 1  # the first query
    # A re-send at >= 5 s opened a new transaction: timed from the re-send.
    assert row(res, "request-response time (msec)").max == "100.000000"


def test_duplicate_response_is_a_retransmission_not_a_time(tmp_path: Path) -> None:
    res = run(tmp_path, [q(T0, 1), r(T0 + 10**6, 1), r(T0 + 3 * 10**6, 1)])
    assert row(res, "no. of retransmissions").count == 1
    assert row(res, "request-response time (msec)").count == 1
    assert res.retransmitted_responses == 1


def test_response_times_are_single_precision(tmp_path: Path) -> None:
    res = run(tmp_path, [q(T0, 1), r(T0 + 6_294_175_800, 1, rcode=S.RCODE_SERVFAIL)])
    rrt = row(res, "request-response time (msec)")
    assert rrt.max == "6294.175781"  # the float nearest 6294.1758
    assert rrt.average == "6294.18"
    assert res.slow_responses == 1


def test_slow_threshold_is_inclusive_and_configurable(tmp_path: Path) -> None:
    packets = [q(T0, 1), r(T0 + 5_000_000_000, 1), q(T0 + 10**10, 2), r(T0 + 10**10 + 1_999_999_999, 2)]
    assert run(tmp_path, packets).slow_responses == 1
    assert run(tmp_path, packets, slow_s=2.0).slow_responses == 1
    assert run(tmp_path, packets, slow_s=1.5).slow_responses == 2


def test_children_sort_by_count_then_name_descending(tmp_path: Path) -> None:
    packets = [q(T0, 1), r(T0 + 1, 1, rcode=S.RCODE_SERVFAIL), q(T0 + 2, 2), r(T0 + 3, 2, rcode=S.RCODE_NXDOMAIN)]
    res = run(tmp_path, packets)
    names = [x.name for x in res.tree_rows]
    i = names.index("rcode")
    # 2 x No error, then the ties: "Server failure" > "No such name" byte-wise.
    assert names[i + 1: i + 4] == ["No error", "Server failure", "No such name"]
    # Top-level rows keep creation order.
    assert [x.name for x in res.tree_rows if x.depth == 0] == [
        "Total Packets", "Payload size", "Query Stats", "Response Stats", "Service Stats"]


def test_compression_loop_is_named_not_dropped(tmp_path: Path) -> None:
    loop = struct.pack("!HHHHHH", 2, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
    res = run(tmp_path, [S.udp_packet(T0, C, D, loop)])
    assert res.dns_messages == 1
    assert row(res, "Qname Len").max == str(len("<Name contains a pointer that loops>"))


def test_malformed_messages_count_nowhere_but_still_change_transactions(tmp_path: Path) -> None:
    cut_response = S.dns_message(1, "db.contoso.com", response=True, answers=[S.a_record("db.contoso.com", "1.2.3.4")])
    res = run(tmp_path, [q(T0, 1), S.udp_packet(T0 + 10**6, D, C, cut_response[:-2]), r(T0 + 2 * 10**6, 1)])
    assert res.malformed == 1
    assert res.dns_messages == 2
    # The malformed response answered the transaction: the good one is a retransmission.
    assert row(res, "no. of retransmissions").count == 1
    assert res.unanswered_transactions == 0


def test_zone_transfers_expect_several_responses(tmp_path: Path) -> None:
    axfr = 252
    packets = [q(T0, 1, "cluster.local", axfr), r(T0 + 10**6, 1, "cluster.local", axfr),
               r(T0 + 2 * 10**6, 1, "cluster.local", axfr)]
    res = run(tmp_path, packets)
    assert row(res, "no. of retransmissions").count == 0
    assert row(res, "request-response time (msec)").count == 2


def test_mdns_is_outside_the_tree_but_inside_the_unanswered_filter(tmp_path: Path) -> None:
    mdns = S.udp_packet(T0, S.Endpoint("10.0.0.5", 5353), S.Endpoint("224.0.0.251", 5353),
                        S.dns_message(0, "printer.local"))
    res = run(tmp_path, [mdns, q(T0 + 1, 1), r(T0 + 2, 1)])
    assert res.dns_messages == 2
    assert res.unanswered_queries == 1
    assert res.unanswered_transactions == 0


def test_conversation_includes_transport_and_ports(tmp_path: Path) -> None:
    other_port = S.udp_packet(T0 + 10**6, D, S.Endpoint("10.0.0.5", 40001), S.dns_message(1, "a.b", response=True))
    res = run(tmp_path, [q(T0, 1, "a.b"), other_port])
    assert res.unsolicited_responses == 1
    assert res.unanswered_transactions == 1
