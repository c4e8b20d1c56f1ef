"""Riding out a Redis restart: wait, bounded, until Redis answers again.

redis-py reconnects by itself on the next command (and retries a failed one a few times over about
a second); a restart that takes longer needs the caller to wait. Both sides do, for what must not be
lost: the bot before it says "not queued", the worker before it gives up recording a result.
"""

from __future__ import annotations

import time

import redis

POLL_S = 0.5


def wait_for_redis(connection: redis.Redis, timeout_s: float) -> bool:
    """True as soon as Redis answers a PING; False when it has not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection.ping()
            return True
        except redis.RedisError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
