"""One pass over the captures, and the renderings the CLI prints as they are.

``analyze_files`` runs the compiled core; ``render`` gives ``json``, ``csv`` or tshark's
own text (``dns,tree`` of Wireshark 4.0, or ``dns,tree`` and ``dns_qr,tree`` of 4.4).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workers.pcap.native import PendingAnalysis, start_analysis

if TYPE_CHECKING:
    from workers.analysis.traffic.model import AnalysisResult

FORMATS = ("json", "csv", "tshark")
WIRESHARK_VERSIONS = ("4.0", "4.4")
LIST_LIMIT = 1000  # list entries kept per list (unanswered, slow, followed lookups, evidence)
# Records of the lists unanswered, slow and clients the typed result holds: what the report and
# the JSON payload show (formats.JSON_LIST_LIMIT).  The CSV (result.tx_csv, written by the core)
# has all LIST_LIMIT: reading 2,000 records into objects cost about 15 ms at 1 M packets.
SHOWN = 200


class Pending:
    """An analysis under way (the core on its own thread): import and prepare meanwhile."""

    def __init__(self, native: PendingAnalysis, wireshark: str, trees_only: bool) -> None:
        self._native = native
        self._wireshark = wireshark
        self._trees_only = trees_only

    def result(self) -> AnalysisResult:
        """Wait for the pass; the typed result."""
        if self._trees_only:
            raise ValueError("this pass computed tshark's text only (trees_only=True)")
        # The typed model loads here, not at import: `--format tshark` does not need it.
        from workers.analysis.traffic.model import AnalysisResult

        return AnalysisResult.from_json(self._native.result())

    def tshark_text(self) -> str:
        """Wait for the pass; only tshark's text (``--format tshark``), without the typed model."""
        doc = self._native.trees() if self._trees_only else self._native.result()
        return str(doc["tshark_tree_44" if self._wireshark == "4.4" else "tshark_tree"])


def start(
    paths: Sequence[str | os.PathLike[str]], *, slow_s: float = 5.0, wireshark: str = "4.0", trees_only: bool = False
) -> Pending:
    """Start the one pass over the captures, read as one merged capture (mergecap order: by
    time stamp); the core runs on its own threads while the caller goes on.

    ``wireshark="4.4"`` also computes Wireshark 4.4's two trees (``result.tshark_tree_44``).
    ``trees_only=True`` computes tshark's text and nothing else (``--format tshark``: the
    statistics thread skips every other figure); such a pass has ``tshark_text()``, no ``result()``.
    ``Pending.result()`` raises :class:`aksdns.errors.CaptureFileError` for a file that is
    empty, not a capture or cut short in its header; a capture cut short mid-packet gives
    statistics for every complete packet and a warning in ``result.warnings``.
    """
    if not paths:
        raise ValueError("analyze needs at least one capture file")
    if wireshark not in WIRESHARK_VERSIONS:
        raise ValueError(f"unknown Wireshark version {wireshark!r}; expected one of {', '.join(WIRESHARK_VERSIONS)}")
    early = _prestarted.pop(_inputs(paths, slow_s, wireshark, trees_only), None)
    if early is not None:
        return early
    native = start_analysis(
        paths, slow_s=slow_s, list_limit=LIST_LIMIT, wireshark44=wireshark == "4.4", trees_only=trees_only,
        shown=SHOWN,
    )
    return Pending(native, wireshark, trees_only)


# Passes the CLI started before it had parsed its command (console.entry), by their inputs:
# at most one, adopted by the start() that asks for exactly the same inputs.
Inputs = tuple[tuple[str, ...], float, str, bool]
_prestarted: dict[Inputs, Pending] = {}


def _inputs(paths: Sequence[str | os.PathLike[str]], slow_s: float, wireshark: str, trees_only: bool) -> Inputs:
    return tuple(os.fspath(p) for p in paths), float(slow_s), wireshark, trees_only


def prestart(
    paths: Sequence[str | os.PathLike[str]], *, slow_s: float = 5.0, wireshark: str = "4.0", trees_only: bool = False
) -> None:
    """Start a pass now for a later :func:`start` with the same inputs to adopt (a head start)."""
    pending = start(paths, slow_s=slow_s, wireshark=wireshark, trees_only=trees_only)
    _prestarted.clear()
    _prestarted[_inputs(paths, slow_s, wireshark, trees_only)] = pending


def analyze_files(
    paths: Sequence[str | os.PathLike[str]], *, slow_s: float = 5.0, wireshark: str = "4.0"
) -> AnalysisResult:
    """Analyse the captures and wait for the result (see :func:`start`)."""
    return start(paths, slow_s=slow_s, wireshark=wireshark).result()


def tshark_text(paths: Sequence[str | os.PathLike[str]], *, slow_s: float = 5.0, wireshark: str = "4.0") -> str:
    """Only tshark's text (``--format tshark``): the pass that computes nothing else."""
    return start(paths, slow_s=slow_s, wireshark=wireshark, trees_only=True).tshark_text()


def render(result: AnalysisResult, fmt: str, *, wireshark: str = "4.0") -> str:
    """``json`` (every figure), ``csv`` (unanswered and slow queries) or ``tshark``."""
    from workers.analysis.traffic import formats

    if fmt == "json":
        return formats.render_json(result)
    if fmt == "csv":
        return formats.render_csv(result)
    if fmt == "tshark":
        if wireshark == "4.4":
            if result.tshark_tree_44 is None:
                raise ValueError("this analysis ran without wireshark='4.4'")
            return result.tshark_tree_44
        return result.tshark_tree
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
