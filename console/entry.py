"""The `aksdns` console script's entry point: `analyze FILE...` takes a short road, every other
command line goes to :func:`console.cli.main`.

`aksdns analyze FILE...` is the command timed against tshark.  A quick look at its command line
(no imports) starts the compiled core's pass at once, on its own threads (it releases the GIL).
When that look fully understands the line — capture files and the CLI's own options with valid
values — the answer is written by :mod:`console.analyze_cli` without the grammar, the verb
registry, the settings or the job table: loading the CLI took 50-61 ms of the main thread's CPU
before, 7-9 ms since (measured at 1 M packets; whole command, 20 alternated runs: text 0.355 ->
0.334 s, json --out 0.400 -> 0.362 s median), CPU the core's threads get instead.  Anything
else (other commands, the grammar's own options such as ``--slow``, ``--dry-run``, help, a value
it does not know) takes the full road; so does a file name the grammar would refuse, so that its
message stays the grammar's.  The short road reads no settings: analyze needs none.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

# The CLI's output formats and Wireshark versions (console.cli checks them with argparse).
CLI_FORMATS = ("text", "json", "csv", "tshark")
WIRESHARK_VERSIONS = ("4.0", "4.4")
# Options of the CLI (console.cli) that take a value; the value is no capture file.
_VALUED = frozenset({"--format", "--wireshark", "--out", "--kubeconfig"})


class AnalyzeRequest(NamedTuple):
    """`analyze FILE... [--format F] [--wireshark V] [--out D] [--kubeconfig K]`, understood."""

    files: list[str]
    fmt: str
    wireshark: str  # what --wireshark asked for; only --format tshark reads 4.4's trees
    out: str | None

    @property
    def pass_version(self) -> str:
        """The Wireshark version of the core's pass: 4.4's trees only for --format tshark."""
        return self.wireshark if self.fmt == "tshark" else "4.0"


def analyze_request(args: Sequence[str]) -> AnalyzeRequest | None:
    """The parts of an `analyze` command line when every word is understood and every file
    exists; None for anything else."""
    if len(args) < 2 or args[0] != "analyze":
        return None
    files: list[str] = []
    options: dict[str, str] = {}
    i = 1
    while i < len(args):
        word = args[i]
        if word in _VALUED and i + 1 < len(args) and not args[i + 1].startswith("-"):
            options[word] = args[i + 1]  # argparse's rule too: the last one counts
            i += 2
            continue
        if word.startswith("-") or not os.path.isfile(word):
            return None
        files.append(word)
        i += 1
    fmt = options.get("--format", "text")
    wireshark = options.get("--wireshark", "4.0")
    if not files or fmt not in CLI_FORMATS or wireshark not in WIRESHARK_VERSIONS:
        return None
    return AnalyzeRequest(files, fmt, wireshark, options.get("--out"))


def early_analysis_inputs(args: Sequence[str]) -> tuple[list[str], str] | None:
    """The files and Wireshark version of the core's pass an `analyze` command line asks for,
    or None (see :func:`analyze_request`)."""
    request = analyze_request(args)
    return None if request is None else (request.files, request.pass_version)


def run(args: Sequence[str]) -> int:
    """The whole CLI: `analyze`'s short road, or :func:`console.cli.main`."""
    return _run(args, analyze_request(args))


def _run(args: Sequence[str], request: AnalyzeRequest | None) -> int:
    if request is not None:
        try:
            from workers.analysis.traffic import analysis

            analysis.prestart(request.files, wireshark=request.pass_version, trees_only=request.fmt == "tshark")
        except Exception:  # noqa: S110 - only a head start: the command itself reports any problem
            pass
    from console.cli import main as cli_main

    return cli_main(list(args), analyze=request)


def main() -> int:
    args = sys.argv[1:]
    request = analyze_request(args)
    code = _run(args, request)
    if request is not None:
        # `analyze` has written everything (stdout, and --out files, closed): leave without the
        # interpreter's teardown, which frees every module and the result object by object
        # (5-20 ms of a 1 M-packet answer of about 0.35 s, measured).  Nothing of it needs
        # atexit handlers.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:  # `aksdns analyze ... | head`: the reader left
            pass
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
