"""The results store on a real redis-server: thread history, Re-run bases, the audit stream."""

from __future__ import annotations

import time

from aksdns.keys import AUDIT_STREAM, rerun_basis_key, rerun_identity, thread_history_key
from aksdns.results import MAX_OUTCOMES_PER_THREAD, AuditEvent, AuditLog, Outcome, ResultsStore
from tests.services import RedisServer


def outcome(n: int, *, verb: str = "check", thread: str = "1700000000.000100") -> Outcome:
    return Outcome(
        job_id=f"job{n}",
        verb=verb,
        command={"verb": verb, "args": {}},
        text=verb,
        cluster="eu",
        user="U1",
        channel="C1",
        thread_ts=thread,
        started_at=1000.0 + n,
        finished_at=1001.0 + n,
        status="ok",
        summary=f"run {n}",
        findings=({"rule": "all_healthy", "title": "All healthy"},),
        attachments=("a.json",),
    )


def test_history_keeps_every_outcome_in_order_with_retention(redis_server: RedisServer) -> None:
    r = redis_server.client()
    store = ResultsStore(r, retention_s=3600)
    for n in range(3):
        store.record(outcome(n, thread="t-order"), basis={"n": n})
    got = store.history("C1", "t-order")
    assert [o.summary for o in got] == ["run 0", "run 1", "run 2"]
    assert got[0] == outcome(0, thread="t-order")
    assert 3500 < r.ttl(thread_history_key("C1", "t-order")) <= 3600
    check = outcome(0).command
    assert store.previous_basis("eu", "C1", "t-order", check) == {"n": 2}
    assert r.ttl(rerun_basis_key("eu", "C1", "t-order", rerun_identity(check))) > 0
    assert store.previous_basis("eu", "C1", "t-order", {"verb": "dig", "args": {}}) is None
    assert store.previous_basis("other", "C1", "t-order", check) is None  # per cluster
    # The same command with other arguments is another command; the cluster flag is not an argument.
    assert store.previous_basis("eu", "C1", "t-order", {"verb": "check", "args": {"repeat": 9}}) is None
    with_cluster = {**check, "args": {**check["args"], "cluster": "eu"}}
    assert store.previous_basis("eu", "C1", "t-order", with_cluster) == {"n": 2}


def test_history_is_bounded_and_skips_unreadable_entries(redis_server: RedisServer) -> None:
    r = redis_server.client()
    store = ResultsStore(r)
    key = thread_history_key("C1", "t-bound")
    r.rpush(key, "{not json")
    for n in range(MAX_OUTCOMES_PER_THREAD + 5):
        store.record(outcome(n, thread="t-bound"))
    got = store.history("C1", "t-bound")
    assert len(got) == MAX_OUTCOMES_PER_THREAD
    assert got[-1].summary == f"run {MAX_OUTCOMES_PER_THREAD + 4}"


def test_a_basis_too_large_is_not_kept(redis_server: RedisServer) -> None:
    store = ResultsStore(redis_server.client())
    store.record(outcome(1, thread="t-big"), basis={"x": "y" * (3 * 1024 * 1024)})
    assert store.previous_basis("eu", "C1", "t-big", outcome(1).command) is None
    assert len(store.history("C1", "t-big")) == 1


def test_recording_with_redis_down_does_not_raise() -> None:
    import redis

    dead = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5, socket_timeout=0.5)
    ResultsStore(dead).record(outcome(1), basis={"n": 1})  # logged, not raised
    assert ResultsStore(dead).previous_basis("eu", "C1", "t", outcome(1).command) is None
    AuditLog(dead).append(AuditEvent("command", "U1", "C1", "dig", True, "read-only command"))


def test_audit_stream_filters_by_user_and_time_and_trims_past_retention(redis_server: RedisServer) -> None:
    r = redis_server.client()
    r.delete(AUDIT_STREAM)
    log = AuditLog(r, retention_s=60)
    now = time.time()
    log.append(AuditEvent("command", "U1", "C1", "dig", True, "read-only command", text="dig a.b", at=now - 30))
    log.append(AuditEvent("button", "U2", "C1", "capture", False, "needs a privileged user", at=now - 20))
    log.append(AuditEvent("command", "U1", "C1", "check", True, "read-only command", at=now - 10))
    events = log.read()
    assert [(e.kind, e.user, e.verb, e.allowed) for e in events] == [
        ("command", "U1", "dig", True),
        ("button", "U2", "capture", False),
        ("command", "U1", "check", True),
    ]
    assert events[0].text == "dig a.b" and abs(events[0].at - (now - 30)) < 0.01
    assert [e.verb for e in log.read(user="U1")] == ["dig", "check"]
    assert [e.verb for e in log.read(since=now - 15)] == ["check"]
    assert len(log.read(limit=2)) == 2
    # An entry appended an hour ago (its id is its append time) goes when the next one is added.
    r.delete(AUDIT_STREAM)
    old = AuditEvent("command", "U9", "C1", "dig", True, "old", at=now - 3600)
    r.xadd(AUDIT_STREAM, old.fields(), id=f"{int(old.at * 1000)}-0")  # type: ignore[arg-type]
    log.append(AuditEvent("command", "U9", "C1", "dig", True, "new", at=now))
    assert [e.reason for e in log.read()] == ["new"]
