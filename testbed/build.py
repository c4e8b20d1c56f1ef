"""Build the testbed's pinned binaries from Go modules into the version-keyed cache.

Usage: ``python -m testbed.build [helm|coredns|kwok|etcd|kubernetes|metrics-server ...]`` (all, in that order, by
default). A component whose binaries are already in the cache (or in ``$KUBEBUILDER_ASSETS``) is skipped,
so a second run does nothing. Each component is built in a scratch directory and moved into place only
when complete, so an interrupted build never looks finished.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from testbed import paths, versions

ORDER = ("helm", "coredns", "kwok", "etcd", "kubernetes", "metrics-server")
# Generous: the Kubernetes build takes 15-25 minutes on two cores, plus module downloads.
BUILD_TIMEOUT_S = 75 * 60
MOD_TIMEOUT_S = 20 * 60

COMPONENT_BINARIES: dict[str, tuple[str, ...]] = {
    "helm": ("helm",),
    "coredns": ("coredns",),
    "kwok": ("kwok",),
    "etcd": ("etcd",),
    "kubernetes": ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
    "metrics-server": ("metrics-server",),
}
COMPONENT_VERSION = {
    "helm": versions.HELM,
    "coredns": versions.COREDNS,
    "kwok": versions.KWOK,
    "etcd": versions.ETCD,
    "kubernetes": versions.KUBERNETES,
    "metrics-server": versions.METRICS_SERVER,
}


class BuildError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"[testbed.build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _go_env(env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    # Static binaries: no libc coupling, and it is how upstream builds these servers.
    out.setdefault("CGO_ENABLED", "0")
    out.setdefault("GOFLAGS", "-buildvcs=false")
    return out


def _run(cmd: list[str], cwd: Path, env: Mapping[str, str], timeout: float) -> str:
    _log("$ " + " ".join(cmd))
    proc = subprocess.run(
        cmd, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return proc.stdout


def _present(component: str, env: Mapping[str, str]) -> bool:
    return all(paths.binary(name, env) is not None for name in COMPONENT_BINARIES[component])


def _install_module(pkg: str, version: str, ldflags: str, staging: Path, env: dict[str, str]) -> None:
    """`go install pkg@version` works for modules without replace directives (helm, coredns, kwok)."""
    env = dict(env, GOBIN=str(staging))
    _run(["go", "install", "-trimpath", "-ldflags", ldflags, f"{pkg}@{version}"], staging, env,
         BUILD_TIMEOUT_S)


def _wrapper_module(workdir: Path, requires: dict[str, str], replaces: dict[str, str],
                    tools: list[str]) -> None:
    lines = ["module aksdns.local/testbedbuild", "", "go 1.25", ""]
    lines += [f"require {mod} {ver}" for mod, ver in requires.items()]
    lines += [f"replace {mod} => {mod} {ver}" for mod, ver in replaces.items()]
    lines += [f"tool {t}" for t in tools]
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")


def _staging_modules(version: str, workdir: Path, env: dict[str, str]) -> list[str]:
    """Read the staging modules k8s.io/kubernetes replaces with ./staging paths in its own go.mod."""
    out = _run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], workdir, env,
               MOD_TIMEOUT_S)
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.MULTILINE)))


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    # Without these the server reports v0.0.0-master and clients warn about version skew.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def _build_kubernetes(version: str, staging: Path, env: dict[str, str]) -> None:
    workdir = staging / "src"
    workdir.mkdir()
    _wrapper_module(workdir, {}, {}, [])
    modules = _staging_modules(version, workdir, env)
    _log(f"kubernetes {version}: replacing {len(modules)} staging modules with published v0 versions")
    published = "v0." + version.lstrip("v").split(".", 1)[1]
    cmds = [f"k8s.io/kubernetes/cmd/{b}" for b in COMPONENT_BINARIES["kubernetes"]]
    _wrapper_module(workdir, {"k8s.io/kubernetes": version}, dict.fromkeys(modules, published), cmds)
    _run(["go", "mod", "tidy"], workdir, env, MOD_TIMEOUT_S)
    _run(["go", "build", "-trimpath", "-ldflags", _version_ldflags(version), "-o", str(staging), *cmds],
         workdir, env, BUILD_TIMEOUT_S)
    shutil.rmtree(workdir, ignore_errors=True)


def _build_etcd(version: str, staging: Path, env: dict[str, str]) -> None:
    # server/go.mod replaces its sibling modules with ../ paths, so go install refuses it; a wrapper
    # module that requires it (sibling requirements are real versions) builds it.
    workdir = staging / "src"
    workdir.mkdir()
    _wrapper_module(workdir, {"go.etcd.io/etcd/server/v3": version}, {}, ["go.etcd.io/etcd/server/v3"])
    _run(["go", "mod", "tidy"], workdir, env, MOD_TIMEOUT_S)
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "etcd"),
          "go.etcd.io/etcd/server/v3"], workdir, env, BUILD_TIMEOUT_S)
    shutil.rmtree(workdir, ignore_errors=True)


KWOK_SHARE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
    "kustomize/crd/bases/kwok.x-k8s.io_logs.yaml",
    # metrics.k8s.io (testbed/metrics.py): emulated kubelet resource metrics and their usage objects
    "kustomize/crd/bases/kwok.x-k8s.io_metrics.yaml",
    "kustomize/crd/bases/kwok.x-k8s.io_resourceusages.yaml",
    "kustomize/crd/bases/kwok.x-k8s.io_clusterresourceusages.yaml",
    "kustomize/metrics/resource/metrics-resource.yaml",
    "kustomize/metrics/usage/usage-from-annotation.yaml",
)


def _ensure_kwok_share(target: Path, env: dict[str, str]) -> None:
    """Plain `kwok` (unlike kwokctl) loads no stages of its own and its CRDs are not in the binary:
    keep the upstream stage and CRD files of the pinned version beside the binary."""
    share = paths.kwok_share_dir(dict(env))
    if all((share / Path(f).name).is_file() for f in KWOK_SHARE_FILES):
        return
    out = _run(["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{versions.KWOK}"], target, env,
               MOD_TIMEOUT_S)
    moddir = Path(json.loads(out)["Dir"])
    tmp = Path(tempfile.mkdtemp(prefix=".share.", dir=share.parent))
    for rel in KWOK_SHARE_FILES:
        shutil.copyfile(moddir / rel, tmp / Path(rel).name)
    if share.exists():
        shutil.rmtree(share)
    tmp.rename(share)


def build_component(component: str, env: Mapping[str, str] | None = None) -> bool:
    """Build one component unless present. Returns True when it built something."""
    env = dict(os.environ if env is None else env)
    version = COMPONENT_VERSION[component]
    if _present(component, env):
        if component == "kwok" and paths.binary("kwok", env) is not None:
            _ensure_kwok_share(paths.binary("kwok", env).parent, _go_env(env))  # type: ignore[union-attr]
        _log(f"{component} {version}: present, nothing to do")
        return False
    target = paths.component_dir(component, version, env)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
    started = time.monotonic()
    _log(f"{component} {version}: building (log in this terminal) ...")
    goenv = _go_env(env)
    try:
        if component == "helm":
            _install_module("helm.sh/helm/v3/cmd/helm", version,
                            f"-s -w -X helm.sh/helm/v3/internal/version.version={version}", staging, goenv)
        elif component == "coredns":
            _install_module("github.com/coredns/coredns", version, "-s -w", staging, goenv)
        elif component == "kwok":
            _install_module("sigs.k8s.io/kwok/cmd/kwok", version,
                            f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={version}", staging, goenv)
        elif component == "metrics-server":
            _install_module("sigs.k8s.io/metrics-server/cmd/metrics-server", version,
                            f"-s -w -X sigs.k8s.io/metrics-server/pkg/version.gitVersion={version}", staging, goenv)
        elif component == "etcd":
            _build_etcd(version, staging, goenv)
        else:
            _build_kubernetes(version, staging, goenv)
        for name in COMPONENT_BINARIES[component]:
            if not (staging / name).is_file():
                raise BuildError(f"{component}: {name} was not produced")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        if component == "kwok":
            _ensure_kwok_share(target, goenv)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _log(f"{component} {version}: built in {time.monotonic() - started:.0f} s -> {target}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.build", description=__doc__)
    parser.add_argument("components", nargs="*",
                        help=f"any of {', '.join(ORDER)} (default: all, in that order)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.components) - set(ORDER))
    if unknown:
        parser.error(f"unknown component(s): {', '.join(unknown)}")
    wanted = [c for c in ORDER if c in args.components] if args.components else list(ORDER)
    if shutil.which("go") is None:
        print("testbed.build: the go command is not on PATH", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        for component in wanted:
            build_component(component)
    except (BuildError, subprocess.TimeoutExpired) as exc:
        print(f"testbed.build: {exc}", file=sys.stderr)
        return 1
    _log(f"done in {time.monotonic() - started:.0f} s; binaries under {paths.cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
