"""Issue 10 item 3: the bot token never follows a file download to another host (or to plain http).

A real `aksdns worker` runs `analyze` on a capture uploaded to a thread of the Slack stand-in;
the stand-in answers the download with a redirect to another local server that records what
reaches it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from console.standin import SlackStandIn
from tests.services import RedisServer, queue_signed, run_aksdns, stack_env, thread_job
from workers import thread_files

CHANNEL = "C0INCIDENT"


class Recorder:
    """An HTTP server on loopback that records every request's headers and answers a capture."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                recorder.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                body = b"\xd4\xc3\xb2\xa1" + b"\x00" * 20  # an empty pcap
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    recorder = Recorder()
    try:
        yield recorder
    finally:
        recorder.stop()


def test_a_redirect_to_another_host_never_receives_the_token(
    redis_server: RedisServer, slack: SlackStandIn, elsewhere: Recorder, tmp_path: Path
) -> None:
    cluster = "tok" + str(int(time.time() * 1000) % 10**8)
    spec = thread_job(slack, "analyze", cluster, CHANNEL)
    assert spec.thread is not None
    parent = spec.thread.thread_ts
    slack.state.add_user_file(CHANNEL, parent, "dns-cap1.pcap", b"\xd4\xc3\xb2\xa1" + b"\x00" * 20)
    slack.state.faults.redirect_files_to = elsewhere.url
    env = stack_env(redis_server.url, slack, cluster, AKSDNS_JOB_TIMEOUT="30")
    with run_aksdns(["worker"], env, tmp_path / "worker.log"):
        queue_signed(redis_server.client(), spec)
        ended = ("could not finish", "done in", "failed")
        assert slack.wait_for(lambda s: any(e in m.text for m in s.messages for e in ended), timeout=40), (
            (tmp_path / "worker.log").read_text()[-3000:]
        )
    assert [c for c in slack.state.calls if c[1] == "file.download"]  # the download was tried
    assert [r.get("authorization") for r in elsewhere.requests] == []  # nothing, no token, reached the other host
    assert any("not following" in m.text for m in slack.state.messages)
    assert "refusing a file redirect to another host" in (tmp_path / "worker.log").read_text()


def test_redirects_are_followed_only_within_slacks_file_origins(elsewhere: Recorder, tmp_path: Path) -> None:
    """Within the allowed origin the token goes along; a hop to another origin stops before it is sent."""
    second = Recorder()
    try:
        # `second` redirects to `elsewhere`: allowed origins are `second`'s only.
        class Redirect(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                second.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                target = "/files/final" if self.path == "/files/first" else elsewhere.url + "/stolen"
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

        second.server.RequestHandlerClass = Redirect
        origins = thread_files.allowed_download_origins(second.url + "/api/")
        with pytest.raises(thread_files.AksDnsError, match="not following"):
            thread_files._download(second.url + "/files/first", tmp_path / "x.pcap", "xoxb-secret", origins)
        assert [r["path"] for r in second.requests] == ["/files/first", "/files/final"]
        assert all(r["authorization"] == "Bearer xoxb-secret" for r in second.requests)
        assert elsewhere.requests == []
    finally:
        second.stop()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/dns.pcap", True),
        ("http://files.slack.com/files-pri/T1-F1/dns.pcap", False),  # never a downgrade to http
        ("https://files.slack.com:8443/files-pri/T1-F1/dns.pcap", False),
        ("https://files.slack.com.evil.example/x", False),
        ("https://evil.example/files.slack.com", False),
        ("ftp://files.slack.com/x", False),
        ("https://slack.com/api/", True),  # the configured API origin
    ],
)
def test_only_slacks_https_file_host_is_allowed(url: str, allowed: bool) -> None:
    origins = thread_files.allowed_download_origins("https://slack.com/api/")
    assert (thread_files._origin(url) in origins) is allowed
