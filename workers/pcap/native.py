"""The bridge to the compiled core (``native/``, module ``aksdns_native``).

The core streams the captures once and returns its figures as JSON text; this module
turns its failures into the product's errors: a file it cannot read becomes a
:class:`~aksdns.errors.CaptureFileError`, a missing core a one-line :class:`AksDnsError`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

import orjson

from aksdns.errors import AksDnsError, CaptureFileError

INSTALL_HINT = "the compiled capture analyzer (aksdns_native) is not installed: run `.venv/bin/pip install ./native`"


class NativeCoreMissing(AksDnsError):
    """``aksdns_native`` cannot be imported (the worker image or venv lacks ./native)."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def _core() -> Any:
    try:
        return importlib.import_module("aksdns_native")
    except ImportError as err:
        raise NativeCoreMissing() from err


def analyze_raw(
    paths: Sequence[str | os.PathLike[str]], *, slow_s: float, list_limit: int, wireshark44: bool = False
) -> dict[str, Any]:
    """Run the one-pass analysis; returns the core's JSON document as a dict.

    ``wireshark44`` adds Wireshark 4.4's ``dns,tree`` and ``dns_qr,tree`` text.
    """
    core = _core()
    names = [os.fspath(p) for p in paths]
    for name in names:
        # The core reports unreadable files too; checking here gives the usual wording
        # for the common mistakes before any work starts.
        if os.path.isdir(name):
            raise CaptureFileError(name, "is a directory, not a capture file")
    try:
        text = core.analyze(names, float(slow_s), int(list_limit), bool(wireshark44))
    except core.CaptureError as err:
        path, reason = err.args if len(err.args) == 2 else ("", str(err))
        raise CaptureFileError(str(path), str(reason).splitlines()[0]) from None
    doc: dict[str, Any] = orjson.loads(text)  # about 1 MB per million packets: twice as fast as json
    return doc


def synthesize(path: str | os.PathLike[str], packets: int, *, seed: int = 1) -> int:
    """Write a realistic CoreDNS capture of about ``packets`` packets (benchmarks)."""
    written: int = _core().synthesize(os.fspath(path), int(packets), int(seed))
    return written
