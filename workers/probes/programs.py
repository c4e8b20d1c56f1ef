"""`aksdns probe KIND ...`: the programs aksdns's own short-lived pods run, one entry per kind.

A kind maps to a ``module:function`` taking the remaining argv and returning an exit code, imported
only when that kind runs (a node DNS probe loads dnspython, nothing else).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

PROGRAMS: dict[str, str] = {
    "node-dns": "workers.probes.node_probe:probe_main",  # the node's upstream DNS servers (check)
    "capture-agent": "workers.probes.capture_agent:agent_main",  # a capture container's main process (capture)
    "apiserver": "workers.probes.apiserver_nodes:probe_main",  # the API server from the node (apiserver)
    "ipam-store": "workers.probes.ipam_store:probe_main",  # the node's kubenet IPAM store, read only (ipam)
    "tcp-connect": "workers.probes.tcp_connect:probe_main",  # TCP connects from the node (service)
}


def main(argv: list[str]) -> int:
    """Run the probe program named by ``argv[0]``; exit 2 with one line for an unknown kind."""
    kind = argv[0] if argv else ""
    target = PROGRAMS.get(kind)
    if target is None:
        print(f"aksdns probe: unknown kind `{kind}`; one of {', '.join(sorted(PROGRAMS))}", file=sys.stderr)
        return 2
    module, _, name = target.partition(":")
    program: Callable[[list[str]], int] = getattr(importlib.import_module(module), name)
    return int(program(argv[1:]))
