"""A large file from the worker's disk into a Slack thread, streamed, within Slack's limits.

``files_upload_v2`` of slack_sdk reads the whole file into memory; a capture may be hundreds of MiB,
so this does the same three documented steps itself and streams the body from disk
(https://api.slack.com/messaging/files#uploading_files): ``files.getUploadURLExternal`` (name and
length), a POST of the bytes to the URL it returns, ``files.completeUploadExternal`` (channel, thread,
title). Files over :data:`COMPRESS_OVER` are gzip-compressed first (Wireshark and tshark open
``.pcapng.gz`` as they are); a file still over Slack's 1 GB limit is not sent and the caller says so.
"""

from __future__ import annotations

import gzip
import shutil
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aksdns.errors import AksDnsError

SLACK_MAX_BYTES = 1_000_000_000  # Slack's limit for one file
COMPRESS_OVER = 8 * 1024 * 1024
UPLOAD_TIMEOUT_S = 300


class UploadRefused(AksDnsError):
    """Slack did not take the file (too large, an API error)."""


@dataclass(frozen=True)
class Prepared:
    path: Path
    filename: str
    compressed: bool
    size: int


def prepare(path: Path, filename: str, *, compress_over: int = COMPRESS_OVER) -> Prepared:
    """The file as it will be sent: compressed when large (streamed, bounded memory)."""
    size = path.stat().st_size
    if size <= compress_over:
        return Prepared(path, filename, False, size)
    gz = path.with_name(path.name + ".gz")
    with path.open("rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return Prepared(gz, filename + ".gz", True, gz.stat().st_size)


def stream_upload(client: Any, channel: str, thread_ts: str, prepared: Prepared, title: str,
                  allowed: Callable[[str], bool]) -> str:
    """Send the file to the thread; returns the file id. UploadRefused when Slack will not take it.

    ``allowed(url)`` says whether Slack's upload URL may get the bytes (workers.thread_files' origins)."""
    if prepared.size > SLACK_MAX_BYTES:
        raise UploadRefused(f"{prepared.filename} is {prepared.size / 1e9:.1f} GB, over Slack's 1 GB limit")
    try:
        ticket = client.files_getUploadURLExternal(filename=prepared.filename, length=prepared.size)
        url, file_id = str(ticket["upload_url"]), str(ticket["file_id"])
    except Exception as exc:  # slack_sdk raises several types; the thread gets one line
        raise UploadRefused(f"Slack refused the upload of {prepared.filename}: {_why(exc)}") from None
    if not allowed(url):  # the bytes go only to Slack's upload host (or the configured API's origin)
        raise UploadRefused(f"Slack gave an upload address on an unexpected host ({urlparse(url).hostname})")
    with prepared.path.open("rb") as body:
        request = urllib.request.Request(  # noqa: S310 - Slack's own upload URL, host checked above
            url, data=body, method="POST",
            headers={"Content-Length": str(prepared.size), "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(request, timeout=UPLOAD_TIMEOUT_S) as response:  # noqa: S310
                if response.status != 200:
                    raise UploadRefused(f"the upload of {prepared.filename} failed (HTTP {response.status})")
        except OSError as exc:
            raise UploadRefused(f"the upload of {prepared.filename} failed: {type(exc).__name__}") from None
    try:
        client.files_completeUploadExternal(files=[{"id": file_id, "title": title}], channel_id=channel,
                                            thread_ts=thread_ts)
    except Exception as exc:
        raise UploadRefused(f"Slack did not share {prepared.filename} in the thread: {_why(exc)}") from None
    return file_id


def _why(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response.get("error", type(exc).__name__))
        except AttributeError:
            pass
    return type(exc).__name__
