"""The pictures' canvas (workers.analysis.traffic.canvas, drawn by native/src/canvas.rs), read
back by Pillow: every operation lands where asked, bad operations get a clear refusal, and a
real capture's histogram shows its bars and its slow threshold."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from workers.analysis.traffic import charts
from workers.analysis.traffic.analysis import analyze_files
from workers.analysis.traffic.canvas import Canvas
from workers.pcap import synth as S

RED, BLUE, INK, WHITE = (200, 0, 0), (0, 0, 220), (0, 0, 0), (255, 255, 255)


def pixels(image: Image.Image) -> dict[tuple[int, int], tuple[int, int, int]]:
    width, height = image.size
    data = image.tobytes()
    return {(x, y): (data[3 * (y * width + x)], data[3 * (y * width + x) + 1], data[3 * (y * width + x) + 2])
            for y in range(height) for x in range(width)}


def read(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.mode) == ("PNG", "RGB")
    return image


def test_each_operation_lands_where_asked() -> None:
    c = Canvas(120, 80)
    c.rectangle((10, 10, 19, 14), fill=RED)
    c.rectangle((30, 30, 40, 40), outline=INK)
    c.line((0, 70, 119, 70), fill=BLUE)
    c.ellipse((98, 40, 104, 46), fill=RED)
    c.text((50, 2), "DNS 10.0.0.1", fill=BLUE, font=14)
    image = read(c.png())
    assert image.size == (120, 80)
    px = pixels(image)
    assert px[(10, 10)] == px[(19, 14)] == RED  # both corners inclusive, as Pillow's rectangle
    assert px[(20, 14)] == px[(10, 15)] == WHITE
    assert px[(30, 35)] == px[(40, 35)] == px[(35, 30)] == INK and px[(35, 35)] == WHITE
    assert px[(5, 70)] == px[(115, 70)] == BLUE and px[(5, 69)] == WHITE
    assert px[(101, 43)] == RED and px[(110, 43)] == WHITE
    inked = [px[(x, y)] for x in range(50, 120) for y in range(2, 20) if px[(x, y)] != WHITE]
    assert len(inked) > 40 and all(b > r for r, _, b in inked), "the text is drawn in its colour"
    assert px[(0, 0)] == WHITE


@pytest.mark.parametrize("op", [("fill", [1.0, 2.0], (0, 0, 0), 0.0, ""), ("spiral", [1.0, 2.0, 3.0, 4.0],
                                                                               (0, 0, 0), 0.0, "")])
def test_a_bad_operation_is_refused(op: tuple[str, list[float], tuple[int, int, int], float, str]) -> None:
    c = Canvas(10, 10)
    c.ops.append(op)
    with pytest.raises(ValueError, match="operation"):
        c.png()


@pytest.mark.parametrize("size", [(0, 10), (10, 5000)])
def test_a_picture_out_of_bounds_is_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="out of bounds"):
        Canvas(*size).png()


def test_histogram_of_a_capture_shows_bars_and_the_slow_threshold(tmp_path: Path) -> None:
    c, d = S.Endpoint("10.0.0.5", 40000), S.Endpoint("10.0.0.10", 53)
    t0 = 1_711_990_000_000_000_000
    packets = []
    for i in range(40):  # answers after 2 ms, and a few after 3 s (slow at --slow 1)
        gap = 3_000_000_000 if i % 10 == 0 else 2_000_000
        packets.append(S.udp_packet(t0 + i * 10_000_000, c, d, S.dns_message(i, "a.contoso.com")))
        packets.append(S.udp_packet(t0 + i * 10_000_000 + gap, d, c, S.dns_message(i, "a.contoso.com", response=True)))
    path = tmp_path / "q.pcap"
    with path.open("wb") as f:
        S.write_pcap(f, sorted(packets, key=lambda p: p.ts_ns), nanosecond=True)
    image = read(charts.histogram_png(analyze_files([path], slow_s=1.0)))
    assert image.size == (charts.W, charts.H)
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 16) or []}
    assert charts.BLUE in colours and charts.RED in colours and charts.INK in colours
