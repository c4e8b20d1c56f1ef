"""From an authorized command to a queued job with its parent message in the channel."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from aksdns import metrics
from aksdns.commands import Command, HandoffCommand
from aksdns.describe import describe, emoji
from aksdns.errors import AksDnsError, QueueUnavailable
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.keys import channel_cluster_key, dedup_key
from aksdns.limits import RateLimiter
from aksdns.liveness import ClusterView, cluster_views, last_seen
from aksdns.queue import JobQueue
from aksdns.reconnect import wait_for_redis
from aksdns.settings import Settings
from aksdns.slackclient import POST_ERRORS, SlackFailure, classify

log = logging.getLogger(__name__)
REDIS_WAIT_S = 15.0  # a command that meets a Redis restart waits this long before "not queued"
NO_WORKER_GRACE_S = 10.0  # one heartbeat interval (aksdns.liveness.BEAT_S): a starting worker is seen


def _ahead(view: ClusterView | None) -> str:
    """The queue, honestly: how many jobs wait before this one, and whether every worker is busy."""
    if view is None:
        return ""
    if view.queued:
        job = "job" if view.queued == 1 else "jobs"
        return f" · {view.queued} {job} ahead of yours"
    if view.workers and view.busy >= len(view.workers):
        return f" · waiting for a worker (all {len(view.workers)} busy)"
    return ""

def could_not_post(failure: SlackFailure) -> str:
    """What the user is told when the parent message cannot be posted (nothing was queued)."""
    if failure.not_in_channel:
        return "I cannot post in this channel: invite me with `/invite @aksdns` and try again."
    if failure.transient:
        return (f"Slack is not taking my messages right now ({failure.reason}), so nothing was queued. "
                "Try again in a minute.")
    return f"Slack refused my message ({failure.reason}), so nothing was queued."


@dataclass(frozen=True)
class Outcome:
    """What the listener tells the user: ephemeral text, or nothing (the thread speaks)."""

    ephemeral: str | None
    job_id: str | None = None
    refused: str = ""  # a decision to audit (rate limit), "" otherwise


@dataclass
class Dispatcher:
    """Queues jobs; one instance per bot process, clients injected."""

    settings: Settings
    queue: JobQueue
    client: WebClient
    limiter: RateLimiter | None = None

    def cluster_for(self, command: Command, channel: str) -> str:
        """``--cluster``, else the channel's default (`use`), else the bot's."""
        if command.cluster:
            return command.cluster
        try:
            chosen = self.queue.connection.get(channel_cluster_key(channel))
        except redis.RedisError:
            chosen = None
        return chosen.decode() if isinstance(chosen, bytes) else (chosen or self.settings.cluster)

    def dispatch(self, command: Command, *, user: str, channel: str, thread_ts: str | None) -> Outcome:
        """Check, dedup, post the parent message, enqueue. Never raises: failures become text."""
        verb = command.verb.value
        # Redis restarting: wait a little (bounded) rather than answer "not queued" at once.
        if not wait_for_redis(self.queue.connection, REDIS_WAIT_S):
            metrics.command(verb, "redis_down")
            return Outcome("❌ The job queue (Redis) is unreachable, so nothing was queued. Try again in a minute.")
        cluster = self.cluster_for(command, channel)
        if cluster not in self.settings.clusters:
            known = ", ".join(sorted(self.settings.clusters))
            metrics.command(verb, "unknown_cluster")
            return Outcome(f"Unknown cluster `{cluster}`; known clusters: {known}.")
        view = self._view(cluster)
        if view is not None and not view.workers:
            other = self._any_live() if isinstance(command, HandoffCommand) else None
            if other is None:  # answered now, not queued into silence
                metrics.command(verb, "no_worker")
                return Outcome(self._no_worker(cluster), refused=f"no worker is serving cluster {cluster}")
            cluster, view = other.cluster, other  # a handoff reads history only: any live worker will do
        refusal = self.limiter.take(user, channel) if self.limiter else None
        if refusal is not None:
            metrics.command(verb, "rate_limited")
            return Outcome(refusal.message, refused=f"rate limit ({refusal.scope})")
        try:
            self.queue.ping()
        except QueueUnavailable as exc:
            metrics.command(verb, "redis_down")
            return Outcome(f"❌ {exc.message}")
        key = dedup_key(cluster, channel, thread_ts, command)
        try:
            duplicate = self.queue.claim(key, json.dumps({"job_id": "pending"}))
        except QueueUnavailable as exc:
            metrics.command(verb, "redis_down")
            return Outcome(f"❌ {exc.message}")
        if duplicate is not None:
            where = self._permalink(duplicate.channel, duplicate.status_ts)
            metrics.command(verb, "duplicate")
            return Outcome(f"The same `{verb}` is already queued or running here{where}.")
        text = f"{emoji(command)} `{describe(command)}` queued by <@{user}> on cluster `{cluster}`{_ahead(view)}"
        try:
            parent = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
        except POST_ERRORS as exc:  # after the client's own bounded retries of 429 and 5xx
            self.queue.release(key)
            failure = classify(exc)
            log.warning("parent message failed", extra={"channel": channel, "error": failure.reason})
            metrics.command(verb, "not_posted")
            return Outcome(could_not_post(failure))
        status_ts = str(parent["ts"])
        if command.cluster != cluster and not (command.cluster is None and cluster == self.settings.cluster):
            command = replace(command, cluster=cluster)  # the worker and a Re-run see where it ran
        spec = JobSpec.new(
            command, cluster=cluster, user=user, thread=SlackThread(channel, thread_ts or status_ts, status_ts)
        )
        try:
            self.queue.enqueue(spec, dedup=key)
        except AksDnsError as exc:
            self.queue.release(key)
            self._update(channel, status_ts, f"❌ `{verb}` was not queued: {exc.message}")
            metrics.command(verb, "not_queued")
            return Outcome(f"❌ {exc.message}")
        log.info("job queued", extra={"job": spec.id, "verb": verb, "user": user, "channel": channel})
        metrics.command(verb, "queued")
        return Outcome(None, spec.id)

    def _view(self, cluster: str) -> ClusterView | None:
        """The cluster's live workers and queue.

        A worker that stopped beating (killed, node gone) has left its last beat behind: "no worker"
        is said at once. With no beat at all (a worker starting, one that stopped cleanly during a
        rolling restart, a Redis that lost its data) the bot gives it one beat of grace first.
        """
        deadline = time.monotonic() + NO_WORKER_GRACE_S
        while True:
            try:
                view = next(v for v in cluster_views(self.queue.connection, {cluster}) if v.cluster == cluster)
                if view.workers or time.monotonic() >= deadline or last_seen(self.queue.connection, cluster):
                    return view
            except (redis.RedisError, StopIteration):
                return None  # cannot tell: queue it, as before heartbeats
            time.sleep(0.5)

    def _any_live(self) -> ClusterView | None:
        try:
            return next((v for v in cluster_views(self.queue.connection) if v.workers
                         and v.cluster in self.settings.clusters), None)
        except redis.RedisError:
            return None

    def _no_worker(self, cluster: str) -> str:
        try:
            seen = last_seen(self.queue.connection, cluster)
        except redis.RedisError:
            seen = None
        when = f"last seen {time.strftime('%H:%M UTC', time.gmtime(seen))}" if seen else "none seen in the last day"
        return (f"❌ No worker is serving cluster `{cluster}` ({when}), so nothing was queued. "
                "`/aksdns clusters` lists the clusters with a live worker.")

    def _update(self, channel: str, ts: str, text: str) -> None:
        try:
            self.client.chat_update(channel=channel, ts=ts, text=text)
        except (SlackApiError, SlackClientError, OSError):
            log.warning("chat.update failed", extra={"channel": channel})

    def _permalink(self, channel: str, ts: str) -> str:
        if not channel or not ts:
            return ""
        try:
            link = self.client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
        except (SlackApiError, SlackClientError, OSError):
            return ""
        return f": <{link}|see it here>" if link else ""
