"""Job specs travel as JSON; settings come from a mapping and never leak secrets."""

from __future__ import annotations

import json

import pytest

from aksdns import grammar
from aksdns.jobspec import JobSpec, SlackThread
from aksdns.keys import dedup_key, queue_name
from aksdns.logs import scrub
from aksdns.settings import Settings, redact_url


def test_job_spec_round_trips_through_json() -> None:
    spec = JobSpec.new(grammar.parse("dig @[::1]:5353 a.b --repeat 3"), cluster="prod", user="U1",
                       thread=SlackThread("C1", "1.1", "1.2"))
    assert JobSpec.from_dict(json.loads(spec.to_json())) == spec


@pytest.mark.parametrize("bad", [{}, {"id": "x"}, {"id": "x", "command": {"verb": "rm"}, "cluster": "c", "user": "u"},
                                 {"id": "x", "command": {"verb": "dig", "args": {"evil": 1}}, "cluster": "c",
                                  "user": "u"}])
def test_malformed_specs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        JobSpec.from_dict(bad)


def test_queue_per_cluster_and_dedup_key_per_thread() -> None:
    cmd = grammar.parse("check")
    assert queue_name("eu-prod") == "aksdns:eu-prod"
    assert dedup_key("c", "C1", "1.1", cmd) == dedup_key("c", "C1", "1.1", grammar.parse("check"))
    assert dedup_key("c", "C1", "1.1", cmd) != dedup_key("c", "C1", "2.2", cmd)
    assert dedup_key("c", "C1", None, cmd) != dedup_key("c", "C1", None, grammar.parse("check --repeat 2"))


def test_settings_from_env_and_redaction() -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-secret-123",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "REDIS_URL": "rediss://:p4ss@cache.example:6380/0",
        "AKSDNS_CLUSTER": "eu",
        "AKSDNS_CLUSTERS": "us, eu",
        "AKSDNS_PRIVILEGED_USERS": "U1,U2",
    }
    settings = Settings.from_env(env)
    assert settings.slack_api_url.endswith("/api/")
    assert settings.clusters == frozenset({"us", "eu"})
    assert settings.privileged_users == frozenset({"U1", "U2"})
    shown = json.dumps(settings.redacted())
    assert "xoxb-secret" not in shown and "p4ss" not in shown


def test_secrets_are_scrubbed_from_log_lines() -> None:
    line = "token xoxb-1234-abcd and xapp-1-A0-xyz at redis://user:hunter2@host:6379"
    cleaned = scrub(line)
    assert "1234" not in cleaned and "hunter2" not in cleaned and "xapp-1-A0" not in cleaned
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
