"""The bridge to the compiled core (``native/``, module ``aksdns_native``).

The core streams the captures once and returns its figures as JSON text; this module
turns its failures into the product's errors: a file it cannot read becomes a
:class:`~aksdns.errors.CaptureFileError`, a missing core a one-line :class:`AksDnsError`.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from aksdns.errors import AksDnsError, CaptureFileError

INSTALL_HINT = "the compiled capture analyzer (aksdns_native) is not installed: run `.venv/bin/pip install ./native`"


class NativeCoreMissing(AksDnsError):
    """``aksdns_native`` cannot be imported (the worker image or venv lacks ./native)."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def core() -> Any:
    """The compiled core module; NativeCoreMissing when it is not installed."""
    try:
        return importlib.import_module("aksdns_native")
    except ImportError as err:
        raise NativeCoreMissing() from err


class PendingAnalysis:
    """The core's pass, running on a thread of its own from the moment it is started.

    The core releases the GIL for the whole pass, so the caller's thread is free meanwhile:
    it imports and prepares what it will render (the report modules, the drawing library),
    on the CPU the core's pipeline leaves idle, instead of after the pass.
    """

    def __init__(
        self, core: Any, names: list[str], slow_s: float, list_limit: int, wireshark44: bool, trees_only: bool,
        shown: int | None,
    ) -> None:
        self._core = core
        self._text: str | None = None
        self._error: BaseException | None = None
        # A daemon thread: Ctrl-C or an error in the caller ends the process without waiting
        # for a pass nobody will read.
        self._thread = threading.Thread(
            target=self._run, args=(names, float(slow_s), int(list_limit), bool(wireshark44), bool(trees_only), shown),
            name="aksdns-analyze", daemon=True,
        )
        self._thread.start()

    def _run(
        self, names: list[str], slow_s: float, list_limit: int, wireshark44: bool, trees_only: bool, shown: int | None
    ) -> None:
        try:
            self._text = self._core.analyze(names, slow_s, list_limit, wireshark44, trees_only, shown)
        except BaseException as err:  # handed to the caller's thread by result()
            self._error = err

    def _finished_text(self) -> str:
        """Wait for the pass; its JSON text (CaptureFileError for an unreadable file)."""
        self._thread.join()
        err = self._error
        if isinstance(err, self._core.CaptureError):
            path, reason = err.args if len(err.args) == 2 else ("", str(err))
            raise CaptureFileError(str(path), str(reason).splitlines()[0]) from None
        if err is not None:
            raise err
        return self._text or ""

    def result(self) -> dict[str, Any]:
        """Wait for the pass; its JSON document as a dict (CaptureFileError for an unreadable file)."""
        text = self._finished_text()
        # Loaded by start_analysis once the pass runs: its import (uuid, dataclasses, json: 13 ms)
        # would otherwise delay the CLI's head start.  Twice as fast as json on the core's
        # document (about 1 MB per million packets).
        import orjson

        doc: dict[str, Any] = orjson.loads(text)
        return doc

    def trees(self) -> dict[str, Any]:
        """Wait for a trees-only pass; its small document (tshark's texts), read by the standard
        json module: orjson's import would be 13 ms after the pass, json reads it in under 1 ms."""
        text = self._finished_text()
        import json

        doc: dict[str, Any] = json.loads(text)
        return doc


def start_analysis(
    paths: Sequence[str | os.PathLike[str]],
    *,
    slow_s: float,
    list_limit: int,
    wireshark44: bool = False,
    trees_only: bool = False,
    shown: int | None = None,
) -> PendingAnalysis:
    """Start the one-pass analysis on its own thread; ``.result()`` gives the core's JSON document.

    ``wireshark44`` adds Wireshark 4.4's ``dns,tree`` and ``dns_qr,tree`` text; ``trees_only``
    makes the document only tshark's text (``tshark_tree``, ``tshark_tree_44``).  ``tx_csv``
    is the CSV of the kept unanswered and slow records (up to ``list_limit`` each); ``shown``
    cuts the lists ``unanswered``, ``slow`` and ``clients`` to their first ``shown`` entries.  A missing
    core or a directory given as a capture raises here, before any work starts.
    """
    module = core()
    names = [os.fspath(p) for p in paths]
    for name in names:
        # The core reports unreadable files too; checking here gives the usual wording
        # for the common mistakes before any work starts.
        if os.path.isdir(name):
            raise CaptureFileError(name, "is a directory, not a capture file")
    pending = PendingAnalysis(module, names, slow_s, list_limit, wireshark44, trees_only, shown)
    if not trees_only:
        # result() reads with orjson: loaded now, while the pass runs, not after it (13 ms).
        import orjson  # noqa: F401
    return pending


def synthesize(path: str | os.PathLike[str], packets: int, *, seed: int = 1) -> int:
    """Write a realistic CoreDNS capture of about ``packets`` packets (benchmarks)."""
    written: int = core().synthesize(os.fspath(path), int(packets), int(seed))
    return written
