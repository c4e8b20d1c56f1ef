"""`coredns-log on|off`: the guide's verbose CoreDNS logging, time-boxed and reverted by itself.

`on` first asks (Start / Cancel buttons; the bot authorizes the click again), then — in this order —
schedules the revert as due work (RQ's scheduler keeps it in Redis, so a worker killed right after
still has it done by the next worker), and only then adds the ``log`` plugin through its own
coredns-custom key. CoreDNS reloads it (the AKS Corefile's `reload` plugin), no restart. `off` removes
the key; the scheduled revert is an `off` too, so a second revert is harmless. Both are audited.
"""

from __future__ import annotations

import dataclasses
import json
import time

from aksdns.commands import CorednsLogCommand
from aksdns.errors import AksDnsError
from workers.analysis.health_lint import parse
from workers.jobenv import JobEnv
from workers.probes import coredns_custom, kube
from workers.report import Button, Markdown, Report, Status, StatusLine

COREFILE_DOC = "https://learn.microsoft.com/azure/aks/coredns-custom#troubleshooting"


def key_text(cmd: CorednsLogCommand, env: JobEnv, until: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
    who = "".join(ch for ch in env.requested_by if ch.isalnum() or ch in "-_.@") or "unknown"
    return f"# added by aksdns coredns-log for {who} (job {env.job_id or '-'}); reverted by {stamp}\nlog\n"


def _ask(cmd: CorednsLogCommand) -> Report:
    start = dataclasses.replace(cmd, confirmed=True)
    return Report(
        title="Verbose CoreDNS logging · confirm",
        status=Status.INFO,
        summary=f"Turn on CoreDNS query logging for {cmd.minutes} min?",
        sections=[Markdown(
            f"This adds the `log` plugin to every CoreDNS pod through the `coredns-custom` ConfigMap (key "
            f"`{coredns_custom.KEY}`) for *{cmd.minutes} min*, then removes it by itself. CoreDNS reloads its "
            "configuration (no restart); every query is logged while it is on, which costs CPU and log volume. "
            f"See {COREFILE_DOC}.")],
        buttons=[
            Button("aksdns_confirm", "Start", json.dumps(start.to_dict(), sort_keys=True), "primary"),
            Button("aksdns_cancel", "Cancel", json.dumps(cmd.to_dict(), sort_keys=True)),
        ],
        data={"asked": True, "minutes": cmd.minutes},
    )


def turn_on(cmd: CorednsLogCommand, env: JobEnv) -> Report:
    if env.schedule is None:
        raise AksDnsError("coredns-log needs a worker: its revert is scheduled work (run it through the bot, or "
                          "`aksdns worker` with Redis)")
    c = kube.connect(env.kubeconfig)
    if any(d.plugin == "log" and d.depth == 0 for text in coredns_custom.other_keys(c).values()
           for d in parse(text)[0]):
        raise AksDnsError("another coredns-custom key already turns `log` on; aksdns leaves it alone")
    existing = coredns_custom.read_key(c)
    until = time.time() + cmd.minutes * 60
    # The revert first: if this worker dies after the patch, the revert is already in Redis.
    revert_id = env.schedule(CorednsLogCommand(cluster=cmd.cluster, state="off", confirmed=True), cmd.minutes * 60.0)
    env.progress("adding the log plugin through coredns-custom")
    coredns_custom.put_key(c, key_text(cmd, env, until))
    env.audit("coredns-log", True, f"log plugin on for {cmd.minutes} min; revert job {revert_id}")
    stamp = time.strftime("%H:%M UTC", time.gmtime(until))
    again = " (it was already on: the new revert time replaces nothing, both reverts are harmless)" if existing else ""
    return Report(
        title="Verbose CoreDNS logging · on",
        status=Status.WARN,
        summary=f"CoreDNS logs every query until {stamp}; it reverts by itself",
        sections=[
            StatusLine(Status.WARN, "log plugin", f"on through coredns-custom key `{coredns_custom.KEY}`{again}"),
            StatusLine(Status.INFO, "revert", f"scheduled for {stamp} (job {revert_id[:8]}); "
                                              "`/aksdns coredns-log off` ends it now"),
            Markdown("Read the queries: `kubectl -n kube-system logs -l k8s-app=kube-dns -f`, or "
                     f"`/aksdns health --minutes {cmd.minutes}` before it ends. Note: the log plugin writes NOERROR "
                     "even when the upstream timed out (coredns/coredns#4724)."),
        ],
        buttons=[Button("aksdns_rerun", "Turn off now",
                        json.dumps(CorednsLogCommand(cluster=cmd.cluster, state="off", confirmed=True).to_dict(),
                                   sort_keys=True), "danger")],
        data={"state": "on", "until": until, "revert_job": revert_id, "key": coredns_custom.KEY},
    )


def turn_off(cmd: CorednsLogCommand, env: JobEnv) -> Report:
    c = kube.connect(env.kubeconfig)
    removed = coredns_custom.remove_key(c)
    env.audit("coredns-log", True, "log plugin removed" if removed else "log plugin was already off")
    text = "removed: CoreDNS logs errors only again" if removed else "already off: nothing to remove"
    return Report(
        title="Verbose CoreDNS logging · off",
        status=Status.OK,
        summary=f"Verbose CoreDNS logging {text}",
        sections=[StatusLine(Status.OK, "log plugin", f"coredns-custom key `{coredns_custom.KEY}` {text}")],
        data={"state": "off", "removed": removed},
    )


def execute(cmd: CorednsLogCommand, env: JobEnv) -> Report:
    if cmd.state == "off":
        return turn_off(cmd, env)
    if not cmd.confirmed:
        return _ask(cmd)
    return turn_on(cmd, env)
