"""A picture as a list of drawing operations, drawn and encoded by the compiled core
(``aksdns_native.draw_png``, native/src/canvas.rs).

The methods are the few of Pillow's ``ImageDraw`` the charts use, with the same coordinates
(rectangle corners inclusive, text placed by its top left); ``font`` is the text's size in
pixels.  Pillow drew the pictures before: importing it cost every `analyze --out` 20-25 ms
of CPU and drawing two pictures 14-20 ms more (docs/analyze.md, "Benchmark").
"""

from __future__ import annotations

from collections.abc import Sequence

from workers.pcap.native import core

Colour = tuple[int, int, int]
Point = tuple[float, float]
Op = tuple[str, list[float], Colour, float, str]


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.ops: list[Op] = []

    def rectangle(self, xy: Sequence[float], *, fill: Colour | None = None, outline: Colour | None = None) -> None:
        x0, y0, x1, y1 = (float(v) for v in xy)
        if fill is not None:
            self.ops.append(("fill", [x0, y0, x1, y1], fill, 0.0, ""))
        if outline is not None:
            self.ops.append(("outline", [x0, y0, x1, y1], outline, 0.0, ""))

    def line(self, xy: Sequence[float], *, fill: Colour, width: float = 1) -> None:
        """A polyline through the points ``x0, y0, x1, y1, ...``."""
        flat = [float(v) for v in xy]
        if len(flat) >= 4:
            self.ops.append(("line", flat, fill, float(width), ""))

    def ellipse(self, xy: Sequence[float], *, fill: Colour) -> None:
        """A dot: the circle inside the box ``xy``."""
        x0, y0, x1, y1 = (float(v) for v in xy)
        self.ops.append(("dot", [(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2], fill, 0.0, ""))

    def text(self, xy: Point, text: str, *, fill: Colour, font: int) -> None:
        self.ops.append(("text", [float(xy[0]), float(xy[1])], fill, float(font), text))

    def png(self) -> bytes:
        """The picture: an 8-bit RGB PNG file."""
        width, height = self.size
        data: bytes = core().draw_png(width, height, self.ops)
        return data
