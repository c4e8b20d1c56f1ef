"""Socket Mode: `aksdns bot` with SLACK_APP_TOKEN opens a real WebSocket to the stand-in,
acks a slash-command envelope and queues the job; a worker answers in the thread."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

from console.standin import SlackStandIn
from tests.dnsservers import RealServer
from tests.services import BOT_TOKEN, RedisServer, aksdns_env, run_aksdns, slash_body

APP_TOKEN = "xapp-1-A0AKSDNS-test"


def test_socket_mode_acks_and_answers_in_thread(
    redis_server: RedisServer, bind9_server: RealServer, tmp_path: Path
) -> None:
    slack = SlackStandIn(BOT_TOKEN, app_token=APP_TOKEN).start()
    assert slack.socket_mode is not None
    try:
        env = aksdns_env(REDIS_URL=redis_server.url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                         SLACK_APP_TOKEN=APP_TOKEN, AKSDNS_CLUSTER="socketmode")
        with run_aksdns(["bot"], env, tmp_path / "bot.log"), run_aksdns(["worker"], env, tmp_path / "worker.log"):
            assert slack.socket_mode.connected.wait(20), (tmp_path / "bot.log").read_text()[-2000:]
            server = bind9_server.server
            form = urllib.parse.parse_qs(slash_body(f"dig @{server.host}:{server.port} www.aksdns.test").decode())
            envelope = slack.socket_mode.send("slash_commands", {k: v[-1] for k, v in form.items()})
            assert slack.wait_for(lambda _s: envelope in slack.socket_mode.acks, timeout=10)  # type: ignore[union-attr]
            assert slack.wait_for(lambda s: any(m.thread_ts and m.blocks for m in s.messages), timeout=30), (
                (tmp_path / "worker.log").read_text()[-2000:]
            )
            parent = next(m for m in slack.state.messages if m.thread_ts is None)
            assert "10.53.1.10" in slack.transcript("C0INCIDENT", parent.ts)
            # A usage error comes back in the ack itself, as an ephemeral message.
            bad = slack.socket_mode.send("slash_commands", {**{k: v[-1] for k, v in form.items()}, "text": "dig ;"})
            assert slack.wait_for(lambda _s: bad in slack.socket_mode.acks, timeout=10)  # type: ignore[union-attr]
            payload = slack.socket_mode.acks[bad].get("payload") or {}
            assert "forbidden" in str(payload.get("text", ""))
            time.sleep(0.2)
    finally:
        slack.stop()
