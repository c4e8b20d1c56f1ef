"""`/aksdns coredns-log on` end to end: slash command → the Start/Cancel question → Start (authorized
again) → the log plugin through coredns-custom, the revert scheduled in Redis → the worker SIGKILLed →
a new worker reverts on time. While it is on, the real CoreDNS logs SERVFAIL answers (a log class
`health` counts). A `health` in the same thread before the revert and its Re-run after it name the
coredns-custom key that went away (the shared Re-run diff over the results store, and health's own
line-by-line configuration diff)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest

from aksdns.commands import HealthCommand
from aksdns.results import AuditLog
from console import slackreq
from console.standin import SlackStandIn
from tests.dnsservers import free_port
from tests.services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    RedisServer,
    aksdns_env,
    post,
    run_aksdns,
    sign,
    slash_body,
    wait_http,
)
from workers.jobenv import JobEnv
from workers.jobs import health
from workers.probes.coredns_custom import KEY

pytestmark = pytest.mark.testbed

FORM = "application/x-www-form-urlencoded"
CUSTOM = "/api/v1/namespaces/kube-system/configmaps/coredns-custom"


@pytest.fixture
def pipeline_env(testbed: Any, redis_server: RedisServer, slack: SlackStandIn) -> dict[str, str]:
    return aksdns_env(
        REDIS_URL=redis_server.url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET, AKSDNS_CLUSTER="tbcdl" + str(os.getpid() % 10**5),
        KUBECONFIG=str(testbed.write_worker_kubeconfig()), AKSDNS_PRIVILEGED_USERS="U0ONCALL",
        AKSDNS_JOB_TIMEOUT="120",
    )


def _replies(slack: SlackStandIn) -> list[Any]:
    return [m for m in slack.state.messages if m.thread_ts is not None and m.ephemeral_to is None and m.blocks]


def _health_replies(slack: SlackStandIn) -> list[Any]:
    return [m for m in _replies(slack) if "CoreDNS and node health" in _text(m)]


def _text(message: Any) -> str:
    return " ".join([str(message.text), json.dumps(message.blocks)])


def _health_rerun(slack: SlackStandIn) -> str:
    """The Re-run button of the health reply (on the reply's last message)."""
    return str(next(e["value"] for m in _replies(slack) for b in m.blocks if b.get("type") == "actions"
                for e in b["elements"]
                if e["action_id"] == "aksdns_rerun" and json.loads(e["value"])["verb"] == "health"))


def _button(message: Any, action_id: str) -> str:
    return str(next(e["value"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"]
                    if e["action_id"] == action_id))


def _key(testbed: Any) -> str | None:
    data = (testbed.kube.get(CUSTOM).get("data") or {})
    value = data.get(KEY)
    return None if value is None else str(value)


def test_verbose_log_reverts_after_the_worker_is_killed(
    testbed: Any, pipeline_env: dict[str, str], redis_server: RedisServer, slack: SlackStandIn, tmp_path: Path,
    clean: None,
) -> None:
    port = free_port()
    with run_aksdns(["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], pipeline_env,
                    tmp_path / "bot.log"):
        events = f"http://127.0.0.1:{port}"
        wait_http(events + "/healthz")
        events += "/slack/events"
        with run_aksdns(["worker"], pipeline_env, tmp_path / "worker1.log") as worker1:
            # Typed `--yes` is ignored in Slack: the job asks with Start / Cancel.
            body = slash_body("coredns-log on --minutes 2 --yes")
            assert post(events, body, sign(body), FORM)[0] == 200
            assert slack.wait_for(lambda s: bool(_replies(slack)), timeout=60), (tmp_path / "worker1.log").read_text()
            ask = _replies(slack)[0]
            assert _key(testbed) is None  # nothing changed before Start
            start = _button(ask, "aksdns_confirm")
            assert json.loads(start)["args"]["confirmed"] is True and _button(ask, "aksdns_cancel")
            click = slackreq.button_body("aksdns_confirm", start, thread_ts=ask.thread_ts)
            assert post(events, click, sign(click), FORM)[0] == 200
            deadline = time.monotonic() + 60
            while _key(testbed) is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _key(testbed) is not None, (tmp_path / "worker1.log").read_text()[-3000:]
            scheduled_at = time.monotonic()
            # `@aksdns health` in the thread while the key is on: the basis the Re-run will compare with.
            mention = slackreq.mention_body("health --minutes 1", ts=slack.state.next_ts(), thread_ts=ask.thread_ts)
            assert post(events, mention, sign(mention), "application/json")[0] == 200
            assert slack.wait_for(lambda s: bool(_health_replies(slack)), timeout=90), \
                (tmp_path / "worker1.log").read_text()[-3000:]
            assert _key(testbed) is not None  # still on: the revert is due at 2 min
            os.killpg(worker1.pid, signal.SIGKILL)  # the worker dies with the revert still due
            worker1.wait(10)

        # While it is on, the real CoreDNS logs each query with its rcode: SERVFAIL from the upstream.
        testbed.upstream_rcode("SERVFAIL")
        pod = testbed.coredns_pods()[0]
        seen = False
        for _ in range(30):
            try:
                dns.query.udp(dns.message.make_query(f"sf-{time.time_ns()}.wild.example.com", "A"), pod.ip, timeout=3)
            except Exception:
                pass
            env = JobEnv(cluster="testbed", kubeconfig=str(testbed.write_worker_kubeconfig()))
            logs = health.execute(HealthCommand(minutes=1), env).data["evidence"]["logs"]
            if any(s["kind"] == "servfail" for s in logs):
                seen = True
                break
            time.sleep(1)
        testbed.upstream_reset()
        assert seen, "CoreDNS's log plugin wrote no SERVFAIL line"

        with run_aksdns(["worker"], pipeline_env, tmp_path / "worker2.log"):
            deadline = time.monotonic() + 240
            while _key(testbed) is not None and time.monotonic() < deadline:
                time.sleep(1)
            assert _key(testbed) is None, (tmp_path / "worker2.log").read_text()[-3000:]
            assert time.monotonic() - scheduled_at >= 110  # reverted when due, not at once
            # The revert's answer lands in the same thread (transcript() takes the stand-in's lock itself).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "logging removed" not in slack.transcript(ask.channel,
                                                                                             ask.thread_ts):
                time.sleep(0.5)
            thread = slack.transcript(ask.channel, ask.thread_ts)
            print(thread)
            assert "logging removed" in thread
            # Re-run of that health: what changed since, from the thread's results store.
            click = slackreq.button_body("aksdns_rerun", _health_rerun(slack), thread_ts=ask.thread_ts)
            assert post(events, click, sign(click), FORM)[0] == 200
            assert slack.wait_for(lambda s: len(_health_replies(slack)) >= 2, timeout=90), \
                (tmp_path / "worker2.log").read_text()[-3000:]
            second = _text(_health_replies(slack)[1])
            print(second)
            assert "Since the previous run" in second
            assert f"coredns-custom {KEY}" in second  # the shared diff: the key's digest → —
            assert f"coredns-custom key {KEY} removed" in second and "-log" in second  # health's own diff
    audit = AuditLog(redis_server.client()).read(limit=50)
    kinds = [(e.kind, e.verb, e.reason) for e in audit]
    assert any(k == "button" and v == "coredns-log" for k, v, _ in kinds), kinds
    assert any(k == "coredns-log" and "on for 2 min" in r for k, _, r in kinds), kinds
    assert any(k == "coredns-log" and "removed" in r for k, _, r in kinds), kinds
