"""Build the aksdns image here, from the repository's Dockerfile, with buildah (`scripts/image`).

No container registry is reachable from this machine (or CI), so the Dockerfile's base images are made
locally under the very names its FROM lines use: `debian:<12.N>-slim` from Debian's packages with
mmdebstrap (minbase, without documentation, like Debian's own slim images), and `rust:<version>-slim-
bookworm` as that Debian base plus this machine's Rust toolchain of exactly that version. Both stay in
the machine's container storage (outside the repository), and so do buildah's cached layers: only the
first build on a machine is cold.

    python -m testbed.image build      # bases (once) and the image, tagged localhost/aksdns:<version>
    python -m testbed.image sbom OUT    # CycloneDX JSON of the image's Debian and Python packages
    python -m testbed.image facts       # what the built image holds (size, user, packages, caps)

buildah and podman use runc (crun fails here) and lower ulimits than podman's defaults (this machine
may not raise them); see /work/shared/notes/containers.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from testbed.paths import cache_dir

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
REPOSITORY = "localhost/aksdns"
BUILD_CACHE_TAG = "localhost/aksdns-build-cache:builder"
RUNTIME = "/usr/sbin/runc"
# Lower than podman's defaults: containers here may not raise limits (no CAP_SYS_RESOURCE).
ULIMITS = ("nofile=4096:4096", "nproc=4096:4096")
# Debian's slim images leave these out (debuerreotype's --slim); so do ours.
SLIM_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
                 "/usr/share/groff/*", "/usr/share/linda/*", "/usr/share/lintian/*")
SLIM_INCLUDES = ("/usr/share/doc/*/copyright",)  # licences stay, as in Debian's slim images
BUILD_TOOLS = ("gcc", "g++", "cpp", "binutils", "make", "libc6-dev", "cargo", "rustc", "python3.11-dev",
               "python3.11-venv", "libcap2-bin")
# Debian's images carry /etc/apt/apt.conf.d/docker-clean: apt keeps no .deb files or package caches, so
# a Dockerfile's `apt-get install` adds no caches to its layer. Ours do the same.
DOCKER_CLEAN = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
    '/var/cache/apt/*.bin || true"; }',
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
    '/var/cache/apt/*.bin || true"; }',
    'Dir::Cache::pkgcache ""', 'Dir::Cache::srcpkgcache ""', 'Acquire::Languages "none"',
    'Acquire::GzipIndexes "true"', 'APT::AutoRemove::SuggestsImportant "false"',
)
CODENAMES = {"12": "bookworm", "13": "trixie"}
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TIMEOUT_S = 3600


class ImageError(RuntimeError):
    pass


def project_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def image_ref(version: str | None = None) -> str:
    """The image's tag here: the package version, as the chart's appVersion (a test keeps them equal)."""
    return f"{REPOSITORY}:{version or project_version()}"


def _run(cmd: Sequence[str], timeout: float = 120, check: bool = True,
         capture: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=capture, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-2000:] if capture else ""
        raise ImageError(f"{' '.join(cmd[:3])} … failed ({proc.returncode}): {detail}")
    return proc


def missing_tools() -> list[str]:
    return [t for t in ("buildah", "podman", "mmdebstrap", RUNTIME) if shutil.which(t) is None]


def unavailable(ref: str | None = None) -> str | None:
    """Why the built image cannot be used here (for tests to skip with), or None."""
    if missing_tools():
        return f"image: {', '.join(missing_tools())} missing (scripts/bootstrap installs them)"
    ref = ref or image_ref()
    if not image_exists(ref):
        return f"image {ref} not built: run scripts/image build"
    return None


def image_exists(ref: str) -> bool:
    if shutil.which("podman") is None:
        return False
    return _run(["podman", "image", "exists", ref], check=False).returncode == 0


# ---- the Dockerfile's bases ----------------------------------------------------------------------


def dockerfile_bases(text: str) -> list[str]:
    """Images the FROM lines name (stage names excluded), in order, without duplicates."""
    stages: set[str] = set()
    bases: list[str] = []
    for m in re.finditer(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", text, re.I | re.M):
        image, stage = m.group(1), m.group(2)
        if image not in stages and image not in bases:
            bases.append(image)
        if stage:
            stages.add(stage)
    return bases


def qualified(ref: str) -> str:
    """What Docker means by a short name: docker.io/library/NAME:TAG (the name to store it under)."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def debian_release(ref: str) -> str:
    """`debian:12.15-slim` -> "12.15"."""
    m = re.fullmatch(r"(?:.*/)?debian:(\d+(?:\.\d+)?)-slim", ref)
    if not m:
        raise ImageError(f"cannot make {ref}: only debian:<release>-slim bases are made here")
    return m.group(1)


def rust_version(ref: str) -> str:
    """`rust:1.95.0-slim-bookworm` -> "1.95.0"."""
    m = re.fullmatch(r"(?:.*/)?rust:(\d+\.\d+\.\d+)-slim-bookworm", ref)
    if not m:
        raise ImageError(f"cannot make {ref}: only rust:<x.y.z>-slim-bookworm bases are made here")
    return m.group(1)


def make_debian_base(ref: str, log: Path) -> None:
    release = debian_release(ref)
    if release.split(".")[0] not in CODENAMES:
        raise ImageError(f"cannot make {ref}: unknown Debian release {release}")
    with tempfile.TemporaryDirectory(prefix="aksdns-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        # merged-usr hook: /usr merged as Debian 12 has it, without the usrmerge package (and its perl).
        cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar",
               "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
               *[f"--dpkgopt=path-exclude={p}" for p in SLIM_EXCLUDES],
               *[f"--dpkgopt=path-include={p}" for p in SLIM_INCLUDES],
               "--aptopt=Acquire::Retries 3", *[f"--aptopt={o}" for o in DOCKER_CLEAN],
               CODENAMES[release.split(".")[0]], str(tarball)]
        with log.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False)
        if proc.returncode != 0:
            raise ImageError(f"mmdebstrap failed ({proc.returncode}); see {log}")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("./etc/debian_version")
            actual = member.read().decode().strip() if member else "?"
        if actual != release:
            # Debian's mirror serves the current point release; the name says which one the Dockerfile
            # pins. Say so rather than pretend.
            print(f"image: note: {ref} made from Debian {actual} (the mirror's current point release)",
                  flush=True)
        _run(["podman", "import", "--change", "CMD [\"bash\"]", "--change", "ENV PATH=/usr/local/sbin:"
              "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", str(tarball), qualified(ref)], timeout=600)


def host_toolchain(version: str) -> Path:
    rustc = shutil.which("rustc")
    if rustc is None:
        raise ImageError("no Rust toolchain on this machine to make the Rust base from")
    sysroot = _run([rustc, f"+{version}", "--print", "sysroot"], check=False).stdout.strip()
    if not sysroot:
        sysroot = _run([rustc, "--print", "sysroot"]).stdout.strip()
    found = _run([str(Path(sysroot) / "bin" / "rustc"), "--version"]).stdout.split()
    if len(found) < 2 or found[1] != version:
        raise ImageError(f"the Dockerfile asks for Rust {version}; this machine has {' '.join(found[:2])}: "
                         "make them match (the base is made from this machine's toolchain)")
    return Path(sysroot).resolve()


def _rust_tar(sysroot: Path, version: str, dest: Path) -> None:
    """/usr/local/rustup/toolchains/<version>-<triple> (no documentation) and /usr/local/cargo/bin links,
    the layout of the official Rust image."""
    triple = "x86_64-unknown-linux-gnu"
    root = f"usr/local/rustup/toolchains/{version}-{triple}"
    with tarfile.open(dest, "w") as tar:
        for top in ("bin", "lib", "libexec", "etc"):
            if (sysroot / top).exists():
                tar.add(sysroot / top, arcname=f"{root}/{top}")
        for tool in ("cargo", "rustc", "rustdoc"):
            link = tarfile.TarInfo(f"usr/local/cargo/bin/{tool}")
            link.type = tarfile.SYMTYPE
            link.linkname = f"/{root}/bin/{tool}"
            tar.addfile(link)


def make_rust_base(ref: str, debian_ref: str) -> None:
    version = rust_version(ref)
    sysroot = host_toolchain(version)
    with tempfile.TemporaryDirectory(prefix="aksdns-rust-") as tmp:
        tarball = Path(tmp) / "rust.tar"
        _rust_tar(sysroot, version, tarball)
        ctr = _run(["buildah", "from", "--pull=never", qualified(debian_ref)]).stdout.strip()
        try:
            _run(["buildah", "add", ctr, str(tarball), "/"], timeout=600)
            _run(["buildah", "config", "--env", "RUSTUP_HOME=/usr/local/rustup",
                  "--env", "CARGO_HOME=/usr/local/cargo",
                  "--env", "PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  "--env", f"RUST_VERSION={version}", ctr])
            _run(["buildah", "commit", "--rm", ctr, qualified(ref)], timeout=600)
            ctr = ""
        finally:
            if ctr:
                _run(["buildah", "rm", ctr], check=False)


def ensure_bases(log: Path, rebuild: bool = False) -> list[str]:
    """Make each base the Dockerfile names unless container storage has it. Returns those made."""
    bases = dockerfile_bases(DOCKERFILE.read_text())
    debian = [b for b in bases if re.search(r"(^|/)debian:", b)]
    made: list[str] = []
    for ref in debian + [b for b in bases if b not in debian]:
        if not rebuild and image_exists(qualified(ref)):
            continue
        if ref in debian:
            make_debian_base(ref, log)
        else:
            if not debian:
                raise ImageError(f"{ref}: the Rust base is made on the Dockerfile's Debian base; none named")
            make_rust_base(ref, debian[0])
        made.append(ref)
    return made


# ---- the image ---------------------------------------------------------------------------------


@contextmanager
def _trust_files() -> Iterator[list[str]]:
    """Volumes that let pip and cargo in the build's RUN steps trust this machine's CA bundle (its
    registries are reached through a TLS-inspecting proxy). Config files only, mounted for the build:
    nothing lands in a layer and the Dockerfile stays the one users build with Docker."""
    if not HOST_CA.is_file():
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="aksdns-trust-") as tmp:
        pip_conf = Path(tmp) / "pip.conf"
        pip_conf.write_text("[global]\ncert = /run/aksdns-build-ca.crt\n")
        cargo_conf = Path(tmp) / "config.toml"
        cargo_conf.write_text('[http]\ncainfo = "/run/aksdns-build-ca.crt"\n')
        yield ["--volume", f"{HOST_CA}:/run/aksdns-build-ca.crt:ro",
               "--volume", f"{pip_conf}:/etc/pip.conf:ro",
               "--volume", f"{cargo_conf}:/.cargo/config.toml:ro"]


def buildah_build(tag: str, target: str | None, log: Path, version: str) -> None:
    with _trust_files() as trust:
        # Docker's image format, as `docker build` makes: OCI's has no SHELL, so pipefail would be lost.
        cmd = ["buildah", "build", "--format=docker", "--layers", "--pull=never", "--runtime", RUNTIME,
               "--network", "host",
               *[f"--ulimit={u}" for u in ULIMITS], *trust, "--build-arg", f"VERSION={version}",
               "--file", str(DOCKERFILE), "--tag", tag]
        if target:
            cmd += ["--target", target]
        cmd.append(str(REPO))
        with log.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise ImageError(f"buildah build failed ({proc.returncode}); the end of {log}:\n{tail}")


@dataclass(frozen=True)
class BuildResult:
    ref: str
    bases_made: list[str]
    seconds_bases: float
    seconds_image: float
    size_bytes: int
    log: str


def build(rebuild_bases: bool = False) -> BuildResult:
    missing = missing_tools()
    if missing:
        raise ImageError(f"missing {', '.join(missing)}: scripts/bootstrap installs them")
    work = cache_dir() / "image"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    log.write_text("")
    version = project_version()
    ref = image_ref(version)
    t0 = time.monotonic()
    made = ensure_bases(log, rebuild_bases)
    t1 = time.monotonic()
    # The builder stage is tagged too, so pruning untagged images below keeps its cached layers.
    buildah_build(BUILD_CACHE_TAG, "builder", log, version)
    buildah_build(ref, None, log, version)
    t2 = time.monotonic()
    # Earlier builds' images (untagged now) would otherwise pile up a few hundred MB per source change.
    _run(["podman", "image", "prune", "--force"], timeout=600, check=False)
    return BuildResult(ref=ref, bases_made=made, seconds_bases=round(t1 - t0, 1), seconds_image=round(t2 - t1, 1),
                       size_bytes=image_size(ref), log=str(log))


# ---- what the built image holds ------------------------------------------------------------------


def image_size(ref: str) -> int:
    out = _run(["podman", "image", "inspect", "--format", "{{.Size}}", ref]).stdout.strip()
    return int(out)


@contextmanager
def mounted(ref: str) -> Iterator[Path]:
    """The image's root file system, read from container storage (rootful `podman image mount`)."""
    path = _run(["podman", "image", "mount", ref], timeout=120).stdout.strip()
    try:
        yield Path(path)
    finally:
        _run(["podman", "image", "unmount", ref], check=False)


def dpkg_packages(root: Path) -> dict[str, dict[str, str]]:
    """Installed Debian packages from /var/lib/dpkg/status: name -> fields."""
    packages: dict[str, dict[str, str]] = {}
    text = (root / "var/lib/dpkg/status").read_text(errors="replace")
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in para.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            packages[fields["Package"]] = fields
    return packages


def site_packages(root: Path) -> Path:
    found = sorted((root / "opt/aksdns/lib").glob("python3*/site-packages"))
    if not found:
        raise ImageError("no virtualenv at /opt/aksdns in the image")
    return found[0]


def python_distributions(root: Path) -> dict[str, str]:
    """name -> version of every distribution in the image's virtualenv (read, not run)."""
    from importlib.metadata import distributions

    out: dict[str, str] = {}
    for dist in distributions(path=[str(site_packages(root))]):
        name = dist.metadata["Name"]
        if name:
            out[name] = dist.version
    return out


@dataclass(frozen=True)
class Facts:
    ref: str
    size_bytes: int
    user: str
    entrypoint: list[str]
    cmd: list[str]
    layers: int
    debian_version: str
    python: str
    build_tools: list[str]
    venv_has_pip: bool
    rust_in_image: bool
    setid_files: list[str]
    tcpdump_caps: str
    deb_count: int
    python_count: int


def file_caps(path: Path) -> str:
    """The security.capability xattr of a file as `cap_net_admin,cap_net_raw=ep` ('' when none)."""
    try:
        raw = os.getxattr(path, "security.capability")
    except OSError:
        return ""
    magic = int.from_bytes(raw[0:4], "little")
    permitted = int.from_bytes(raw[4:8], "little") | (int.from_bytes(raw[12:16], "little") << 32 if len(raw) >= 16
                                                      else 0)
    names = {12: "cap_net_admin", 13: "cap_net_raw"}
    caps = [names.get(bit, f"cap_{bit}") for bit in range(64) if permitted >> bit & 1]
    flags = "ep" if magic & 1 else "p"
    return f"{','.join(sorted(caps))}={flags}" if caps else ""


def facts(ref: str | None = None) -> Facts:
    ref = ref or image_ref()
    info = json.loads(_run(["podman", "image", "inspect", ref]).stdout)[0]
    config = info.get("Config") or {}
    with mounted(ref) as root:
        debs = dpkg_packages(root)
        pys = python_distributions(root)
        setid = []
        for base in ("usr", "bin", "sbin", "opt", "etc"):
            for dirpath, _dirs, files in os.walk(root / base):
                for f in files:
                    p = Path(dirpath) / f
                    try:
                        if not p.is_symlink() and p.stat().st_mode & 0o6000:
                            setid.append("/" + str(p.relative_to(root)))
                    except OSError:
                        continue
        result = Facts(
            ref=ref,
            size_bytes=int(info.get("Size", 0)),
            user=str(config.get("User", "")),
            entrypoint=list(config.get("Entrypoint") or []),
            cmd=list(config.get("Cmd") or []),
            layers=len((info.get("RootFS") or {}).get("Layers") or []),
            debian_version=(root / "etc/debian_version").read_text().strip(),
            python=debs.get("python3.11", {}).get("Version", ""),
            build_tools=sorted(t for t in BUILD_TOOLS if t in debs),
            venv_has_pip=any(n.lower() in {"pip", "setuptools", "wheel"} for n in pys),
            rust_in_image=(root / "usr/local/cargo").exists() or (root / "usr/local/rustup").exists(),
            setid_files=sorted(setid),
            tcpdump_caps=file_caps(root / "usr/bin/tcpdump"),
            deb_count=len(debs),
            python_count=len(pys),
        )
    return result


def sbom(ref: str, out: Path) -> Path:
    from testbed.sbom import image_bom

    with mounted(ref) as root:
        text = image_bom(ref, dpkg_packages(root), python_distributions(root), project_version(),
                         (root / "etc/debian_version").read_text().strip())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def default_sbom_path(ref: str | None = None) -> Path:
    tag = (ref or image_ref()).rsplit(":", 1)[-1]
    return cache_dir() / "image" / f"aksdns-{tag}.cdx.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.image", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="make the bases (once) and build the image")
    b.add_argument("--rebuild-bases", action="store_true", help="make the Debian and Rust bases again")
    b.add_argument("--sbom", action="store_true", help="write the SBOM after the build")
    s = sub.add_parser("sbom", help="write a CycloneDX SBOM of the built image")
    s.add_argument("out", type=Path, nargs="?")
    sub.add_parser("facts", help="print what the built image holds (JSON)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            result = build(args.rebuild_bases)
            made = ", ".join(result.bases_made) or "none (cached)"
            print(f"image: {result.ref}, {result.size_bytes / 1e6:.0f} MB; bases made: {made} "
                  f"({result.seconds_bases:.0f} s); image build {result.seconds_image:.0f} s; log {result.log}")
            if args.sbom:
                print(f"image: SBOM {sbom(result.ref, default_sbom_path(result.ref))}")
        elif args.cmd == "sbom":
            print(sbom(image_ref(), args.out or default_sbom_path()))
        else:
            print(json.dumps(asdict(facts()), indent=2))
    except (ImageError, subprocess.TimeoutExpired) as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
