"""Follow-ups wait (bounded) while Slack requests are in flight."""

from __future__ import annotations

import threading
import time

from bot.priority import RequestGate


def test_idle_gate_does_not_hold() -> None:
    assert RequestGate().wait_idle(0.01) is True


def test_busy_gate_holds_until_the_request_ends() -> None:
    gate = RequestGate()
    gate.enter()
    released: list[bool] = []
    waiter = threading.Thread(target=lambda: released.append(gate.wait_idle(5.0)))
    waiter.start()
    time.sleep(0.05)
    assert not released  # still held back
    gate.exit()
    waiter.join(5)
    assert released == [True]


def test_hold_is_bounded() -> None:
    gate = RequestGate()
    gate.enter()
    assert gate.wait_idle(0.02) is False  # gives up: follow-ups never starve
