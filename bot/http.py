"""HTTP mode: POST /slack/events (guarded, then Bolt) and GET /healthz, as WSGI under gunicorn.

Bolt's built-in development server resets connections under a burst of commands, so the
WSGI app is served by gunicorn's threaded workers instead, with two defences of our own:

- :class:`bot.guard.RequestGuard` checks size, headers, signature and shape of every POST on
  bounded bytes before Bolt sees it;
- :class:`SlowClientThreadWorker` keeps a connection on gunicorn's poller, off the worker threads,
  until its request headers (and the start of its body) have arrived, so slow or silent
  connections (slowloris) cannot take the threads that answer Slack; a connection gets
  ``HEADER_DEADLINE_S`` for that.

A thread-per-request server cannot outlast every flood: in production HTTP mode belongs behind
an ingress that buffers whole requests (README), or use Socket Mode.
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import TConn, ThreadWorker
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.guard import SIGNATURE_KEY, SIGNED, Refusal, RequestGuard, SignedRequest
from bot.priority import RequestGate

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

HEADER_DEADLINE_S = 10.0  # from accept until the headers (and the body's start) are in
PEEK_LIMIT = 48 * 1024  # headers larger than this are refused; body bytes waited for, at most
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,12})[ \t]*\r\n", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect:[ \t]*100-continue", re.IGNORECASE)
_HEADERS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                      b"Content-Length: 0\r\n\r\n")


def wsgi_app(app: App, gate: RequestGate | None = None, guard: RequestGuard | None = None) -> WsgiApp:
    """Route /slack/events (through ``guard``) to Bolt and answer /healthz; 404 elsewhere.

    ``gate`` counts Slack requests in flight, so follow-up work can let acks go first.
    """
    handler = SlackRequestHandler(app)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == "/slack/events" and method == "POST":
            if guard is not None:
                checked = guard.check(environ)
                if isinstance(checked, Refusal):
                    body = checked.status.encode() + b"\n"
                    start_response(checked.status, [("Content-Type", "text/plain"),
                                                    ("Content-Length", str(len(body)))])
                    return [body]
                environ = checked
            # Follow-up work started while Bolt handles this request sees its signature (replays).
            token = SIGNED.set(SignedRequest(environ[SIGNATURE_KEY]) if SIGNATURE_KEY in environ else None)
            if gate is not None:
                gate.enter()
            try:
                # Bolt returns a list: the whole answer is built before the gate opens.
                return list(handler(environ, start_response))
            finally:
                if gate is not None:
                    gate.exit()
                SIGNED.reset(token)
        if path == "/healthz" and method == "GET":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return application


def request_ready(head: bytes) -> bool | None:
    """True when ``head`` (bytes received so far) holds the headers and the body's start;
    None when the headers are too large to wait for; False to keep waiting (pure)."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return None if len(head) >= PEEK_LIMIT else False
    if _EXPECT_CONTINUE.search(head, 0, end + 2):
        return True  # the client sends its body only after gunicorn's "100 Continue"
    match = _CONTENT_LENGTH.search(head, 0, end + 2)
    length = int(match.group(1)) if match else 0
    wanted = min(end + 4 + length, PEEK_LIMIT)  # larger bodies are read with a deadline (bot.guard)
    return len(head) >= wanted


class SlowClientThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker that hands a connection to a thread only once its request is in.

    gthread gives each new connection a thread that blocks reading its headers; a few dozen
    connections that send slowly (or nothing) take every thread. Here the main loop keeps a new
    connection on its poller and peeks at it (no read, no block) each time it becomes readable,
    until the headers and the first ``PEEK_LIMIT`` bytes of the body are in; then a thread gets
    it. A connection still incomplete ``HEADER_DEADLINE_S`` after it was accepted is closed.
    """

    def accept(self, listener: Any) -> None:
        if self.cfg.is_ssl:  # TLS bytes cannot be peeked at; aksdns serves plain HTTP behind its ingress
            super().accept(listener)
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        conn.timeout = time.monotonic() + HEADER_DEADLINE_S
        if not self._dispatch_if_ready(conn):
            self.pending_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))

    def on_pending_socket_readable(self, conn: Any, client: Any) -> None:
        if self._dispatch_if_ready(conn):
            self.poller.unregister(client)
            self.pending_conns.remove(conn)

    def _dispatch_if_ready(self, conn: Any) -> bool:
        """Hand ``conn`` to a thread (or close it) when its request is in; False to keep waiting."""
        try:
            head = conn.sock.recv(PEEK_LIMIT, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            head = b""
        ready = request_ready(head) if head else None
        if ready is False:
            return False
        if ready:
            conn.data_ready = True  # gthread would otherwise block a thread waiting for data
            self.enqueue_req(conn)
            return True
        if head:  # headers larger than anything Slack sends
            with contextlib.suppress(OSError):
                conn.sock.send(_HEADERS_TOO_LARGE)
        self.nr_conns -= 1
        conn.close()
        return True

    def murder_pending(self) -> None:
        """Close connections whose request did not arrive by their deadline (set per connection)."""
        now = time.monotonic()
        for conn in [c for c in self.pending_conns if c.timeout <= now]:
            self.pending_conns.remove(conn)
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            conn.close()


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Runs a WSGI app factory in gunicorn's threaded workers (one app per worker)."""

    def __init__(self, factory: Callable[[], WsgiApp], *, host: str, port: int, workers: int, threads: int) -> None:
        self.factory = factory
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": f"{SlowClientThreadWorker.__module__}.{SlowClientThreadWorker.__qualname__}",
            "threads": threads,
            "timeout": 30,
            "graceful_timeout": 10,
            # One request per connection: every request then passes the peek above (a kept-alive
            # connection would go straight to a thread). Slack and ingresses reconnect cheaply.
            "keepalive": 0,
            "backlog": 2048,
            "limit_request_line": 4094,
            "limit_request_fields": 50,
            "accesslog": None,
            "preload_app": False,
            # gunicorn >= 25 opens a control socket at a fixed per-user path; a second bot on the
            # host would take it over. aksdns never uses it.
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        return self.factory()
