"""HTTP mode: POST /slack/events (Bolt, signature-verified) and GET /healthz, as WSGI.

Bolt's built-in development server resets connections under a burst of commands, so the
WSGI app is served by gunicorn's threaded workers instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.priority import RequestGate

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(app: App, gate: RequestGate | None = None) -> WsgiApp:
    """Route /slack/events to Bolt and answer /healthz; 404 elsewhere.

    ``gate`` counts Slack requests in flight, so follow-up work can let acks go first.
    """
    handler = SlackRequestHandler(app)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == "/slack/events" and method == "POST":
            if gate is None:
                result: Iterable[bytes] = handler(environ, start_response)
                return result
            gate.enter()
            try:
                # Bolt returns a list: the whole answer is built before the gate opens.
                return list(handler(environ, start_response))
            finally:
                gate.exit()
        if path == "/healthz" and method == "GET":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return application


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Runs a WSGI app factory in gunicorn's threaded workers (one app per worker)."""

    def __init__(self, factory: Callable[[], WsgiApp], *, host: str, port: int, workers: int, threads: int) -> None:
        self.factory = factory
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 30,
            "graceful_timeout": 10,
            "keepalive": 5,
            "backlog": 2048,
            "accesslog": None,
            "preload_app": False,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        return self.factory()
