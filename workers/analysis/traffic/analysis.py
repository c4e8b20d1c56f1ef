"""One pass over the captures, and the renderings the CLI prints as they are.

``analyze_files`` runs the compiled core; ``render`` gives ``json``, ``csv`` or tshark's
own text (``dns,tree`` of Wireshark 4.0, or ``dns,tree`` and ``dns_qr,tree`` of 4.4).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workers.pcap.native import analyze_raw

if TYPE_CHECKING:
    from workers.analysis.traffic.model import AnalysisResult

FORMATS = ("json", "csv", "tshark")
WIRESHARK_VERSIONS = ("4.0", "4.4")
LIST_LIMIT = 1000  # list entries kept per list (unanswered, slow, followed lookups, evidence)


def analyze_files(
    paths: Sequence[str | os.PathLike[str]], *, slow_s: float = 5.0, wireshark: str = "4.0"
) -> AnalysisResult:
    """Analyse the captures as one merged capture (mergecap order: by time stamp).

    ``wireshark="4.4"`` also computes Wireshark 4.4's two trees (``result.tshark_tree_44``).
    Raises :class:`aksdns.errors.CaptureFileError` for a file that is empty, not a
    capture or cut short in its header; a capture cut short mid-packet gives statistics
    for every complete packet and a warning in ``result.warnings``.
    """
    if not paths:
        raise ValueError("analyze_files needs at least one capture file")
    if wireshark not in WIRESHARK_VERSIONS:
        raise ValueError(f"unknown Wireshark version {wireshark!r}; expected one of {', '.join(WIRESHARK_VERSIONS)}")
    # The typed model and the renderings load here, not at import: `--format tshark` needs neither.
    from workers.analysis.traffic.model import AnalysisResult

    doc = analyze_raw(paths, slow_s=slow_s, list_limit=LIST_LIMIT, wireshark44=wireshark == "4.4")
    return AnalysisResult.from_json(doc)


def tshark_text(paths: Sequence[str | os.PathLike[str]], *, slow_s: float = 5.0, wireshark: str = "4.0") -> str:
    """Only tshark's text (``--format tshark``): the pass without building the typed model."""
    if wireshark not in WIRESHARK_VERSIONS:
        raise ValueError(f"unknown Wireshark version {wireshark!r}; expected one of {', '.join(WIRESHARK_VERSIONS)}")
    doc = analyze_raw(paths, slow_s=slow_s, list_limit=LIST_LIMIT, wireshark44=wireshark == "4.4")
    return str(doc["tshark_tree_44" if wireshark == "4.4" else "tshark_tree"])


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
