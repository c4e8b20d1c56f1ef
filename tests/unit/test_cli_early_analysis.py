"""The CLI's head start for `analyze` (console.entry) and the analysis started on its own thread."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aksdns.errors import CaptureFileError
from console import entry
from workers.analysis.traffic import analysis
from workers.pcap import native
from workers.pcap import synth as S

T0 = 1_711_990_000_000_000_000
CLIENT = S.Endpoint("10.0.0.5", 40000)
SERVER = S.Endpoint("10.0.0.10", 53)


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    packets = []
    for i in range(50):
        t = T0 + i * 10_000_000
        packets.append(S.udp_packet(t, CLIENT, SERVER, S.dns_message(i, "db.contoso.com")))
        if i % 10:  # every tenth lookup is never answered
            packets.append(S.udp_packet(t + 2_000_000, SERVER, CLIENT,
                                        S.dns_message(i, "db.contoso.com", response=True)))
    path = tmp_path / "c.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, packets)
    return path


class CountingCore:
    """The real core, with a count of the passes it was asked for."""

    def __init__(self) -> None:
        self.core = native.core()
        self.CaptureError = self.core.CaptureError
        self.calls: list[tuple[Any, ...]] = []

    def analyze(self, *args: Any) -> str:
        self.calls.append(args)
        text: str = self.core.analyze(*args)
        return text


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingCore:
    core = CountingCore()
    monkeypatch.setattr(native, "core", lambda: core)
    monkeypatch.setattr(analysis, "_prestarted", {})
    return core


def test_inputs_of_a_plain_analyze_command_line(capture: Path) -> None:
    c = str(capture)
    assert entry.early_analysis_inputs(["analyze", c]) == ([c], "4.0")
    assert entry.early_analysis_inputs(["analyze", c, c, "--out", "/tmp/x"]) == ([c, c], "4.0")
    assert entry.early_analysis_inputs(["analyze", c, "--format", "tshark", "--wireshark", "4.4"]) == ([c], "4.4")
    # 4.4's trees are only read by --format tshark: every other format runs the 4.0 pass.
    assert entry.early_analysis_inputs(["analyze", c, "--format", "json", "--wireshark", "4.4"]) == ([c], "4.0")


@pytest.mark.parametrize("tail", [
    [],  # no file
    ["--dry-run"],
    ["--help"],
    ["--slow", "2"],  # a grammar option: the quick look does not guess its meaning
    ["--format=tshark"],
    ["missing.pcap"],
    ["--format", "tshark", "--wireshark", "3.6"],
])
def test_no_head_start_for_what_the_quick_look_does_not_fully_understand(capture: Path, tail: list[str]) -> None:
    args = ["analyze", *([str(capture)] if tail != [] else []), *tail]
    assert entry.early_analysis_inputs(args) is None
    assert entry.early_analysis_inputs(["dig", str(capture)]) is None
    assert entry.early_analysis_inputs(["analyze", str(capture.parent)]) is None  # a directory


def test_the_cli_adopts_its_head_start_one_pass_only(
    capture: Path, counting: CountingCore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry.run(["analyze", str(capture), "--format", "tshark"]) == 0
    out = capsys.readouterr().out
    assert out == analysis.tshark_text([capture])
    assert "DNS" in out
    assert len(counting.calls) == 2  # the command's one pass, then the comparison's own


def test_a_head_start_with_other_inputs_is_not_used(capture: Path, counting: CountingCore) -> None:
    analysis.prestart([capture], wireshark="4.4")
    result = analysis.analyze_files([capture], slow_s=0.001)  # other inputs: a pass of its own
    assert [c[1] for c in counting.calls] == [5.0, 0.001]
    assert result.slow_threshold_s == 0.001
    assert result.tshark_tree_44 is None  # not the 4.4 pass started early
    assert analysis.start([capture], wireshark="4.4").tshark_text() == analysis.tshark_text([capture], wireshark="4.4")
    assert len(counting.calls) == 3  # the early 4.4 pass was adopted by the start() that matched it


def test_errors_of_a_pass_reach_the_caller_when_it_waits(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    pending = analysis.start([bad])  # the pass runs on its own thread: the failure comes with the result
    with pytest.raises(CaptureFileError, match="not a pcap or pcapng capture"):
        pending.result()
    with pytest.raises(CaptureFileError, match="is a directory"):
        analysis.start([tmp_path])


@pytest.mark.parametrize("tail", [["--format", "csv"], ["--out", "OUT"]])
def test_the_console_script_writes_everything_before_its_quick_exit(capture: Path, tmp_path: Path,
                                                                    tail: list[str]) -> None:
    # The real console script in a process of its own: analyze leaves through os._exit, so
    # whatever was buffered must have been flushed and the --out files closed by then.
    tail = [str(tmp_path / "out") if t == "OUT" else t for t in tail]
    script = Path(sys.executable).parent / "aksdns"
    proc = subprocess.run([str(script), "analyze", str(capture), *tail], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    if "--out" in tail:
        assert "Unanswered queries" in proc.stdout
        files = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert files == ["dns-response-times.png", "dns-signatures.csv", "dns-timeline.png",
                         "dns-unanswered-and-slow.csv"]
        assert (tmp_path / "out" / "dns-unanswered-and-slow.csv").read_text().count("\nunanswered,") == 5
    else:
        assert proc.stdout.count("\nunanswered,") == 5  # every tenth of 50 lookups


def test_a_failing_analyze_still_says_why_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    script = Path(sys.executable).parent / "aksdns"
    proc = subprocess.run([str(script), "analyze", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("aksdns: ") and "not a pcap or pcapng capture" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_short_roads_default_slow_threshold_is_the_commands() -> None:
    from aksdns.commands import AnalyzeCommand
    from console import analyze_cli

    assert analyze_cli.DEFAULT_SLOW_S == AnalyzeCommand().slow_s


def test_what_the_quick_look_understands(capture: Path) -> None:
    c = str(capture)
    assert entry.analyze_request(["analyze", c, "--format", "json", "--out", "D", "--format", "csv"]) == \
        entry.AnalyzeRequest([c], "csv", "4.0", "D")  # argparse's rule: the last value counts
    assert entry.analyze_request(["analyze", c, "--format", "xml"]) is None  # argparse's message, not a guess
    assert entry.analyze_request(["analyze", c, "--format", "json", "--wireshark", "3.6"]) is None
    assert entry.analyze_request(["analyze", c, "--out", "-x"]) is None  # argparse: "expected one argument"


_ROAD_PROBE = """
import sys
from console import entry
code = entry.run(sys.argv[1:])
loaded = [m for m in ("aksdns.grammar", "aksdns.verbs", "aksdns.commands", "aksdns.settings", "workers.jobs")
          if m in sys.modules]
print("LOADED " + " ".join(loaded), file=sys.stderr)
sys.exit(code)
"""


def _road(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _ROAD_PROBE, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "tshark"])
def test_the_short_road_prints_what_the_grammars_road_prints(capture: Path, tmp_path: Path, fmt: str) -> None:
    # `--slow 5` (the default) sends the same command down the grammar's road.
    short = _road(["analyze", str(capture), "--format", fmt, "--out", str(tmp_path / "short")])
    full = _road(["analyze", str(capture), "--slow", "5", "--format", fmt, "--out", str(tmp_path / "full")])
    assert short.returncode == full.returncode == 0, short.stderr + full.stderr
    assert short.stderr.strip() == "LOADED"  # no grammar, registry, settings or job table
    assert "aksdns.grammar" in full.stderr and "workers.jobs" not in full.stderr
    assert short.stdout == full.stdout
    assert ("DNS" in short.stdout) == (fmt != "csv")
    assert short.stdout.count("\nunanswered,") == (5 if fmt == "csv" else 0)
    if fmt in {"text", "json"}:
        for name in ("dns-response-times.png", "dns-signatures.csv", "dns-timeline.png", "dns-unanswered-and-slow.csv"):
            assert (tmp_path / "short" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_a_file_name_the_grammar_refuses_gets_the_grammars_message(capture: Path, tmp_path: Path) -> None:
    odd = tmp_path / "a;b.pcap"
    odd.write_bytes(capture.read_bytes())
    proc = _road(["analyze", str(odd)])
    assert proc.returncode == 2
    assert "aksdns.grammar" in proc.stderr  # the full road answered
    assert proc.stderr.startswith("aksdns: argument `") and "forbidden characters (';')" in proc.stderr
