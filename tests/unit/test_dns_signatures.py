"""Each failure signature on a capture built to show it, and on one built not to."""

from __future__ import annotations

from pathlib import Path

from workers.analysis.traffic import signatures
from workers.analysis.traffic.analysis import analyze_files
from workers.analysis.traffic.report import build_report
from workers.pcap import synth as S
from workers.report import Status

T0 = 1_711_990_000_000_000_000
MS = 1_000_000
S_ = 1_000_000_000
CLIENT, SERVER = S.Endpoint("10.0.0.5", 40000), S.Endpoint("10.0.0.10", 53)


def _write(tmp_path: Path, packets: list[S.Packet], name: str = "cap.pcap") -> Path:
    path = tmp_path / name
    packets.sort(key=lambda p: p.ts_ns)
    with path.open("wb") as f:
        S.write_pcap(f, packets)
    return path


def _q(t: int, ident: int, name: str, qtype: int = S.TYPE_A, c: S.Endpoint = CLIENT,
       s: S.Endpoint = SERVER) -> S.Packet:
    return S.udp_packet(t, c, s, S.dns_message(ident, name, qtype))


def _r(t: int, ident: int, name: str, qtype: int = S.TYPE_A, c: S.Endpoint = CLIENT, s: S.Endpoint = SERVER,
       **kw: object) -> S.Packet:
    return S.udp_packet(t, s, c, S.dns_message(ident, name, qtype, response=True, **kw))  # type: ignore[arg-type]


def _pair(t: int, lost_a: bool, resend_after: int | None) -> list[S.Packet]:
    name = "db.contoso.com"
    packets = [_q(t, 1, name), _q(t + 50_000, 2, name, S.TYPE_AAAA), _r(t + MS, 2, name, S.TYPE_AAAA)]
    if not lost_a:
        packets.append(_r(t + MS, 1, name, answers=[S.a_record(name, "10.1.0.1")]))
    if resend_after is not None:
        packets += [_q(t + resend_after, 1, name), _r(t + resend_after + MS, 1, name)]
    return packets


def test_conntrack_race_shows_a_lost_pair_member_resent_5s_later(tmp_path: Path) -> None:
    result = analyze_files([_write(tmp_path, _pair(T0, lost_a=True, resend_after=5 * S_))])
    sig = signatures.conntrack_race(result)
    assert sig.count == 1
    (row,) = sig.evidence
    assert (row.client, row.server, row.qtype, row.name) == ("10.0.0.5:40000", "10.0.0.10:53", "A", "db.contoso.com")
    assert "re-sent after 5.00 s" in row.detail
    csv_text = signatures.render_csv(signatures.all_signatures(result))
    assert "conntrack-race" in csv_text and "db.contoso.com" in csv_text


def test_conntrack_race_not_shown_by_answered_pairs_or_a_lone_loss(tmp_path: Path) -> None:
    answered = _pair(T0, lost_a=False, resend_after=None)
    # A lone A query (no AAAA from that socket) lost and re-sent 5 s later: a loss, not the race.
    lone = [_q(T0 + 60 * S_, 9, "lone.contoso.com", c=S.Endpoint("10.0.0.6", 41000)),
            _q(T0 + 65 * S_, 9, "lone.contoso.com", c=S.Endpoint("10.0.0.6", 41000))]
    result = analyze_files([_write(tmp_path, answered + lone)])
    assert signatures.conntrack_race(result).count == 0
    assert result.unanswered_transactions == 2  # the lone query and its re-send: both unanswered


def _big_answer(name: str, n: int) -> list[S.Record]:
    return [S.Record(name, S.TYPE_TXT, 60, bytes([120]) + b"x" * 120) for _ in range(n)]


def test_truncation_shows_large_udp_without_tc_and_udp_tcp_differences(tmp_path: Path) -> None:
    big, cut = "big.contoso.com", "cut.contoso.com"
    packets = [_q(T0, 1, big, S.TYPE_TXT),
               _r(T0 + MS, 1, big, S.TYPE_TXT, answers=_big_answer(big, 5)),  # ~650 B, TC clear
               _q(T0 + 2 * MS, 2, cut),
               _r(T0 + 3 * MS, 2, cut, answers=[S.a_record(cut, "10.1.0.1")])]
    tcp_client = S.Endpoint("10.0.0.5", 40001)
    flow = S.TcpFlow(tcp_client, SERVER)
    packets += flow.handshake(T0 + 4 * MS)
    packets.append(flow.send(T0 + 5 * MS, True, [S.dns_message(3, cut)]))
    packets.append(flow.send(T0 + 6 * MS, False, [S.dns_message(3, cut, response=True, answers=[
        S.a_record(cut, f"10.1.0.{i}") for i in range(1, 4)])]))
    sig = signatures.truncation(analyze_files([_write(tmp_path, packets)]))
    assert sig.count == 2
    details = [e.detail for e in sig.evidence]
    assert any("≥ 512 bytes" in d for d in details)
    assert any(e.name == cut and "UDP 1 records" in e.detail and "TCP 3 records" in e.detail for e in sig.evidence)


def test_truncation_not_shown_when_tc_is_set_or_answers_only_rotate(tmp_path: Path) -> None:
    big, rot = "big.contoso.com", "rot.contoso.com"
    truncated = bytearray(S.dns_message(1, big, S.TYPE_TXT, response=True, answers=_big_answer(big, 5)))
    truncated[2] |= 0x02  # TC: the client retries over TCP, as it should
    packets = [_q(T0, 1, big, S.TYPE_TXT), S.udp_packet(T0 + MS, SERVER, CLIENT, bytes(truncated)),
               _q(T0 + 2 * MS, 2, rot), _r(T0 + 3 * MS, 2, rot, answers=[S.a_record(rot, "10.1.0.1")])]
    flow = S.TcpFlow(S.Endpoint("10.0.0.5", 40001), SERVER)
    packets += flow.handshake(T0 + 4 * MS)
    packets.append(flow.send(T0 + 5 * MS, True, [S.dns_message(1, big, S.TYPE_TXT), S.dns_message(3, rot)]))
    packets.append(flow.send(T0 + 6 * MS, False, [
        S.dns_message(1, big, S.TYPE_TXT, response=True, answers=_big_answer(big, 5)),
        S.dns_message(3, rot, response=True, answers=[S.a_record(rot, "10.1.0.2")])]))  # another address, same count
    assert signatures.truncation(analyze_files([_write(tmp_path, packets)])).count == 0


def test_dead_server_shows_an_address_that_never_answers(tmp_path: Path) -> None:
    dead = S.Endpoint("10.0.0.11", 53)
    packets = [_q(T0 + i * MS, i, "a.contoso.com") for i in range(5)]
    packets += [_r(T0 + i * MS + 500, i, "a.contoso.com") for i in range(5)]
    packets += [_q(T0 + i * MS + 100, 100 + i, "a.contoso.com", s=dead) for i in range(3)]
    sig = signatures.dead_servers(analyze_files([_write(tmp_path, packets)]))
    assert sig.count == 3
    assert [e.server for e in sig.evidence] == ["10.0.0.11"]


def test_dead_server_not_shown_when_every_server_answers(tmp_path: Path) -> None:
    other = S.Endpoint("10.0.0.11", 53)
    packets = []
    for i, server in enumerate((SERVER, other, SERVER, other)):
        packets += [_q(T0 + i * MS, i, "a.contoso.com", s=server), _r(T0 + i * MS + 500, i, "a.contoso.com", s=server)]
    packets.append(_q(T0 + 9 * MS, 50, "lost.contoso.com", s=other))  # one loss is not a dead server
    assert signatures.dead_servers(analyze_files([_write(tmp_path, packets)])).count == 0


def test_aks_self_nxdomain_shows_reddog_and_long_cloudapp_names(tmp_path: Path) -> None:
    names = ("db.contoso.com.reddog.microsoft.com",
             "db.contoso.com.iosffyoulcwehgo1g3egb3m4oc.jx.internal.cloudapp.net")
    packets = []
    for i, name in enumerate(names):
        packets += [_q(T0 + i * MS, i, name), _r(T0 + i * MS + 500, i, name, rcode=S.RCODE_NXDOMAIN)]
    result = analyze_files([_write(tmp_path, packets)])
    sig = signatures.aks_self_nxdomain(result)
    assert sig.count == 2
    assert sorted(e.name for e in sig.evidence) == sorted(names)
    assert all("asked for db.contoso.com" in e.detail for e in sig.evidence)
    report = build_report(result, title="t", attachments=False)
    assert any(getattr(s, "title", "") == "Evidence: Names AKS answers NXDOMAIN itself" for s in report.sections)


def test_aks_self_nxdomain_not_shown_for_a_vm_name_or_other_nxdomain(tmp_path: Path) -> None:
    names = ("vm1.iosffyoulcwehgo1g3egb3m4oc.jx.internal.cloudapp.net", "nosuch.contoso.com")
    packets = []
    for i, name in enumerate(names):
        packets += [_q(T0 + i * MS, i, name), _r(T0 + i * MS + 500, i, name, rcode=S.RCODE_NXDOMAIN)]
    result = analyze_files([_write(tmp_path, packets)])
    assert signatures.aks_self_nxdomain(result).count == 0
    report = build_report(result, title="t", attachments=False)
    lines = [s for s in report.sections if getattr(s, "label", "") == "Names AKS answers NXDOMAIN itself"]
    assert [(s.status, s.detail) for s in lines] == [(Status.OK, "not seen")]
