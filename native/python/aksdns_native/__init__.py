"""Compiled capture reader and DNS statistics core of aksdns (Rust, PyO3)."""

from aksdns_native._core import CaptureError, __version__, analyze, draw_png, synthesize

__all__ = ["CaptureError", "__version__", "analyze", "draw_png", "synthesize"]
