"""Job specs signed by the bot: any change, another key, another job id or old age is refused."""

from __future__ import annotations

import pytest

from aksdns import jobsign

KEY = "k" * 40
NOW = 1_700_000_000.0


def payload() -> dict[str, object]:
    return {"id": "abc", "command": {"verb": "dig", "args": {"names": ["x.test"]}}, "cluster": "c", "user": "U1",
            "thread": {"channel": "C1", "thread_ts": "1.1", "status_ts": "1.1"}, "dedup_key": "aksdns:dedup:x"}


def test_a_signed_spec_verifies() -> None:
    signed = jobsign.sign(payload(), KEY, now=NOW)
    assert jobsign.verify(signed, KEY, job_id="abc") == signed
    jobsign.check_age(signed, now=NOW + 60)
    assert KEY not in repr(signed)  # the key never travels


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(user="U2"),
        lambda p: p["command"]["args"].update(names=["$(id)"]),
        lambda p: p.update(dedup_key="rq:workers"),
        lambda p: p.update(issued_at=p["issued_at"] + 1),
        lambda p: p.pop("signature"),
        lambda p: p.update(signature="v1=" + "0" * 64),
        lambda p: p.update(extra=1),
    ],
)
def test_any_change_is_refused(change: object) -> None:
    signed = jobsign.sign(payload(), KEY, now=NOW)
    change(signed)  # type: ignore[operator]
    with pytest.raises(jobsign.UnsignedJob):
        jobsign.verify(signed, KEY, job_id="abc")


def test_another_key_or_job_id_is_refused() -> None:
    signed = jobsign.sign(payload(), KEY, now=NOW)
    with pytest.raises(jobsign.UnsignedJob):
        jobsign.verify(signed, "o" * 40, job_id="abc")
    with pytest.raises(jobsign.UnsignedJob):
        jobsign.verify(signed, KEY, job_id="another")
    with pytest.raises(jobsign.UnsignedJob):
        jobsign.verify(["not", "a", "dict"], KEY)


def test_old_and_future_specs_are_refused() -> None:
    signed = jobsign.sign(payload(), KEY, now=NOW)
    with pytest.raises(jobsign.StaleJob, match="waited more than 24 h"):
        jobsign.check_age(signed, now=NOW + jobsign.MAX_AGE_S + 1)
    with pytest.raises(jobsign.UnsignedJob):
        jobsign.check_age(signed, now=NOW - 3600)


@pytest.mark.parametrize("key", ["", "short"])
def test_no_or_a_short_key_cannot_sign_or_verify(key: str) -> None:
    assert jobsign.key_problem(key)
    with pytest.raises(jobsign.AksDnsError):
        jobsign.sign(payload(), key, now=NOW)
    with pytest.raises(jobsign.UnsignedJob):
        jobsign.verify(jobsign.sign(payload(), KEY, now=NOW), key)
