"""Acks first: follow-up work waits while Slack requests are in flight in this process.

Slack gives a command 3 s, but a burst of commands in an incident channel shares one process:
follow-ups (posting the parent message, queueing the job) cost several times what an ack costs,
and with Python's interpreter lock every running follow-up delays every ack. Holding follow-ups
back while any request is being answered (for a bounded time, so they never starve) keeps acks fast
under bursts; the follow-ups then run right after.
"""

from __future__ import annotations

import threading

MAX_HOLD_S = 0.5


class RequestGate:
    """Counts requests in flight; ``wait_idle`` blocks (bounded) until there are none."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._in_flight = 0

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def exit(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight <= 0:
                self._in_flight = 0
                self._lock.notify_all()

    def wait_idle(self, max_hold_s: float = MAX_HOLD_S) -> bool:
        """True when idle; False when the hold ran out (the caller proceeds anyway)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout=max_hold_s)
