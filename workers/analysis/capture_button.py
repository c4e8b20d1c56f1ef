"""The `Capture` button other commands' results carry, filled in with the targets they found.

`check` and `health` name pods and nodes in their findings' subjects; the button captures every CoreDNS
pod plus those client pods and the first node named (a click still goes through the confirmation and
is authorized again: ``bot.capture_flow``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aksdns.commands import CaptureCommand, ObjectRef
from aksdns.verbs import MAX_CAPTURE_PODS
from workers.findings import Finding
from workers.report import Button

KUBE_SYSTEM = "kube-system"


def capture_command(cluster: str | None, findings: Sequence[Finding], duration_s: int = 120) -> CaptureCommand:
    pods: list[ObjectRef] = []
    node: str | None = None
    for f in findings:
        for s in f.subjects:
            if s.kind == "pod" and s.namespace and s.namespace != KUBE_SYSTEM:
                ref = ObjectRef(s.namespace, s.name)
                if ref not in pods and len(pods) < MAX_CAPTURE_PODS:
                    pods.append(ref)
            elif s.kind == "node" and node is None:
                node = s.name
    return CaptureCommand(cluster=cluster, coredns=True, pods=tuple(pods), node=node, duration_s=duration_s)


def capture_button(cluster: str | None, findings: Sequence[Finding], duration_s: int = 120) -> Button:
    cmd = capture_command(cluster, findings, duration_s)
    extra = len(cmd.pods) + (1 if cmd.node else 0)
    label = f"Capture {duration_s // 60} min" + (f" (CoreDNS + {extra} more)" if extra else "")
    return Button("aksdns_capture", label, json.dumps(cmd.to_dict(), sort_keys=True), "danger")
