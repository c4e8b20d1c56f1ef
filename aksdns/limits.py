"""Per-user and per-channel rate limits, with an answer a person can act on.

A sliding window in Redis (a sorted set of command times per user and per channel, checked and
added to in one Lua script, so concurrent bot processes count together). A command over a limit
is not queued; its author is told which limit and when to try again. A limiter that cannot reach
Redis lets the command through: the queue's own check answers that Redis is down.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import redis

from aksdns.keys import rate_key

log = logging.getLogger(__name__)

# KEYS: user key, channel key. ARGV: now ms, window ms, user limit, channel limit, member.
# Returns {0, 0} when the command was counted, {1 | 2, oldest ms} when the user's | channel's limit is hit.
_SCRIPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local limits = {tonumber(ARGV[3]), tonumber(ARGV[4])}
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if limits[i] > 0 and redis.call('ZCARD', KEYS[i]) >= limits[i] then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i, tonumber(oldest[2])}
  end
end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[i], window)
end
return {0, 0}
"""


@dataclass(frozen=True)
class Limits:
    per_user: int = 10  # commands a person may queue per window (0: no limit)
    per_channel: int = 30  # commands a channel may queue per window (0: no limit)
    window_s: int = 60


@dataclass(frozen=True)
class Refusal:
    scope: str  # "user" | "channel"
    limit: int
    window_s: int
    retry_in_s: int

    @property
    def message(self) -> str:
        window = "minute" if self.window_s == 60 else f"{self.window_s} s"
        who = "you have" if self.scope == "user" else "this channel has"
        per = "per person" if self.scope == "user" else "per channel"
        return (f"⏳ Slow down: {who} run {self.limit} commands in the last {window} "
                f"(at most {self.limit} {per}). Try again in {self.retry_in_s} s.")


class RateLimiter:
    def __init__(self, connection: redis.Redis, limits: Limits) -> None:
        self.connection = connection
        self.limits = limits
        self._script = connection.register_script(_SCRIPT)

    def take(self, user: str, channel: str, *, now: float | None = None) -> Refusal | None:
        """Count one command of ``user`` in ``channel``; a Refusal (nothing counted) when over a limit."""
        if not (self.limits.per_user or self.limits.per_channel):
            return None
        now_ms = int((time.time() if now is None else now) * 1000)
        window_ms = self.limits.window_s * 1000
        try:
            hit, oldest = self._script(
                keys=[rate_key("user", user), rate_key("channel", channel)],
                args=[now_ms, window_ms, self.limits.per_user, self.limits.per_channel, uuid.uuid4().hex],
            )
        except redis.RedisError as exc:
            log.warning("rate limiter skipped", extra={"error": type(exc).__name__})
            return None
        if not hit:
            return None
        scope = "user" if int(hit) == 1 else "channel"
        limit = self.limits.per_user if scope == "user" else self.limits.per_channel
        retry = max(1, -(-(int(oldest) + window_ms - now_ms) // 1000))
        return Refusal(scope, limit, self.limits.window_s, retry)
