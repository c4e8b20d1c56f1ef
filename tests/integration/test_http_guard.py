"""Issue 10 items 6 and 9: what reaches `aksdns bot --http` (gunicorn) before and instead of Slack.

Malformed and unsigned requests are refused before the framework on bounded bytes, with no
traceback in the log; a 40 MB unsigned body is refused without being read (the bot process's
peak RSS is measured); slow connections do not stall acks; replayed signed bytes queue nothing;
gunicorn's control socket is not opened at a shared path.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.standin import SlackStandIn
from tests.services import RedisServer, post, run_http_bot, sign, slash_body, stack_env

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.fixture
def bot_proc(redis_server: RedisServer, slack: SlackStandIn, cluster: str, tmp_path: Path
             ) -> Iterator[tuple[str, Path, int]]:
    home = tmp_path / "home"
    (home / "xdg").mkdir(parents=True)
    env = stack_env(redis_server.url, slack, cluster, HOME=str(home), XDG_RUNTIME_DIR=str(home / "xdg"))
    log = tmp_path / "bot.log"
    with run_http_bot(env, log) as (url, proc):
        yield url, log, proc.pid


@pytest.fixture
def bot(bot_proc: tuple[str, Path, int]) -> str:
    return bot_proc[0]


def _no_traceback(log: Path) -> None:
    text = log.read_text()
    assert "Traceback" not in text and '"exc"' not in text, text[-3000:]


def _raw(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def _port(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


NOW = "now"  # replaced by the current time when the request is sent
UNSIGNED_HEADERS = [
    ({"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=" + "0" * 64}, b"text=x"),
    ({"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=" + "0" * 64}, b"text=x"),
    ({"X-Slack-Request-Timestamp": "¹²³", "X-Slack-Signature": "v0=" + "0" * 64}, b"text=x"),
    ({"X-Slack-Request-Timestamp": "-5", "X-Slack-Signature": "v0=" + "0" * 64}, b"text=x"),
    ({"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=zz"}, b"text=x"),
    ({"X-Slack-Request-Timestamp": NOW}, b"text=x"),
    ({"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=" + "0" * 64}, b"\xff\xfe\x00bad"),
    ({"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=" + "0" * 64}, b"{"),
    ({"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=" + "0" * 64}, b"payload=%7B"),
]


@pytest.mark.parametrize(("headers", "body"), UNSIGNED_HEADERS)
def test_malformed_unsigned_requests_get_4xx_and_no_traceback(
    bot_proc: tuple[str, Path, int], headers: dict[str, str], body: bytes
) -> None:
    url, log, _ = bot_proc
    headers = {k: str(int(time.time())) if v == NOW else v for k, v in headers.items()}
    status, answer = post(url, body, headers, FORM)
    assert 400 <= status < 500, (status, answer)
    assert b"internal error" not in answer and b"Traceback" not in answer
    _no_traceback(log)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\xff\xfe\x00bad", FORM), (b"{", FORM), (b"payload=%7B", FORM), (b"payload=1", FORM), (b"[1]", JSON),
     (b"payload=%5B%5D", FORM)],
)
def test_malformed_signed_bodies_get_400_and_no_traceback(
    bot_proc: tuple[str, Path, int], body: bytes, content_type: str
) -> None:
    url, log, _ = bot_proc
    status, answer = post(url, body, sign(body), content_type)
    assert status == 400, (status, answer)
    _no_traceback(log)


def _peak_rss_kib(pid: int) -> int:
    """VmHWM of the bot's gunicorn worker processes (the children of the arbiter `aksdns bot`)."""
    peaks = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(pid):
            peaks.append(int(fields["VmHWM"].split()[0]))
    assert peaks, "no gunicorn worker found"
    return max(peaks)


def test_a_40_mb_unsigned_post_is_refused_unread_and_memory_stays_bounded(bot_proc: tuple[str, Path, int]) -> None:
    url, log, pid = bot_proc
    before = _peak_rss_kib(pid)
    size = 40 * 1024 * 1024
    head = (f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: {size}\r\n"
            f"X-Slack-Request-Timestamp: {int(time.time())}\r\nX-Slack-Signature: v0={'0' * 64}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=10) as sock:
        sock.sendall(head + b"a" * 65536)
        answer = sock.recv(4096)  # answered on the headers, before the body
        sent = 0
        with contextlib.suppress(OSError):  # the bot closes the connection without reading the rest
            chunk = b"a" * (1024 * 1024)
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
    after = _peak_rss_kib(pid)
    print(f"bot worker peak RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after a 40 MB POST "
          f"({sent / 2**20:.0f} MiB sent before the bot closed)")
    assert after - before < 8 * 1024, (before, after)  # not the 40 MB (nor Bolt's copies of it)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    chunked = _raw(_port(url), b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"5\r\nhello\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 411"), chunked[:200]
    _no_traceback(log)


def test_slow_connections_do_not_stall_acks(bot_proc: tuple[str, Path, int]) -> None:
    """60 connections (the bot has 16 threads) send nothing or trickle their headers; commands are still acked."""
    url, log, _ = bot_proc
    port = _port(url)
    slow: list[socket.socket] = []
    try:
        for i in range(60):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        statuses = []
        for i in range(8):
            for sock in slow[1::2]:  # keep trickling: one header byte per round
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")
            body = slash_body(f"help dig {i}")
            statuses.append(post(url, body, sign(body), FORM, timeout=3.0)[0])  # Slack waits 3 s, no more
            time.sleep(0.5)
        assert statuses == [200] * 8
    finally:
        for sock in slow:
            sock.close()
    _no_traceback(log)


def test_replayed_signed_bytes_queue_nothing(
    bot_proc: tuple[str, Path, int], slack: SlackStandIn, redis_server: RedisServer, cluster: str, served: None
) -> None:
    url, log, _ = bot_proc
    body = slash_body("dig www.aksdns.test")
    headers = sign(body)
    assert post(url, body, headers, FORM)[0] == 200
    assert slack.wait_for(lambda s: any(m.thread_ts is None and not m.ephemeral_to for m in s.messages), timeout=20)
    redis_server.client().delete(*redis_server.client().keys("aksdns:dedup:*"))  # as if the first job finished
    status, answer = post(url, body, headers, FORM)  # the same bytes, within Slack's 5 minutes
    assert status == 200 and answer == b""  # acked as Slack expects, and then:
    deadline = time.monotonic() + 10
    while "replayed request ignored" not in log.read_text():  # decided by the request's follow-up
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
    time.sleep(2)  # what a second job would need to show up
    parents = [m for m in slack.state.messages if m.thread_ts is None and not m.ephemeral_to]
    assert len(parents) == 1
    assert redis_server.client().llen(f"rq:queue:aksdns:{cluster}") == 1


def test_gunicorn_opens_no_control_socket_at_a_shared_path(bot_proc: tuple[str, Path, int], tmp_path: Path) -> None:
    """gunicorn >= 25 listens on $XDG_RUNTIME_DIR/gunicorn.ctl (or ~/.gunicorn/): one path for every bot."""
    _, log, _ = bot_proc
    deadline = time.monotonic() + 3  # gunicorn opens it right after its workers booted
    while time.monotonic() < deadline:
        assert [p for p in (tmp_path / "home").rglob("*") if p.name.endswith(".ctl")] == []
        assert "Control socket listening" not in log.read_text()
        time.sleep(0.2)


def test_help_still_answers_through_the_guard(bot: str) -> None:
    body = slash_body("help")
    status, answer = post(bot, body, sign(body), FORM)
    assert status == 200 and "dig" in json.loads(answer)["text"]
