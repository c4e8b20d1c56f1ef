"""A local stand-in for Slack's Web API, for tests and the demo (`SLACK_API_URL`).

It records every call, keeps channels and threads the way Slack would (chat.postMessage,
chat.update, chat.postEphemeral, files_upload_v2's three steps, conversations.replies,
usergroups.users.list, chat.getPermalink), checks the bearer token, and prints a thread
as text.  Slack itself cannot run here; everything else in a test is real.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

MAX_BODY = 256 * 1024 * 1024
log = logging.getLogger(__name__)


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    blocks: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    edits: int = 0
    ephemeral_to: str | None = None


@dataclass
class StoredFile:
    id: str
    name: str
    title: str
    content: bytes = b""


@dataclass
class Faults:
    """What the stand-in answers instead of the real thing, as a bad day at Slack would (tests set it).

    ``fail(kind, count, methods)`` makes the next ``count`` calls of ``methods`` (all when
    empty) answer ``kind``: "429" (with Retry-After), "500", "503", or "hang" (no answer for
    ``hang_s``, then the connection closes). ``outage(kind)`` fails every call until
    ``clear()``. ``redirect_files_to`` makes file downloads answer 302 to that base URL.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    script: list[list[Any]] = field(default_factory=list)  # [kind, calls left, methods]
    down: str = ""
    retry_after: int = 1
    hang_s: float = 30.0
    redirect_files_to: str = ""

    def fail(self, kind: str, count: int = 1, methods: frozenset[str] = frozenset()) -> None:
        with self.lock:
            self.script.append([kind, count, methods])

    def outage(self, kind: str) -> None:
        with self.lock:
            self.down = kind

    def clear(self) -> None:
        with self.lock:
            self.down, self.script = "", []

    def take(self, method: str) -> str:
        """The fault this call of ``method`` meets, or ""."""
        with self.lock:
            if self.down:
                return self.down
            for entry in self.script:
                kind, left, methods = entry
                if left > 0 and (not methods or method in methods):
                    entry[1] -= 1
                    return str(kind)
            return ""


class SlackState:
    """Channels, messages and files; every method is thread-safe."""

    def __init__(self, token: str, bot_user: str = "U0AKSDNS", app_token: str = "") -> None:
        self.token = token
        self.app_token = app_token
        self.socket_url = ""  # set when the Socket Mode server runs
        self.bot_user = bot_user
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self.files: dict[str, StoredFile] = {}
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.usergroups: dict[str, list[str]] = {}
        self._ts = itertools.count(1)
        self.changed = threading.Condition(self.lock)
        self.base_url = ""
        self.faults = Faults()
        self.not_in: set[str] = set()  # channels the bot was not invited to

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def record(self, method: str, args: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append((time.time(), method, args))
            self.changed.notify_all()

    def find(self, channel: str, ts: str) -> Message | None:
        for message in self.messages:
            if message.channel == channel and message.ts == ts and message.ephemeral_to is None:
                return message
        return None

    def thread(self, channel: str, ts: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.channel == channel and (m.ts == ts or m.thread_ts == ts)]

    def add_user_file(self, channel: str, thread_ts: str, name: str, content: bytes, user: str = "U0HUMAN") -> str:
        """A person uploads a file into a thread (for `analyze`)."""
        with self.lock:
            file_id = f"F{len(self.files) + 1:08d}"
            self.files[file_id] = StoredFile(file_id, name, name, content)
            meta = self._file_meta(self.files[file_id])
            self.messages.append(Message(channel, self.next_ts(), user, "", thread_ts, files=[meta]))
            self.changed.notify_all()
            return file_id

    def _file_meta(self, f: StoredFile) -> dict[str, Any]:
        return {
            "id": f.id,
            "name": f.name,
            "title": f.title,
            "size": len(f.content),
            "url_private": f"{self.base_url}files/{f.id}/{f.name}",
            "url_private_download": f"{self.base_url}files/{f.id}/{f.name}",
        }

    # -- Web API methods ----------------------------------------------------------------------
    def call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        with self.lock:
            result: dict[str, Any] = handler(args)
            self.changed.notify_all()
            return result

    def api_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": self.bot_user, "bot_id": "B0AKSDNS", "team_id": "T0LOCAL", "user": "aksdns"}

    def api_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_in:
            return {"ok": False, "error": "not_in_channel"}
        blocks = _json_arg(args.get("blocks"))
        if len(blocks) > 50:
            return {"ok": False, "error": "invalid_blocks"}
        message = Message(
            channel, self.next_ts(), self.bot_user, str(args.get("text", "")), _opt(args.get("thread_ts")), blocks
        )
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": {"text": message.text}}

    def api_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.find(str(args.get("channel", "")), str(args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.text = str(args.get("text", message.text))
        if "blocks" in args:
            message.blocks = _json_arg(args.get("blocks"))
        message.edits += 1
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def api_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        message = Message(
            str(args.get("channel", "")),
            self.next_ts(),
            self.bot_user,
            str(args.get("text", "")),
            _opt(args.get("thread_ts")),
            ephemeral_to=str(args.get("user", "")),
        )
        self.messages.append(message)
        return {"ok": True, "message_ts": message.ts}

    def api_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("message_ts", ""))
        return {"ok": True, "permalink": f"https://slack.example/archives/{channel}/p{ts.replace('.', '')}"}

    def api_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{len(self.files) + 1:08d}"
        name = str(args.get("filename", "file"))
        self.files[file_id] = StoredFile(file_id, name, name)
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.base_url}upload/{file_id}"}

    def api_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = _json_arg(args.get("files"))
        channel, thread_ts = _opt(args.get("channel_id")), _opt(args.get("thread_ts"))
        metas = []
        for entry in entries:
            stored = self.files.get(str(entry.get("id")))
            if stored is None:
                return {"ok": False, "error": "file_not_found"}
            stored.title = str(entry.get("title") or stored.name)
            metas.append(self._file_meta(stored))
        if channel:
            self.messages.append(Message(channel, self.next_ts(), self.bot_user, "", thread_ts, files=metas))
        return {"ok": True, "files": metas}

    def api_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        out = [
            {"ts": m.ts, "user": m.user, "text": m.text, "thread_ts": m.thread_ts, "files": m.files}
            for m in self.messages
            if m.channel == channel and (m.ts == ts or m.thread_ts == ts) and m.ephemeral_to is None
        ]
        return {"ok": True, "messages": out, "has_more": False}

    def api_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_url:
            return {"ok": False, "error": "socket_mode_not_enabled"}
        return {"ok": True, "url": self.socket_url}

    def api_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": self.usergroups.get(str(args.get("usergroup", "")), [])}


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _json_arg(value: Any) -> list[dict[str, Any]]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _handler(state: SlackState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(length) if length else b""

        def _authorized(self, args: dict[str, Any], method: str = "") -> bool:
            header = self.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ").strip() or str(args.get("token", ""))
            if method == "apps.connections.open":  # the one method an app-level token calls
                return bool(state.app_token) and token == state.app_token
            return token == state.token

        def _fault(self, method: str, kind: str) -> None:
            state.record(method, {"fault": kind})
            if kind == "hang":
                time.sleep(state.faults.hang_s)
                self.close_connection = True
                return
            body = json.dumps({"ok": False, "error": "ratelimited" if kind == "429" else "fatal_error"}).encode()
            self.send_response(int(kind))
            if kind == "429":
                self.send_header("Retry-After", str(state.faults.retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path.startswith("/files/"):
                authorization = bool(self.headers.get("Authorization"))
                state.record("file.download", {"path": url.path, "authorization": authorization})
                if state.faults.redirect_files_to:
                    self.send_response(302)
                    self.send_header("Location", state.faults.redirect_files_to + url.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not self._authorized({}):
                    self._reply(403, b"forbidden", "text/plain")
                    return
                file_id = url.path.split("/")[2]
                stored = state.files.get(file_id)
                if stored is None:
                    self._reply(404, b"not found", "text/plain")
                else:
                    self._reply(200, stored.content, "application/octet-stream")
                return
            self._api(url.path, dict((k, v[-1]) for k, v in parse_qs(url.query).items()))

        def do_POST(self) -> None:
            url = urlparse(self.path)
            try:
                body = self._body()
            except ValueError:
                self._reply(413, b"too large", "text/plain")
                return
            if url.path.startswith("/upload/"):
                stored = state.files.get(url.path.split("/")[2])
                if stored is None:
                    self._reply(404, b"not found", "text/plain")
                    return
                stored.content = _multipart_payload(body, self.headers.get("Content-Type", ""))
                state.record("upload", {"file": stored.id, "bytes": len(stored.content)})
                self._reply(200, b"OK - " + str(len(stored.content)).encode(), "text/plain")
                return
            args = dict((k, v[-1]) for k, v in parse_qs(url.query).items())
            content_type = self.headers.get("Content-Type", "")
            if "application/json" in content_type:
                try:
                    loaded = json.loads(body or b"{}")
                except ValueError:
                    loaded = {}
                args.update(loaded if isinstance(loaded, dict) else {})
            else:
                args.update((k, v[-1]) for k, v in parse_qs(body.decode("utf-8", "replace")).items())
            self._api(url.path, args)

        def _api(self, path: str, args: dict[str, Any]) -> None:
            if not path.startswith("/api/"):
                self._reply(404, b'{"ok":false,"error":"not_found"}')
                return
            method = path[len("/api/") :]
            fault = state.faults.take(method)
            if fault:
                self._fault(method, fault)
                return
            state.record(method, {k: v for k, v in args.items() if k != "token"})
            if not self._authorized(args, method):
                self._reply(200, b'{"ok":false,"error":"invalid_auth"}')
                return
            self._reply(200, json.dumps(state.call(method, args)).encode())

    return Handler


def _multipart_payload(body: bytes, content_type: str) -> bytes:
    """files_upload_v2 posts the raw bytes; multipart forms are unwrapped to the first part."""
    if "multipart/form-data" not in content_type or "boundary=" not in content_type:
        return body
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, sep, payload = part.partition(b"\r\n\r\n")
        if sep and b"filename=" in head:
            return payload.removesuffix(b"\r\n")
    return body


class SocketModeServer:
    """Slack's Socket Mode end: a WebSocket that sends envelopes and collects their acks.

    Protocol (https://api.slack.com/apis/socket-mode): on connect the server says
    ``{"type": "hello"}``; each event arrives as ``{"envelope_id", "type", "payload",
    "accepts_response_payload"}`` and the app answers ``{"envelope_id", "payload"?}``.
    """

    def __init__(self, state: SlackState, host: str = "127.0.0.1") -> None:
        from websockets.sync.server import serve

        self.state = state
        self.outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: dict[str, dict[str, Any]] = {}
        self.connected = threading.Event()
        self.server = serve(self._handle, host, 0)
        port = self.server.socket.getsockname()[1]
        state.socket_url = f"ws://{host}:{port}/link"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, connection: Any) -> None:
        connection.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0AKSDNS"}}))
        self.connected.set()
        stop = threading.Event()

        def receive() -> None:
            try:
                for raw in connection:
                    message = json.loads(raw)
                    if "envelope_id" in message:
                        with self.state.lock:
                            self.acks[str(message["envelope_id"])] = message
                            self.state.changed.notify_all()
            except Exception as exc:  # the client went away: end this connection
                log.debug("socket mode connection closed: %s", type(exc).__name__)
            finally:
                stop.set()

        threading.Thread(target=receive, daemon=True).start()
        while not stop.is_set():
            try:
                envelope = self.outbox.get(timeout=0.2)
            except queue.Empty:
                continue
            connection.send(json.dumps(envelope))

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver one envelope (e.g. ``slash_commands``); returns its id."""
        envelope_id = f"env-{next(self.state._ts)}"
        self.outbox.put(
            {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        )
        return envelope_id

    def stop(self) -> None:
        self.server.shutdown()


class SlackStandIn:
    """Run the stand-in on a loopback port in a background thread."""

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0, *, app_token: str = "") -> None:
        self.state = SlackState(token, app_token=app_token)
        self.socket_mode: SocketModeServer | None = SocketModeServer(self.state, host) if app_token else None
        self.server = ThreadingHTTPServer((host, port), _handler(self.state))
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self.state.base_url = self.url
        self.api_url = self.url + "api/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SlackStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.socket_mode:
            self.socket_mode.stop()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        """Block until ``predicate(state)`` is true (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        with self.state.changed:
            while not predicate(self.state):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.state.changed.wait(min(left, 0.5))
        return True

    def transcript(self, channel: str, ts: str) -> str:
        """The thread as a person would read it."""
        return render_thread(self.state.thread(channel, ts), self.state)


def render_thread(messages: list[Message], state: SlackState) -> str:
    lines: list[str] = []
    for index, message in enumerate(messages):
        who = "aksdns" if message.user == state.bot_user else message.user
        indent = "" if index == 0 else "    │ "
        edited = " (edited)" if message.edits else ""
        head = f"{indent}[{who}]{edited} "
        body = message.text if not message.blocks else blocks_to_text(message.blocks)
        if message.ephemeral_to:
            head += f"(only visible to {message.ephemeral_to}) "
        text_lines = (body or "").splitlines() or [""]
        lines.append(head + text_lines[0])
        lines += [indent + "  " + t for t in text_lines[1:]]
        for f in message.files:
            lines.append(f"{indent}  📎 {f.get('name')} ({f.get('size')} bytes)")
    return "\n".join(lines)


def blocks_to_text(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in {"header", "section", "context"}:
            text = block.get("text") or {}
            if isinstance(text, dict) and text.get("text"):
                out.append(str(text["text"]).replace("```", ""))
            for element in block.get("elements", []) or []:
                if isinstance(element, dict) and element.get("text"):
                    out.append(str(element["text"]))
        elif kind == "actions":
            buttons = [str((e.get("text") or {}).get("text", "")) for e in block.get("elements", [])]
            out.append("[ " + " ] [ ".join(buttons) + " ]")
        elif kind == "divider":
            out.append("―" * 20)
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aksdns standin", description="local Slack Web API stand-in")
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--token", default="xoxb-local-standin")
    args = parser.parse_args(argv)
    standin = SlackStandIn(args.token, port=args.port).start()
    print(f"Slack stand-in at {standin.api_url} (token {args.token[:5]}…); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
    return 0
