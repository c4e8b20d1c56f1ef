"""Per hop on recorded messages: where the time went, a silent CoreDNS pod, stale destinations."""

from __future__ import annotations

from workers.analysis.capture_hops import per_hop
from workers.analysis.capture_wire import DnsMessage
from workers.evidence.capture import ClusterView, Role, Target

CLIENT = Target(Role.CLIENT, "default", "app", "n0", "10.244.0.2")
CORE_A = Target(Role.COREDNS, "kube-system", "coredns-a", "n0", "10.244.0.5")
CORE_B = Target(Role.COREDNS, "kube-system", "coredns-b", "n1", "10.244.1.5")
VIP, UPSTREAM = "10.0.0.10", "168.63.129.16"
VIEW = ClusterView((VIP,), (CORE_A.ip, CORE_B.ip), {CORE_A.ip: CORE_A.name, CORE_B.ip: CORE_B.name})
MS = 1_000_000


def msg(ts_ms: float, src: str, sport: int, dst: str, dport: int, ident: int, name: str, response: bool) -> DnsMessage:
    return DnsMessage(int(ts_ms * MS), src, sport, dst, dport, False, ident, response, 0, name, 1, False)


def one_query(t: float, port: int, ident: int, name: str, core: Target, upstream_ms: float | None,
              answered: bool = True) -> dict[str, list[DnsMessage]]:
    """What the client and the CoreDNS pod see of one query (None: CoreDNS answers from cache)."""
    c, k = CLIENT.ip, core.ip
    client = [msg(t, c, port, VIP, 53, ident, name, False)]
    at_core = [msg(t + 0.1, c, port, k, 53, ident, name, False)]
    done = t + 0.2
    if upstream_ms is not None:
        at_core.append(msg(t + 0.2, k, 41000 + port % 1000, UPSTREAM, 53, ident ^ 0x5555, name, False))
        done = t + 0.2 + upstream_ms
        if answered:
            at_core.append(msg(done, UPSTREAM, 53, k, 41000 + port % 1000, ident ^ 0x5555, name, True))
    if answered:
        at_core.append(msg(done + 0.1, k, 53, c, port, ident, name, True))
        client.append(msg(done + 0.2, VIP, 53, c, port, ident, name, True))
    return {"client": client, core.name: at_core}


def run(queries: list[dict[str, list[DnsMessage]]], targets: list[Target] = [CLIENT, CORE_A, CORE_B]):  # noqa: B006
    messages: dict[int, list[DnsMessage]] = {i: [] for i in range(len(targets))}
    for q in queries:
        for key, ms in q.items():
            index = 0 if key == "client" else next(i for i, t in enumerate(targets) if t.name == key)
            messages[index] += ms
    for ms in messages.values():
        ms.sort(key=lambda m: m.ts_ns)
    return per_hop(targets, messages, VIEW)


def test_an_upstream_delay_is_put_on_the_upstream_hop() -> None:
    v = run([one_query(i * 1000.0, 30000 + i, i, f"q{i}.example.com.", [CORE_A, CORE_B][i % 2], 400.0)
             for i in range(6)])
    assert v.slowest_hop == "upstream" and "upstream" in v.verdict
    assert all(r.upstream == UPSTREAM and 399 < (r.upstream_ms or 0) < 401 for r in v.rows)
    assert all((r.network_ms or 0) < 1 and (r.coredns_ms or 0) < 1 for r in v.rows)
    assert [p.received for p in v.pods] == [3, 3]


def test_a_cache_hit_has_no_upstream_hop_and_a_slow_coredns_is_its_own_hop() -> None:
    v = run([one_query(0.0, 30000, 1, "cached.example.com.", CORE_A, None)])
    assert v.rows[0].upstream_ms is None and v.rows[0].upstream == "" and v.hop_ms["upstream"] == []


def test_a_silent_ready_endpoint_is_named_when_queries_through_the_service_are_lost() -> None:
    answered = [one_query(i * 100.0, 30000 + i, i, f"ok{i}.", CORE_B, 1.0) for i in range(4)]
    lost = [{"client": [msg(1000.0 + i, CLIENT.ip, 31000 + i, VIP, 53, 500 + i, f"lost{i}.", False)]}
            for i in range(3)]
    v = run(answered + lost)
    assert v.lost_before_coredns == 3 and v.silent_endpoints == ["coredns-a"]
    assert "coredns-a" in v.verdict and sum(r.fate == "lost before CoreDNS" for r in v.rows) == 3


def test_without_lost_queries_a_quiet_pod_is_not_blamed() -> None:
    v = run([one_query(i * 100.0, 30000 + i, i, f"ok{i}.", CORE_B, 1.0) for i in range(4)])
    assert v.silent_endpoints == [] and v.lost_before_coredns == 0


def test_queries_to_an_address_that_is_no_endpoint_are_named() -> None:
    stale = [{"client": [msg(i * 10.0, CLIENT.ip, 32000 + i, "10.244.9.9", 53, 900 + i, f"s{i}.", False)]}
             for i in range(2)]
    view = ClusterView((VIP,), (CORE_A.ip,), {CORE_A.ip: CORE_A.name, "10.244.9.9": "coredns-old"})
    messages = {0: [m for q in stale for m in q["client"]], 1: []}
    v = per_hop([CLIENT, CORE_A], messages, view)
    assert [(s.address, s.queries, s.unanswered, s.was) for s in v.stale] == [("10.244.9.9", 2, 2, "coredns-old")]


def test_clock_skew_between_nodes_never_makes_a_negative_hop() -> None:
    q = one_query(0.0, 30000, 1, "skew.", CORE_B, 5.0)
    q[CORE_B.name] = [m.__class__(m.ts_ns + 3 * MS, *list(m.__dict__.values())[1:]) if False else
                      DnsMessage(m.ts_ns + 3 * MS, m.src, m.sport, m.dst, m.dport, m.tcp, m.id, m.response,
                                 m.rcode, m.qname, m.qtype, m.truncated) for m in q[CORE_B.name]]
    v = run([q])
    assert v.rows[0].network_ms is not None and v.rows[0].network_ms >= 0
