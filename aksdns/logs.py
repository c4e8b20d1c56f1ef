"""Structured (JSON-lines) logging, configured by the composition roots."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# Slack tokens have well-known prefixes; anything that looks like one is masked even if a
# careless caller logs it (https://api.slack.com/authentication/token-types).
_TOKEN_RE = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")
_URL_PASSWORD_RE = re.compile(r"(rediss?://[^:/@\s]*:)[^@\s]+@")


def scrub(text: str) -> str:
    """Mask secrets (Slack tokens, passwords in Redis URLs) in a log line."""
    return _URL_PASSWORD_RE.sub(r"\1***@", _TOKEN_RE.sub("xox*-***", text))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and structured extras."""

    RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in self.RESERVED and not key.startswith("_"):
                out[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Send every logger's records, as JSON lines, to stderr (or ``stream``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
