"""Where the testbed keeps its binaries and its run-time state.

Everything lives outside the repository, under ``${AKSDNS_CACHE_DIR:-$HOME/.cache/aksdns}``, so that a
fresh clone (CI) reuses a machine's one-time build. Nothing here reads the environment at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from testbed.versions import BINARIES, KUBEBUILDER_NAMES


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("AKSDNS_CACHE_DIR", "")
    return Path(configured) if configured else Path.home() / ".cache" / "aksdns"


def component_dir(component: str, version: str, env: Mapping[str, str] | None = None) -> Path:
    """Binaries are keyed by version: a version bump builds into a new directory."""
    return cache_dir(env) / component / version


def run_dir(env: Mapping[str, str] | None = None) -> Path:
    """Run-time state of the one testbed on this machine (pid files, certificates, logs)."""
    return cache_dir(env) / "run"


def kwok_share_dir(env: Mapping[str, str] | None = None) -> Path:
    """Upstream kwok stage and CRD files of the pinned version, copied there by the build."""
    from testbed.versions import KWOK

    return component_dir("kwok", KWOK, env) / "share"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def binary(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Path of a built testbed binary, or None when it has not been built yet.

    ``$KUBEBUILDER_ASSETS`` wins for the binaries envtest ships (etcd, kube-apiserver, kubectl), so a
    machine that already has envtest's assets does not need to build them.
    """
    if name not in BINARIES:
        raise KeyError(f"unknown testbed binary: {name}")
    env = os.environ if env is None else env
    assets = env.get("KUBEBUILDER_ASSETS", "")
    if assets and name in KUBEBUILDER_NAMES and _executable(Path(assets) / name):
        return Path(assets) / name
    component, version = BINARIES[name]
    candidate = component_dir(component, version, env) / name
    return candidate if _executable(candidate) else None


def missing_binaries(env: Mapping[str, str] | None = None) -> list[str]:
    return [name for name in BINARIES if binary(name, env) is None]
