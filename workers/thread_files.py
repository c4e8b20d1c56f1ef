"""Fetch the capture files users uploaded to a thread, for `analyze`."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from aksdns.errors import AksDnsError
from aksdns.jobspec import SlackThread

log = logging.getLogger(__name__)
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz")
MAX_FILE_BYTES = 2 * 1024**3
MAX_FILES = 20
DOWNLOAD_TIMEOUT_S = 60


def allowed_download_hosts(api_url: str) -> frozenset[str]:
    """The bot token is only ever sent to Slack's own hosts (or the configured stand-in)."""
    return frozenset({"files.slack.com", "slack.com", urlparse(api_url).hostname or ""} - {""})


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
    hosts = allowed_download_hosts(api_url)
    out: list[Path] = []
    for index, meta in enumerate(captures[:MAX_FILES]):
        url = str(meta.get("url_private_download") or meta.get("url_private") or "")
        if urlparse(url).scheme not in {"https", "http"} or urlparse(url).hostname not in hosts:
            log.warning(
                "refusing to download from an unexpected host", extra={"host": urlparse(url).hostname}
            )
            continue
        if int(meta.get("size") or 0) > MAX_FILE_BYTES:
            raise AksDnsError(f"{meta.get('name')} is larger than {MAX_FILE_BYTES // 1024**3} GiB")
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(meta.get("name")))
        target = workdir / f"{index:02d}-{safe}"
        _download(url, target, token)
        out.append(target)
    if not out:
        raise AksDnsError("The capture files of this thread could not be downloaded.")
    return out


def _download(url: str, target: Path, token: str) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    written = 0
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, target.open("wb") as out:  # noqa: S310
        while chunk := response.read(1 << 20):
            written += len(chunk)
            if written > MAX_FILE_BYTES:
                raise AksDnsError(f"{target.name} is larger than {MAX_FILE_BYTES // 1024**3} GiB")
            out.write(chunk)
