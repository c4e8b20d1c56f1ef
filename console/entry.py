"""The `aksdns` console script's entry point: it starts `analyze`'s pass before the rest of the
CLI loads, then hands over to :func:`console.cli.main`.

`aksdns analyze FILE...` is the command timed against tshark, and loading the grammar and the
verb registry takes about 40 ms: the compiled core runs on its own threads meanwhile (it
releases the GIL).  The early pass is only a head start: ``analysis.start`` adopts it when the
parsed command asks for exactly its inputs (files, slow threshold, Wireshark version), and a
command line this quick look does not fully understand gets no early pass at all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# Options of the CLI (console.cli) that take a value; the value is no capture file.
_VALUED = frozenset({"--format", "--wireshark", "--out", "--kubeconfig"})


def early_analysis_inputs(args: Sequence[str]) -> tuple[list[str], str] | None:
    """The files and Wireshark version of `analyze FILE... [--format F] [--wireshark V] [--out D]
    [--kubeconfig K]`, when every other word names an existing file; None for anything else
    (other commands, the grammar's own options, --dry-run, help)."""
    if len(args) < 2 or args[0] != "analyze":
        return None
    files: list[str] = []
    options: dict[str, str] = {}
    i = 1
    while i < len(args):
        word = args[i]
        if word in _VALUED and i + 1 < len(args):
            options[word] = args[i + 1]
            i += 2
            continue
        if word.startswith("-") or not os.path.isfile(word):
            return None
        files.append(word)
        i += 1
    if not files:
        return None
    # Only --format tshark reads 4.4's trees; every other format runs the 4.0 pass.
    wireshark = options.get("--wireshark", "4.0") if options.get("--format") == "tshark" else "4.0"
    if wireshark not in ("4.0", "4.4"):
        return None
    return files, wireshark


def run(args: Sequence[str]) -> int:
    """The whole CLI: `analyze`'s head start, then :func:`console.cli.main`."""
    return _run(args, early_analysis_inputs(args))


def _run(args: Sequence[str], inputs: tuple[list[str], str] | None) -> int:
    if inputs is not None:
        try:
            from workers.analysis.traffic import analysis

            analysis.prestart(inputs[0], wireshark=inputs[1])
        except Exception:  # noqa: S110 - only a head start: the command itself reports any problem
            pass
    from console.cli import main as cli_main

    return cli_main(list(args))


def main() -> int:
    args = sys.argv[1:]
    inputs = early_analysis_inputs(args)
    code = _run(args, inputs)
    if inputs is not None:
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
