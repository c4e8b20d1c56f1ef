"""Who may run what, where: a pure policy plus a cached user-group lookup."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aksdns.commands import Command, DigCommand
from aksdns.dig_policy import DigPolicy
from aksdns.settings import Settings
from aksdns.verbs import spec_of

log = logging.getLogger(__name__)
GROUP_CACHE_TTL_S = 300.0


@dataclass(frozen=True)
class Policy:
    """Read-only commands: anyone in allowed channels. Privileged: named users or groups."""

    allowed_channels: frozenset[str] = frozenset()
    privileged_users: frozenset[str] = frozenset()
    privileged_groups: frozenset[str] = frozenset()
    dig: DigPolicy = field(default_factory=DigPolicy)  # which servers `dig` may ask (the worker checks the ports again)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            settings.allowed_channels,
            settings.privileged_users,
            settings.privileged_groups,
            DigPolicy.from_setting(settings.dig_allow),
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def decide(policy: Policy, *, user: str, channel: str, command: Command, groups_of_user: frozenset[str]) -> Decision:
    """The authorization decision for one command (pure)."""
    if policy.allowed_channels and channel not in policy.allowed_channels:
        return Decision(False, "aksdns is not enabled in this channel.")
    if isinstance(command, DigCommand):
        refusal = next(filter(None, (policy.dig.refusal(s) for s in command.servers)), None)
        if refusal:
            return Decision(False, refusal)
    if not spec_of(command).privileged:
        return Decision(True, "read-only command")
    if user in policy.privileged_users:
        return Decision(True, "privileged user")
    if groups_of_user & policy.privileged_groups:
        return Decision(True, "member of a privileged user group")
    return Decision(
        False,
        f"`{command.verb.value}` changes the cluster, so it needs a privileged user "
        "(AKSDNS_PRIVILEGED_USERS / AKSDNS_PRIVILEGED_GROUPS).",
    )


@dataclass
class GroupDirectory:
    """Members of the privileged user groups, fetched with usergroups.users.list and cached."""

    fetch_members: Callable[[str], list[str]]  # group id → user ids (I/O, injected)
    groups: frozenset[str]
    ttl_s: float = GROUP_CACHE_TTL_S
    _cache: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)

    def groups_of(self, user: str) -> frozenset[str]:
        out = set()
        now = time.monotonic()
        for group in self.groups:
            cached = self._cache.get(group)
            if cached is None or now - cached[0] > self.ttl_s:
                try:
                    members = frozenset(self.fetch_members(group))
                except Exception as exc:  # a failed lookup denies, it does not crash the listener
                    log.warning("user group lookup failed", extra={"group": group, "error": type(exc).__name__})
                    members = frozenset()
                cached = (now, members)
                self._cache[group] = cached
            if user in cached[1]:
                out.add(group)
        return frozenset(out)


def authorize(
    policy: Policy,
    directory: GroupDirectory | None,
    *,
    user: str,
    channel: str,
    command: Command,
) -> Decision:
    """Decide, looking groups up only when it matters, and log every decision."""
    needs_groups = spec_of(command).privileged and user not in policy.privileged_users and directory is not None
    groups = directory.groups_of(user) if needs_groups and directory else frozenset()
    decision = decide(policy, user=user, channel=channel, command=command, groups_of_user=groups)
    log.info(
        "authorization",
        extra={
            "user": user,
            "channel": channel,
            "command": command.verb.value,
            "allowed": decision.allowed,
            "reason": decision.reason,
        },
    )
    return decision
