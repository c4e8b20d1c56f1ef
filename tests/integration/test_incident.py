"""The incident workflow with real processes: bot (HTTP mode) and workers, a real redis-server, real DNS
servers (bind9, scripted dnspython servers), the Slack stand-in.

Faults: Redis restarted under a running bot and worker, a worker SIGKILLed mid-job, one of two
clusters' workers gone. Workflow: a thread of five jobs handed over, rate limits, the audit stream,
metrics scraped over HTTP, a watch that outlives its worker.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aksdns.results import AuditLog, ResultsStore
from console.standin import SlackStandIn
from tests.dnsservers import FakeDnsServer, RealServer
from tests.integration.incident_stack import CHANNEL, DurableRedis, Stack, scrape
from tests.services import heartbeat_only


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[DurableRedis]:
    (tmp_path / "redis").mkdir()
    server = DurableRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_stack(durable: DurableRedis, slack: SlackStandIn, tmp_path: Path, *clusters: str, **extra: str) -> Stack:
    return Stack(slack, durable.url, tmp_path, clusters or ("east",), dict(extra))


@pytest.fixture
def stack_factory(durable: DurableRedis, slack: SlackStandIn, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    made: list[Stack] = []

    def make(*clusters: str, **extra: str) -> Stack:
        s = make_stack(durable, slack, tmp_path, *clusters, **extra)
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.stack.close()


def _dig(server: object, name: str = "www.aksdns.test", extra: str = "") -> str:
    s = server.server if hasattr(server, "server") else server  # type: ignore[attr-defined]
    return f"dig @{s.host}:{s.port} {name} {extra}".strip()


# ---------------------------------------------------------------------------- faults


def test_redis_restarted_mid_run_loses_no_acknowledged_job(
    stack_factory: Callable[..., Stack], durable: DurableRedis, bind9_server: RealServer, silent_server: FakeDnsServer
) -> None:
    """A job runs, three wait, Redis restarts; two commands arrive while it is down. Every one of them
    is answered in its own thread and recorded, by the same bot and worker processes."""
    s = stack_factory("east")
    s.start_bot()
    worker = s.start_worker("east")
    s.wait_live("east")
    first = [_dig(silent_server, extra="--timeout 20"), *(_dig(bind9_server, extra=f"--repeat {n}") for n in (2, 3, 4))]
    client = durable.client()
    for n, text in enumerate(first, 1):
        status, _ = s.slash(text)
        assert status == 200
        assert s.slack.wait_for(lambda _s, n=n: len(s.parents()) == n, timeout=30)  # type: ignore[misc]
        # The bot posts the parent (with the queue position) and then enqueues: the next command
        # goes in only once this one is on the queue, or its position would miss it.
        assert s.slack.wait_for(lambda _s, n=n: len(client.keys("rq:job:*")) >= n, timeout=30)  # type: ignore[misc]
    # The queue, told honestly: the fourth waits behind the second and third while the first runs
    # (20 s for its silent server: long enough that a busy machine still has both queued).
    posted = [a["text"] for _, m, a in s.slack.state.calls if m == "chat.postMessage" and "queued by" in a["text"]]
    assert "jobs ahead of yours" in posted[3], posted
    assert s.slack.wait_for(lambda _s: "`dig` on `east`" in s.parents()[0].text, timeout=30)
    durable.stop()  # mid-job: the first dig is waiting for its silent server
    for n in (5, 6):  # acknowledged by Slack's 3 s rule while Redis is down
        status, _ = s.slash(_dig(bind9_server, extra=f"--repeat {n}"))
        assert status == 200
    # Down for 7 s: past what redis-py's retries span (about 5 s), so the running job's heartbeats
    # (every 5 s) meet the outage — RQ's loop used to end the worker there — and inside the 15 s a
    # command waits for Redis in the bot (bot.dispatch.REDIS_WAIT_S).
    time.sleep(7)
    durable.start()
    assert s.slack.wait_for(lambda _s: len(s.parents()) == 6, timeout=60), s.ephemerals()
    assert s.slack.wait_for(lambda _s: all(s.results(p.ts) for p in s.parents()), timeout=120), (
        [(p.text, [r.text for r in s.replies(p.ts)]) for p in s.parents() if not s.results(p.ts)], s.log("east"))
    # One after the restart as well, and the same processes answered everything.
    status, _ = s.slash(_dig(bind9_server, extra="--repeat 7"))
    assert status == 200
    assert s.slack.wait_for(lambda _s: len(s.parents()) == 7 and all(s.results(p.ts) for p in s.parents()),
                            timeout=60)
    assert worker.poll() is None
    # RQ's scheduler process (a watch's next run, a coredns-log revert) ends on the outage; RQ's
    # maintenance pass in the same worker starts a new one.
    log = s.tmp / "worker-east.log"
    assert s.slack.wait_for(lambda _s: log.read_text().count("Scheduler for aksdns:east started") >= 2,
                            timeout=60), s.log("east")
    assert not [t for t in s.ephemerals() if "unreachable" in t]
    store = ResultsStore(durable.client())
    assert s.slack.wait_for(lambda _s: all(store.history(CHANNEL, p.ts) for p in s.parents()), timeout=30)
    statuses = [store.history(CHANNEL, p.ts)[-1].status for p in s.parents()]
    assert statuses[0] == "fail" and statuses[1:] == ["ok"] * 6, statuses


@pytest.mark.slow
def test_a_job_ending_in_a_long_redis_outage_still_answers_in_its_thread(
    stack_factory: Callable[..., Stack], durable: DurableRedis, silent_server: FakeDnsServer
) -> None:
    """Redis stays down past the job's time-out (30 s here): the job's answer reaches its thread at
    once, and its record waits for Redis only within the time the job has left. (Waiting first,
    as before, let RQ's time-out end the job with its answer unposted.) Once Redis is back, the
    worker writes the record and ends the job in RQ as finished before its maintenance pass, which
    used to report the answered job as stopped with its worker (a ❌ under the answer)."""
    s = stack_factory("east")
    s.start_bot()
    worker = s.start_worker("east")
    s.wait_live("east")
    assert s.slash(_dig(silent_server, extra="--timeout 20"))[0] == 200
    assert s.slack.wait_for(lambda _s: s.parents() and "`dig` on `east`" in s.parents()[0].text, timeout=30)
    parent = s.parents()[0]
    log = s.tmp / "worker-east.log"
    durable.stop()
    try:
        assert s.slack.wait_for(lambda _s: bool(s.results(parent.ts)), timeout=45), s.log("east")
        assert "0 answered, 1 failed" in s.results(parent.ts)[0].text
        assert s.slack.wait_for(lambda _s: "done in" in parent.text, timeout=15), parent.text
        # The work-horse has given up on Redis (the job's time left is spent) and left its record.
        assert s.slack.wait_for(lambda _s: "its record is kept for the worker" in log.read_text(), timeout=30), \
            s.log("east")
    finally:
        durable.start()
    client = durable.client()
    store = ResultsStore(client)
    assert s.slack.wait_for(lambda _s: store.history(CHANNEL, parent.ts), timeout=60), s.log("east")
    assert [o.status for o in store.history(CHANNEL, parent.ts)] == ["fail"]  # dig's own answer, once
    job_id = store.history(CHANNEL, parent.ts)[0].job_id
    from rq.job import Job
    from rq.serializers import JSONSerializer

    assert Job.fetch(job_id, connection=client, serializer=JSONSerializer).get_status() == "finished"
    # A maintenance pass after Redis came back has cleaned RQ's registries: it saw no stopped job.
    settled = log.read_text().index("a job's end written after a Redis outage")
    assert s.slack.wait_for(lambda _s: "cleaning registries" in log.read_text()[settled:], timeout=60), s.log("east")
    assert not [m.text for m in s.replies(parent.ts) if "failed:" in m.text]
    assert worker.poll() is None


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_reported_failed_within_two_minutes(
    stack_factory: Callable[..., Stack], durable: DurableRedis, silent_server: FakeDnsServer
) -> None:
    s = stack_factory("east")
    s.start_bot()
    s.start_worker("east", "first")
    s.wait_live("east")
    s.slash(_dig(silent_server, extra="--timeout 30"))
    # Running ("`dig` on `east`: running…"; progress lines closer than a second apart are coalesced).
    assert s.slack.wait_for(lambda _s: s.parents() and "`dig` on `east`" in s.parents()[0].text, timeout=30)
    time.sleep(2)  # well inside its 30 s wait for the silent server
    parent = s.parents()[0]
    s.kill_worker("first")
    killed = time.monotonic()
    s.start_worker("east", "second")
    # Within 2 minutes of the kill, as the issue asks (RQ: heartbeat TTL + a maintenance pass).
    reported = s.slack.wait_for(
        lambda _s: any("worker running it stopped" in m.text for m in s.replies(parent.ts)), timeout=120)
    took = time.monotonic() - killed
    print(f"killed worker's job reported failed in its thread after {took:.0f} s")
    assert reported, s.log("second")
    assert s.slack.wait_for(lambda _s: "❌" in parent.text and "failed" in parent.text, timeout=20), parent.text
    store = ResultsStore(durable.client())
    assert s.slack.wait_for(lambda _s: store.history(CHANNEL, parent.ts), timeout=20)
    assert store.history(CHANNEL, parent.ts)[-1].status == "failed"


def test_a_work_horse_killed_mid_job_is_reported_at_once_and_the_worker_goes_on(
    stack_factory: Callable[..., Stack], durable: DurableRedis, silent_server: FakeDnsServer, bind9_server: RealServer
) -> None:
    """The kernel's OOM killer ends the biggest process in a container at its memory limit: the
    work-horse running the job, not the worker. RQ calls no failure callback then; the thread said
    "running…" for good. Now it says why, at once, and the same worker serves the next command."""
    s = stack_factory("east")
    s.start_bot()
    worker = s.start_worker("east")
    s.wait_live("east")
    log = s.tmp / "worker-east.log"
    assert s.slack.wait_for(lambda _s: "Scheduler for aksdns:east started with PID" in log.read_text(), timeout=30)
    scheduler = int(log.read_text().split("Scheduler for aksdns:east started with PID ")[1].split('"')[0])
    s.slash(_dig(silent_server, extra="--timeout 20"))
    assert s.slack.wait_for(lambda _s: s.parents() and "`dig` on `east`" in s.parents()[0].text, timeout=30)
    parent = s.parents()[0]
    horses: list[int] = []
    assert s.slack.wait_for(lambda _s: bool(horses.extend(p for p in _direct_children(worker.pid) if p != scheduler)
                                            or horses), timeout=10)
    os.kill(horses[0], signal.SIGKILL)
    assert s.slack.wait_for(lambda _s: any("failed" in m.text for m in s.replies(parent.ts)), timeout=30), \
        s.log("east")
    said = next(m.text for m in s.replies(parent.ts) if "failed" in m.text)
    assert "killed (SIGKILL)" in said and "memory limit" in said, said
    assert s.slack.wait_for(lambda _s: "❌" in parent.text and "failed" in parent.text, timeout=20), parent.text
    store = ResultsStore(durable.client())
    assert s.slack.wait_for(lambda _s: store.history(CHANNEL, parent.ts), timeout=20)
    assert store.history(CHANNEL, parent.ts)[-1].status == "failed"
    assert worker.poll() is None
    s.slash(_dig(bind9_server))
    assert s.slack.wait_for(lambda _s: len(s.parents()) == 2 and s.results(s.parents()[-1].ts), timeout=40)


def _direct_children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


@pytest.mark.slow
def test_two_clusters_and_one_of_them_gone(
    stack_factory: Callable[..., Stack], durable: DurableRedis, bind9_server: RealServer
) -> None:
    s = stack_factory("east", "west")
    s.start_bot()
    s.start_worker("east")
    s.start_worker("west")
    s.wait_live("east")
    s.wait_live("west")
    s.slash("use west")
    assert s.slack.wait_for(lambda st: any("default cluster to `west`" in m.text for m in st.messages), timeout=20)
    s.slash("clusters")
    assert s.slack.wait_for(lambda _s: any("`west`" in t and "`east`" in t for t in s.ephemerals()), timeout=20)
    listing = next(t for t in s.ephemerals() if "*Clusters*" in t)
    assert "✅ `west` ← this channel's default" in listing and "✅ `east`" in listing and "aksdns 0.1.0" in listing
    s.slash(_dig(bind9_server))
    assert s.slack.wait_for(lambda _s: s.parents() and s.results(s.parents()[-1].ts), timeout=40)
    store = ResultsStore(durable.client())
    assert s.slack.wait_for(lambda _s: store.history(CHANNEL, s.parents()[-1].ts), timeout=20)
    assert store.history(CHANNEL, s.parents()[-1].ts)[-1].cluster == "west"
    # West's worker dies without a word; once its heartbeat lapses, west's commands are refused at once.
    s.kill_worker("west")
    from aksdns.liveness import live_workers

    client = durable.client()
    assert s.slack.wait_for(lambda _s: not [b for b in live_workers(client) if b.cluster == "west"], timeout=60)
    before = len(s.parents())
    asked = time.monotonic()
    s.slash(_dig(bind9_server, extra="--repeat 2"))
    assert s.slack.wait_for(lambda _s: any("No worker is serving cluster `west`" in t for t in s.ephemerals()),
                            timeout=30)
    print(f"'no worker' answered after {time.monotonic() - asked:.1f} s")
    assert len(s.parents()) == before and client.llen("rq:queue:aksdns:west") == 0
    s.slash(_dig(bind9_server, extra="--repeat 3 --cluster east"))
    assert s.slack.wait_for(lambda _s: len(s.parents()) == before + 1 and s.results(s.parents()[-1].ts),
                            timeout=40)
    assert s.slack.wait_for(lambda _s: store.history(CHANNEL, s.parents()[-1].ts), timeout=20)
    assert store.history(CHANNEL, s.parents()[-1].ts)[-1].cluster == "east"


# ---------------------------------------------------------------------------- workflow


def test_a_thread_of_five_jobs_handed_over(
    stack_factory: Callable[..., Stack], durable: DurableRedis, bind9_server: RealServer,
    dns_server_factory: Callable[..., FakeDnsServer], silent_server: FakeDnsServer,
) -> None:
    flaky = dns_server_factory("servfail")
    s = stack_factory("east")
    s.start_bot()
    s.start_worker("east")
    s.wait_live("east")
    # 1. The first dig fails: the server answers SERVFAIL.
    s.slash(_dig(flaky))
    assert s.slack.wait_for(lambda _s: s.parents() and s.results(s.parents()[0].ts), timeout=40)
    thread = s.parents()[0].ts
    first = s.results(thread)[0]

    def results(n: int) -> bool:
        return len(s.results(thread)) >= n

    # 2. Another server, typed in the thread.
    s.mention(_dig(bind9_server), thread, user="U0BOB")
    assert s.slack.wait_for(lambda _s: results(2), timeout=40)
    # 3. The server is fixed; Re-run (button) says what changed.
    flaky.mode = "answer"
    s.click("aksdns_rerun", s.button(first, "aksdns_rerun"), thread)
    assert s.slack.wait_for(lambda _s: results(3), timeout=40)
    rerun = s.slack.transcript(CHANNEL, thread)
    assert "Since the previous run" in rerun and f"no longer: DNS server 127.0.0.1:{flaky.server.port} fails" in rerun
    # 4. `again` runs the thread's last command again: nothing changed.
    s.mention("again", thread, user="U0BOB")
    assert s.slack.wait_for(lambda _s: results(4), timeout=40)
    assert "nothing changed" in s.slack.transcript(CHANNEL, thread)
    # 5. A server that never answers.
    s.mention(_dig(silent_server, extra="--timeout 1"), thread)
    assert s.slack.wait_for(lambda _s: results(5), timeout=40)
    # Handoff, from the button of the last result.
    s.click("aksdns_handoff", s.button(s.results(thread)[-1], "aksdns_handoff"), thread, user="U0CAROL")
    assert s.slack.wait_for(lambda st: any(f.name.startswith("aksdns-handoff-") and f.content
                                           for f in st.files.values()), timeout=40), s.log("east")
    md = next(f for f in s.slack.state.files.values() if f.name.startswith("aksdns-handoff-")).content.decode()
    print(md)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "U0" in line]
    assert len(rows) == 5
    assert [r.split("|")[2].strip() for r in rows] == ["U0ONCALL", "U0BOB", "U0ONCALL", "U0BOB", "U0ONCALL"]
    assert "first run" in rows[0] and "❌" in rows[0]
    assert f"127.0.0.1:{flaky.server.port}: ❌ → ✅" in rows[2] and "✅" in rows[2]
    assert rows[3].rstrip().endswith("| — |")  # ran again, nothing changed
    assert rows[3].split("|")[3] == rows[2].split("|")[3]  # `again` repeated the thread's last command
    ruled = md.split("## Ruled out", 1)[1].split("##", 1)[0]
    assert f"~~DNS server 127.0.0.1:{flaky.server.port} fails every query~~: no longer seen" in ruled
    assert f"~~DNS server {bind9_server.server.host}:{bind9_server.server.port} is not answering~~" in ruled
    held = md.split("## Current top hypotheses", 1)[1].split("##", 1)[0]
    assert f"DNS server 127.0.0.1:{silent_server.server.port} fails every query" in held
    assert "flaky" not in held and str(flaky.server.port) not in held
    handoff_reply = s.results(thread)[-1]
    assert "Handoff" in handoff_reply.text
    transcript = s.slack.transcript(CHANNEL, thread)
    assert "*Timeline* (UTC)" in transcript and "*Ruled out*" in transcript and "*Open actions*" in transcript


def test_rate_limits_answer_plainly_and_are_audited(
    stack_factory: Callable[..., Stack], durable: DurableRedis
) -> None:
    s = stack_factory("east", AKSDNS_RATE_PER_USER="2", AKSDNS_RATE_PER_CHANNEL="3")
    started = time.time()
    with heartbeat_only(durable.url, "east"):
        s.start_bot()
        for n in range(3):
            assert s.slash(f"dig n{n}.aksdns.test", user="U0ALICE")[0] == 200
            time.sleep(0.3)  # in order: the third is the one refused
        assert s.slack.wait_for(lambda _s: any("Slow down" in t for t in s.ephemerals("U0ALICE")), timeout=30)
        assert s.slash("dig n3.aksdns.test", user="U0BOB")[0] == 200
        assert s.slack.wait_for(lambda _s: len(s.parents()) == 3, timeout=30)
        assert s.slash("dig n4.aksdns.test", user="U0CAROL")[0] == 200
        assert s.slack.wait_for(lambda _s: any("Slow down" in t for t in s.ephemerals("U0CAROL")), timeout=30)
    (mine,) = [t for t in s.ephemerals("U0ALICE") if "Slow down" in t]
    assert "you have run 2 commands in the last minute (at most 2 per person)" in mine and "Try again in" in mine
    (channel,) = [t for t in s.ephemerals("U0CAROL") if "Slow down" in t]
    assert "this channel has run 3 commands" in channel
    assert durable.client().llen("rq:queue:aksdns:east") == 3
    audit = AuditLog(durable.client())
    assert s.slack.wait_for(lambda _s: len([e for e in audit.read(since=started) if "rate limit" in e.reason]) == 2,
                            timeout=20)
    reasons = {e.user: e.reason for e in audit.read(since=started) if not e.allowed}
    assert reasons == {"U0ALICE": "rate limit (user)", "U0CAROL": "rate limit (channel)"}


def test_audit_of_allowed_and_denied_commands_and_buttons(
    stack_factory: Callable[..., Stack], durable: DurableRedis
) -> None:
    s = stack_factory("east", AKSDNS_PRIVILEGED_USERS="U0LEAD")
    started = time.time()
    with heartbeat_only(durable.url, "east"):
        s.start_bot()
        s.slash("dig www.aksdns.test", user="U0ALICE")
        s.slash("capture --coredns", user="U0ALICE")
        s.slash("audit", user="U0ALICE")
        rerun = json.dumps({"verb": "dig", "args": {"names": ["www.aksdns.test"], "repeat": 2}})
        s.click("aksdns_rerun", rerun, "1700000000.000300", user="U0ALICE")
        forged = json.dumps({"verb": "dig", "args": {"names": ["x.test"], "repeat": 100000}})
        s.click("aksdns_rerun", forged, "1700000000.000300", user="U0ALICE")
        audit = AuditLog(durable.client())
        assert s.slack.wait_for(lambda _s: len(audit.read(since=started, user="U0ALICE")) == 5, timeout=30)
        s.slash("audit --user U0ALICE --since 1h", user="U0LEAD")
        assert s.slack.wait_for(lambda _s: any("*Audit*" in t for t in s.ephemerals("U0LEAD")), timeout=30)
    events = audit.read(since=started, user="U0ALICE")
    by = {(e.kind, e.verb): e for e in events}
    assert by[("command", "dig")].allowed
    assert not by[("command", "capture")].allowed
    assert not by[("command", "audit")].allowed and "privileged" in by[("command", "audit")].reason
    buttons = [e for e in events if e.kind == "button"]
    assert sorted(e.allowed for e in buttons) == [False, True]
    assert any("not valid" in t for t in s.ephemerals("U0ALICE"))
    (listing,) = [t for t in s.ephemerals("U0LEAD") if "*Audit*" in t]
    assert "by <@U0ALICE>" in listing and "5 entries" in listing
    assert "✅" in listing and "🚫" in listing and "`dig www.aksdns.test`" in listing
    # The lead's own reading of the audit is audited too.
    assert any(e.verb == "audit" and e.allowed for e in audit.read(since=started, user="U0LEAD"))


def test_metrics_scraped_over_http(
    stack_factory: Callable[..., Stack], durable: DurableRedis, bind9_server: RealServer
) -> None:
    from tests.dnsservers import free_port

    s = stack_factory("east")
    s.start_bot()
    worker_port = free_port()
    s.start_worker("east", AKSDNS_METRICS_PORT=str(worker_port), AKSDNS_METRICS_HOST="127.0.0.1")
    s.wait_live("east")
    s.slash(_dig(bind9_server))
    s.slash("dig bad..name")
    assert s.slack.wait_for(lambda _s: s.parents() and s.results(s.parents()[0].ts), timeout=40)
    assert s.slack.wait_for(lambda _s: "done" in s.parents()[0].text, timeout=20)
    bot = scrape(s.bot_metrics)
    assert bot["aksdns_commands_total"][(("outcome", "queued"), ("verb", "dig"))] == 1
    assert bot["aksdns_commands_total"][(("outcome", "refused"), ("verb", "-"))] == 1
    assert bot["aksdns_ack_seconds_count"][(("kind", "command"),)] == 2
    assert bot["aksdns_live_workers"][(("cluster", "east"),)] == 1
    assert bot["aksdns_queue_depth"][(("cluster", "east"),)] == 0
    assert bot["aksdns_redis_up"][()] == 1

    def worker_counted() -> bool:
        return scrape(worker_port).get("aksdns_jobs_total", {}).get((("status", "ok"), ("verb", "dig"))) == 1

    assert s.slack.wait_for(lambda _s: worker_counted(), timeout=20)
    worker = scrape(worker_port)
    assert worker["aksdns_job_duration_seconds_count"][(("verb", "dig"),)] == 1
    assert worker["aksdns_job_duration_seconds_sum"][(("verb", "dig"),)] > 0
    assert worker["aksdns_live_workers"][(("cluster", "east"),)] == 1


@pytest.mark.slow
def test_watch_posts_changes_survives_a_worker_restart_and_stops(
    stack_factory: Callable[..., Stack], durable: DurableRedis, dns_server_factory: Callable[..., FakeDnsServer]
) -> None:
    """Every minute for five minutes: the first run replies in full, the worker is replaced before the
    second run (scheduled in Redis, so it still comes), which replies with what changed; Stop ends it."""
    server = dns_server_factory("answer")
    s = stack_factory("east")
    s.start_bot()
    s.start_worker("east", "first")
    s.wait_live("east")
    status, answer = s.slash(f'watch "{_dig(server)}" --every 1 --for 5m')
    assert status == 200 and not answer.strip(), answer
    assert s.slack.wait_for(lambda _s: s.parents() and s.results(s.parents()[0].ts), timeout=40)
    parent = s.parents()[0]
    first = s.results(parent.ts)[0]
    assert "Watching" in first.text and s.button(first, "aksdns_watch_stop")
    # Replace the worker between runs: the next run is in RQ's schedule, in Redis.
    s.workers.pop("first").terminate()
    server.mode = "servfail"
    s.start_worker("east", "second")
    assert s.slack.wait_for(lambda _s: len(s.results(parent.ts)) >= 2, timeout=120), s.log("second")
    second = s.slack.transcript(CHANNEL, parent.ts)
    assert "run 2/6: changed" in second and "❌" in second
    assert second.count("Since the previous run") == 1, second  # compared once, by the watch
    s.click("aksdns_watch_stop", s.button(s.results(parent.ts)[-1], "aksdns_watch_stop"), parent.ts)
    assert s.slack.wait_for(lambda _s: any("stopped watching" in m.text for m in s.replies(parent.ts)), timeout=20)
    time.sleep(70)  # the third run would have come by now
    assert len(s.results(parent.ts)) == 2
    store = ResultsStore(durable.client())
    assert [o.verb for o in store.history(CHANNEL, parent.ts)] == ["watch", "watch"]


def test_slack_answering_429_for_a_while_loses_no_answer_and_keeps_the_order(
    stack_factory: Callable[..., Stack], durable: DurableRedis, bind9_server: RealServer
) -> None:
    """Three commands in a thread while Slack answers every call 429 (Retry-After: 1) for 2.5 s: each is
    acknowledged, and every answer lands in the thread once, in the order the jobs ran."""
    import threading

    s = stack_factory("east")
    s.start_bot()
    s.start_worker("east")
    s.wait_live("east")
    s.slash(_dig(bind9_server))
    assert s.slack.wait_for(lambda _s: s.parents() and s.results(s.parents()[0].ts), timeout=40)
    thread = s.parents()[0].ts
    s.slack.state.faults.retry_after = 1
    s.slack.state.faults.outage("429")
    threading.Timer(2.5, s.slack.state.faults.clear).start()  # within the bot's bounded retries (bot/main.py)
    for n in (2, 3, 4):
        assert s.mention(_dig(bind9_server, extra=f"--repeat {n}"), thread) == 200
        time.sleep(0.5)
    assert s.slack.wait_for(lambda _s: len(s.results(thread)) == 4, timeout=120), s.log("east")
    limited = [c for c in s.slack.state.calls if c[2].get("fault") == "429"]
    assert limited, "the stand-in never answered 429"
    # Every answer is there, once, in the order the jobs ran (the thread's history); while Slack was
    # refusing, the three follow-ups retried side by side, so they may have been queued in any order.
    counts = [int(m.text.split(": ", 1)[1].split(" ", 1)[0]) for m in s.results(thread)]
    store = ResultsStore(durable.client())
    ran = [int(o.command["args"].get("repeat", 1)) for o in store.history(CHANNEL, thread)]
    assert sorted(counts) == [1, 2, 3, 4] and counts == ran, (counts, ran)
    for parent in [m for m in s.replies(thread) if "queued by" in m.text or "done in" in m.text]:
        assert "done in" in parent.text  # each job's status line ended on its final word
    assert not [t for t in s.ephemerals() if "not queued" in t or "not taking" in t]
