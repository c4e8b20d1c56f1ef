"""One error root for the whole product.

Every failure a user can see is an :class:`AksDnsError` (or subclass) whose
``user_message`` is short, single-line and safe to post in Slack or print on a
terminal.  Anything else that escapes is a bug: edges catch it, log it with a
traceback, and show the user a generic line (see :func:`user_message`).
"""

from __future__ import annotations


class AksDnsError(Exception):
    """Root of every expected failure; ``str(err)`` is the user-facing line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def user_message(self) -> str:
        return self.message


class UsageError(AksDnsError):
    """The command text does not follow the grammar (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


class NotAvailableYet(AksDnsError):
    """The command parses but its job is not built yet."""

    def __init__(self, command: str) -> None:
        super().__init__(f"`{command}` is not available yet in this version of aksdns.")
        self.command = command


class PolicyRefused(AksDnsError):
    """A command a policy does not allow (e.g. `dig` to a metadata address): refused and audited."""


class QueueUnavailable(AksDnsError):
    """Redis cannot be reached: the job was not queued."""


class ClusterError(AksDnsError):
    """The Kubernetes API refused or failed a call (403, time-out, ...)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CaptureFileError(AksDnsError):
    """A capture file cannot be read (empty, not a capture, header cut short)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


GENERIC_FAILURE = "aksdns hit an internal error; the details are in the worker's log."


def user_message(err: BaseException) -> str:
    """The one line a user sees for any exception: never a traceback."""
    if isinstance(err, AksDnsError):
        return err.user_message.splitlines()[0] if err.user_message else GENERIC_FAILURE
    return GENERIC_FAILURE
