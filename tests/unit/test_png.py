"""The report pictures' PNG writer (workers.analysis.traffic.png), read back by Pillow."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageDraw

from workers.analysis.traffic import png


def test_pillow_reads_back_every_pixel() -> None:
    img = Image.new("RGB", (97, 31), "white")
    d = ImageDraw.Draw(img)
    d.rectangle((3, 4, 60, 20), outline="#1a202c", fill="#2b6cb0")
    d.text((5, 5), "p99 12.3 ms", fill="#c53030")
    rnd = random.Random(7)
    for _ in range(200):  # noise, so that no row is flat
        img.putpixel((rnd.randrange(97), rnd.randrange(31)), (rnd.randrange(256), rnd.randrange(256), 0))
    data = png.encode_rgb(97, 31, img.tobytes())
    back = Image.open(io.BytesIO(data))
    back.load()
    assert (back.format, back.mode, back.size) == ("PNG", "RGB", (97, 31))
    assert back.tobytes() == img.tobytes()


@pytest.mark.parametrize(("w", "h", "n"), [(10, 10, 299), (10, 10, 301), (0, 10, 0), (10, -1, 0)])
def test_pixels_that_do_not_fit_the_size_are_refused(w: int, h: int, n: int) -> None:
    with pytest.raises(ValueError, match="RGB pixels"):
        png.encode_rgb(w, h, bytes(n))
