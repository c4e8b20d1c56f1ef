"""Fetch the capture files users uploaded to a thread, for `analyze`."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from aksdns.errors import AksDnsError
from aksdns.jobspec import SlackThread

log = logging.getLogger(__name__)
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz")
MAX_FILE_BYTES = 2 * 1024**3
MAX_FILES = 20
DOWNLOAD_TIMEOUT_S = 60


SLACK_FILE_HOST = "files.slack.com"  # where url_private and url_private_download point
SLACK_UPLOAD_HOST = "uploads.slack.com"  # where files.getUploadURLExternal's upload_url may point
MAX_REDIRECTS = 3
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

Origin = tuple[str, str, int]


def _origin(url: str) -> Origin | None:
    parts = urlparse(url)
    try:
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in {"https", "http"} or not host:
        return None
    return scheme, host, port or (443 if scheme == "https" else 80)


def allowed_download_origins(api_url: str) -> frozenset[Origin]:
    """The bot token is only ever sent to Slack's file host over HTTPS, or to the configured API's origin.

    The configured API origin is Slack's own (https://slack.com) in production; tests and the
    demo point it at the local stand-in, whose origin (http on loopback) is then the only
    plain-HTTP one allowed.
    """
    origins = {("https", SLACK_FILE_HOST, 443)}
    api = _origin(api_url)
    if api is not None:
        origins.add(api)
    return frozenset(origins)


def allowed_upload_url(api_url: str) -> Callable[[str], bool]:
    """Where a file's bytes may be sent (`capture`'s streamed upload): Slack's upload hosts over HTTPS,
    or the configured API's origin (the stand-in on loopback in tests and the demo)."""
    origins = allowed_download_origins(api_url) | {("https", SLACK_UPLOAD_HOST, 443)}
    return lambda url: _origin(url) in origins


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib keeps the Authorization header across hosts and from https to http: follow nothing."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError and _download decides


def fetch_thread_captures(
    client: WebClient,
    thread: SlackThread,
    workdir: Path,
    *,
    token: str,
    api_url: str,
    wanted: tuple[str, ...] = (),
) -> list[Path]:
    """Download the thread's capture files (all, or those named in ``wanted``)."""
    try:
        replies = client.conversations_replies(channel=thread.channel, ts=thread.thread_ts, limit=200)
    except (SlackApiError, SlackClientError, OSError) as exc:
        raise AksDnsError("Could not list the files of this thread (is the bot in this channel?).") from exc
    messages: list[dict[str, Any]] = list(replies.get("messages") or [])
    files = [f for m in messages for f in m.get("files") or []]
    captures = [f for f in files if str(f.get("name", "")).lower().endswith(CAPTURE_SUFFIXES)]
    if wanted:
        captures = [f for f in captures if f.get("name") in wanted]
    if not captures:
        raise AksDnsError("No capture file (.pcap, .pcapng) in this thread: upload one, then run analyze.")
    origins = allowed_download_origins(api_url)
    out: list[Path] = []
    for index, meta in enumerate(captures[:MAX_FILES]):
        url = str(meta.get("url_private_download") or meta.get("url_private") or "")
        if _origin(url) not in origins:
            log.warning("refusing to download from an unexpected host", extra={"host": urlparse(url).hostname})
            continue
        if int(meta.get("size") or 0) > MAX_FILE_BYTES:
            raise AksDnsError(f"{meta.get('name')} is larger than {MAX_FILE_BYTES // 1024**3} GiB")
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(meta.get("name")))
        target = workdir / f"{index:02d}-{safe}"
        _download(url, target, token, origins)
        out.append(target)
    if not out:
        raise AksDnsError("The capture files of this thread could not be downloaded.")
    return out


def _download(url: str, target: Path, token: str, origins: frozenset[Origin]) -> None:
    """GET ``url`` with the bot token; redirects are followed only within ``origins``."""
    opener = urllib.request.build_opener(_NoRedirects)
    for _ in range(MAX_REDIRECTS + 1):
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
        try:
            with opener.open(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                _save(response, target)
                return
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.code in REDIRECT_CODES else None
            exc.close()
            if location is None:
                raise AksDnsError(f"Slack answered HTTP {exc.code} for {target.name}") from None
        except OSError as exc:  # refused, reset, timed out: one line, not a traceback
            raise AksDnsError(f"could not download {target.name} from Slack ({type(exc).__name__})") from None
        url = urljoin(url, location)
        if _origin(url) not in origins:
            log.warning("refusing a file redirect to another host", extra={"host": urlparse(url).hostname})
            raise AksDnsError(f"Slack redirected the download of {target.name} elsewhere; not following")
    raise AksDnsError(f"too many redirects downloading {target.name}")


def _save(response: Any, target: Path) -> None:
    written = 0
    with target.open("wb") as out:
        while chunk := response.read(1 << 20):
            written += len(chunk)
            if written > MAX_FILE_BYTES:
                raise AksDnsError(f"{target.name} is larger than {MAX_FILE_BYTES // 1024**3} GiB")
            out.write(chunk)
