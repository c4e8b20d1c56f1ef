"""The description of a running testbed, written by `up` to run/state.json and read by everyone else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed import layout
from testbed.kube import Credentials, Kube


@dataclass
class State:
    run_dir: str
    api_port: int
    etcd_port: int
    kubelet_port: int
    node_names: list[str]
    coredns_binary: str
    python: str
    started_at: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def run(self) -> Path:
        return Path(self.run_dir)

    @property
    def pki(self) -> Path:
        return self.run / "pki"

    @property
    def pids(self) -> Path:
        return self.run / "pids"

    @property
    def logs(self) -> Path:
        return self.run / "logs"

    @property
    def pods(self) -> Path:
        return self.run / "pods"

    @property
    def kubeconfig(self) -> Path:
        return self.run / "admin.kubeconfig"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def upstream_state(self) -> Path:
        return self.run / "upstream.json"

    def nodes(self) -> list[layout.NodeSpec]:
        return [n for n in layout.node_specs(len(self.node_names)) if n.name in self.node_names]

    def admin(self, timeout: float = 10.0) -> Kube:
        return Kube(Credentials("127.0.0.1", self.api_port, self.pki / "ca.crt",
                                self.pki / "admin.crt", self.pki / "admin.key"), timeout)

    def save(self) -> None:
        path = self.run / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, run_dir: Path) -> State | None:
        try:
            return cls(**json.loads((run_dir / "state.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None
