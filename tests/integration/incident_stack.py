"""A bot, workers and a restartable redis-server as real processes, for the incident workflow's tests.

Redis keeps an append-only file written on every command (``appendfsync always``), as a Redis that
must not lose acknowledged jobs across a restart does; ``restart()`` stops it and starts it again on
the same port and directory while bot and workers keep running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from console import embedded, slackreq
from console.standin import Message, SlackStandIn
from tests.dnsservers import free_port
from tests.services import BOT_TOKEN, SIGNING_SECRET, aksdns_env, run_aksdns, wait_http

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
CHANNEL = "C0INCIDENT"


class DurableRedis:
    """redis-server with an fsync'd append-only file, restartable in place."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed: apt-get install -y redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [str(shutil.which("redis-server")), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = self.client()
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # SHUTDOWN: the append-only file is complete
            self.proc.wait(timeout=20)

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)


@dataclass
class Stack:
    """Bot and workers of one test, and what an engineer would type."""

    slack: SlackStandIn
    redis_url: str
    tmp: Path
    clusters: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)
    events: str = ""
    bot_metrics: int = 0
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def env(self, cluster: str, **more: str) -> dict[str, str]:
        return aksdns_env(
            REDIS_URL=self.redis_url,
            SLACK_API_URL=self.slack.api_url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            AKSDNS_CLUSTER=cluster,
            AKSDNS_CLUSTERS=",".join(self.clusters),
            AKSDNS_JOB_TIMEOUT="30",
            **{**self.extra, **more},
        )

    def start_bot(self, **more: str) -> str:
        port = free_port()
        self.bot_metrics = free_port()
        env = self.env(self.clusters[0], AKSDNS_METRICS_PORT=str(self.bot_metrics),
                       AKSDNS_METRICS_HOST="127.0.0.1", **more)
        args = ["bot", "--http", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        self.stack.enter_context(run_aksdns(args, env, self.tmp / "bot.log"))
        wait_http(f"http://127.0.0.1:{port}/healthz")
        self.events = f"http://127.0.0.1:{port}/slack/events"
        return self.events

    def start_worker(self, cluster: str, name: str = "", **more: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker-{name or cluster}.log"
        proc = self.stack.enter_context(run_aksdns(["worker"], self.env(cluster, **more), log))
        self.workers[name or cluster] = proc
        return proc

    def wait_live(self, cluster: str, count: int = 1, timeout: float = 30) -> None:
        from aksdns.liveness import live_workers

        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        deadline = time.monotonic() + timeout
        while sum(1 for b in live_workers(client) if b.cluster == cluster) < count:
            assert time.monotonic() < deadline, f"no live worker for {cluster}: {self.log(cluster)}"
            time.sleep(0.2)

    def log(self, name: str) -> str:
        path = self.tmp / f"worker-{name}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def kill_worker(self, name: str) -> None:
        """SIGKILL, as when a node dies: the worker, its work-horse and its scheduler, no goodbye."""
        proc = self.workers.pop(name)
        for pid in [proc.pid, *_children(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)

    # -- what an engineer types
    def slash(self, text: str, *, user: str = "U0ONCALL", channel: str = CHANNEL) -> tuple[int, str]:
        body = slackreq.slash_body(text, user=user, channel=channel)
        status, response = slackreq.post(self.events, body, slackreq.sign(body, SIGNING_SECRET), FORM)
        return status, response.decode()

    def mention(self, text: str, thread_ts: str, *, user: str = "U0ONCALL") -> int:
        body = slackreq.mention_body(text, ts=self.slack.state.next_ts(), thread_ts=thread_ts, user=user,
                                     channel=CHANNEL)
        return slackreq.post(self.events, body, slackreq.sign(body, SIGNING_SECRET), JSON)[0]

    def click(self, action_id: str, value: str, thread_ts: str, *, user: str = "U0ONCALL") -> int:
        body = slackreq.button_body(action_id, value, thread_ts=thread_ts, user=user)
        return slackreq.post(self.events, body, slackreq.sign(body, SIGNING_SECRET), FORM)[0]

    # -- what the channel shows
    def parents(self) -> list[Message]:
        return [m for m in self.slack.state.messages if m.thread_ts is None and m.ephemeral_to is None
                and m.user == self.slack.state.bot_user]

    def replies(self, thread_ts: str) -> list[Message]:
        return [m for m in self.slack.state.messages if m.thread_ts == thread_ts and m.ephemeral_to is None
                and m.user == self.slack.state.bot_user]

    def results(self, thread_ts: str) -> list[Message]:
        return [m for m in self.replies(thread_ts) if m.blocks]

    def ephemerals(self, user: str = "U0ONCALL") -> list[str]:
        return [m.text for m in self.slack.state.messages if m.ephemeral_to == user]

    def button(self, message: Message, action_id: str) -> str:
        return next(str(e["value"]) for b in message.blocks if b.get("type") == "actions"
                    for e in b["elements"] if e["action_id"] == action_id)


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (RQ forks work-horses and the scheduler in sessions of their own)."""
    out: list[int] = []
    parents = {pid}
    for _ in range(3):
        found = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in parents and int(p.name) not in out:
                found.append(int(p.name))
        out += found
        parents = set(found)
    return out


def scrape(port: int) -> dict[str, Any]:
    """/metrics parsed with prometheus_client's own parser: {name: {labels tuple: value}}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


__all__ = ["CHANNEL", "DurableRedis", "Stack", "embedded", "scrape"]
