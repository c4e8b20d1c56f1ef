"""The dig job end to end against real servers: report, JSON, resolv.conf fallback."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aksdns.commands import DigCommand, DnsServer
from workers.jobenv import JobEnv
from workers.jobs import dig
from workers.report import Status, StatusLine, Table

if TYPE_CHECKING:
    from tests.dnsservers import FakeDnsServer, RealServer

Factory = Callable[..., "FakeDnsServer"]


def job_env(tmp_path: Path, resolv: str = "") -> JobEnv:
    path = tmp_path / "resolv.conf"
    path.write_text(resolv)
    return JobEnv(cluster="test", resolv_conf=path)


def test_dig_layers_bind9_dnsmasq_dead_and_servfail(
    tmp_path: Path, bind9_server: RealServer, dnsmasq_forwarder: RealServer, dns_server_factory: Factory
) -> None:
    dead = dns_server_factory("silent")
    broken = dns_server_factory("servfail")
    cmd = DigCommand(
        servers=(bind9_server.server, dnsmasq_forwarder.server, dead.server, broken.server),
        names=("www.aksdns.test",),
        timeout=1.0,
    )
    report = dig.execute(cmd, job_env(tmp_path))
    data = json.loads(json.dumps(report.data))
    statuses = {r["server"]: r["status"] for r in data["results"]}
    assert statuses == {
        str(bind9_server.server): "NOERROR",
        str(dnsmasq_forwarder.server): "NOERROR",
        str(dead.server): "TIMEOUT",
        str(broken.server): "SERVFAIL",
    }
    assert data["results"][0]["answers"] == ["10.53.1.10"]
    assert set(data["results"][0]) >= {"server", "name", "type", "status", "latency_ms", "answers"}
    assert report.status is Status.FAIL
    lines = {s.label: s.status for s in report.sections if isinstance(s, StatusLine)}
    assert lines[str(bind9_server.server)] is Status.OK
    assert lines[str(dead.server)] is Status.FAIL
    assert "4 queries to 4 servers" in report.summary and "2 answered, 2 failed" in report.summary
    # The whole job waited for about one timeout (the dead server), not for each server in turn.
    assert data["summary"]["elapsed_ms"] < 2 * 1000 * cmd.timeout


def test_repeat_every_attempt_is_a_result(tmp_path: Path, bind9_server: RealServer) -> None:
    cmd = DigCommand(
        servers=(bind9_server.server,),
        names=("www.aksdns.test", "nope.aksdns.test"),
        types=("A", "AAAA"),
        repeat=3,
        timeout=2.0,
    )
    report = dig.execute(cmd, job_env(tmp_path))
    results = report.data["results"]
    assert len(results) == 2 * 2 * 3
    assert [r["attempt"] for r in results[:3]] == [1, 2, 3]
    assert {r["status"] for r in results if r["name"] == "nope.aksdns.test"} == {"NXDOMAIN"}
    (table,) = [s for s in report.sections if isinstance(s, Table)]
    assert "#" in table.columns and len(table.rows) == 12


def test_tcp_retry_shows_in_the_table(tmp_path: Path, bind9_server: RealServer) -> None:
    report = dig.execute(
        DigCommand(servers=(bind9_server.server,), names=("big.aksdns.test",), types=("TXT",)), job_env(tmp_path)
    )
    (table,) = [s for s in report.sections if isinstance(s, Table)]
    assert table.rows[0][3] == "NOERROR (TC→TCP)"


def test_no_server_uses_resolv_conf_nameservers(tmp_path: Path, dns_server_factory: Factory) -> None:
    # resolv.conf has no ports, so this server must listen on 53: use a random 127/8 address
    # to stay clear of anything else on the machine.
    host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    try:
        fake = dns_server_factory("answer", host=host, port=53)
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}:53 here: {exc}")
    env = job_env(tmp_path, f"search default.svc.cluster.local\nnameserver {host}\noptions ndots:5\n")
    report = dig.execute(DigCommand(names=("kubernetes.default.svc.cluster.local",), timeout=1.0), env)
    (result,) = report.data["results"]
    assert fake.server == DnsServer(host, 53)
    assert (result["server"], result["status"]) == (host, "NOERROR")
