"""Signed job specs: Redis access alone cannot make a worker run a job the bot did not queue.

The bot signs each job's JSON payload with HMAC-SHA256 under a key it shares with the workers
(``AKSDNS_JOB_SIGNING_KEY``); a worker runs a payload only when the signature matches, the RQ
job id is the spec's id, and the payload was issued recently.  The key itself never travels:
not in payloads, not in logs (``Settings.redacted``).

Pure functions; the caller passes the key and the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aksdns.errors import AksDnsError

SIGNATURE_FIELD = "signature"
ISSUED_FIELD = "issued_at"
VERSION = "v1"
MIN_KEY_LENGTH = 32
# A job older than this is not run (a worker may be down for a while, but not for days);
# its thread is told so, since its signature is genuine.
MAX_AGE_S = 24 * 3600
MAX_CLOCK_SKEW_S = 300


class UnsignedJob(Exception):
    """A payload whose signature is missing or wrong: never run, never answered in a thread."""


class StaleJob(AksDnsError):
    """A genuine job that waited too long in the queue: refused, and its thread is told."""


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot sign jobs, or None when it can."""
    if not key:
        return "AKSDNS_JOB_SIGNING_KEY is not set (the same random key on the bot and every worker)"
    if len(key) < MIN_KEY_LENGTH:
        return f"AKSDNS_JOB_SIGNING_KEY is shorter than {MIN_KEY_LENGTH} characters"
    return None


def _canonical(payload: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(payload: dict[str, Any], key: str) -> str:
    return f"{VERSION}=" + hmac.new(key.encode(), _canonical(payload), hashlib.sha256).hexdigest()


def sign(payload: dict[str, Any], key: str, *, now: float) -> dict[str, Any]:
    """``payload`` with its issue time and signature added (a new dict)."""
    if key_problem(key):
        raise AksDnsError("jobs cannot be signed: " + str(key_problem(key)))
    signed = {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    signed[ISSUED_FIELD] = int(now)
    signed[SIGNATURE_FIELD] = _digest(signed, key)
    return signed


def verify(payload: object, key: str, *, job_id: str | None = None) -> dict[str, Any]:
    """The payload when its signature is genuine (and it belongs to ``job_id``); UnsignedJob otherwise."""
    if key_problem(key):
        raise UnsignedJob("this worker has no job signing key")
    if not isinstance(payload, dict):
        raise UnsignedJob("the job's argument is not a JSON object")
    claimed = payload.get(SIGNATURE_FIELD)
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.encode(), _digest(payload, key).encode()):
        raise UnsignedJob("the job spec's signature is missing or wrong")
    if job_id is not None and payload.get("id") != job_id:
        raise UnsignedJob("the job spec belongs to another job id")
    return payload


def check_age(payload: dict[str, Any], *, now: float, max_age_s: float = MAX_AGE_S) -> None:
    """Refuse a genuine payload issued too long ago (or implausibly in the future)."""
    issued = payload.get(ISSUED_FIELD)
    if not isinstance(issued, int) or isinstance(issued, bool):
        raise UnsignedJob("the job spec carries no issue time")
    if issued > now + MAX_CLOCK_SKEW_S:
        raise UnsignedJob("the job spec was issued in the future")
    if now - issued > max_age_s:
        hours = int(max_age_s // 3600)
        raise StaleJob(f"it waited more than {hours} h in the queue, so it was not run; run it again if still needed")
