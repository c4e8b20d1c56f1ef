"""The job spec: what travels through Redis from the bot to a worker, as JSON."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aksdns.commands import Command
from aksdns.errors import UsageError
from aksdns.grammar import command_from_dict


@dataclass(frozen=True)
class SlackThread:
    """Where a job answers: the channel, the thread and the parent (status) message."""

    channel: str
    thread_ts: str  # replies go in this thread
    status_ts: str  # the message chat.update rewrites with progress

    def to_dict(self) -> dict[str, str]:
        return {"channel": self.channel, "thread_ts": self.thread_ts, "status_ts": self.status_ts}


@dataclass(frozen=True)
class JobSpec:
    """One queued job: the command, its cluster, who asked and where to answer."""

    id: str
    command: Command
    cluster: str
    user: str
    thread: SlackThread | None = None  # None: a CLI run, nothing posted

    @classmethod
    def new(cls, command: Command, *, cluster: str, user: str, thread: SlackThread | None) -> JobSpec:
        return cls(id=uuid.uuid4().hex, command=command, cluster=cluster, user=user, thread=thread)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command": self.command.to_dict(),
            "cluster": self.cluster,
            "user": self.user,
            "thread": self.thread.to_dict() if self.thread else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Rebuild a spec from JSON data; ValueError on anything malformed."""
        try:
            thread = data.get("thread")
            return cls(
                id=str(data["id"]),
                command=command_from_dict(data["command"]),
                cluster=str(data["cluster"]),
                user=str(data["user"]),
                thread=SlackThread(**{k: str(v) for k, v in thread.items()}) if thread else None,
            )
        except UsageError as exc:  # the command does not pass the grammar's checks
            raise ValueError(f"malformed job spec: {exc.message}") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed job spec: {exc}") from None
