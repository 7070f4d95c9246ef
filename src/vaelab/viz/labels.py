"""Text on pictures: row names left of a grid and column headings above it, a caption above a frame. Drawn
with Pillow's bundled font (no font files needed), on white margins, after upscaling so the text stays sharp."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_SIZE = 12


def _font(size: int = FONT_SIZE):
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 bundles a scalable font
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def upscale(array: np.ndarray, scale: int) -> np.ndarray:
    """A uint8 (rows, cols, C) array enlarged ``scale`` times with nearest pixels."""
    return array if scale == 1 else array.repeat(scale, axis=0).repeat(scale, axis=1)


def _to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _from_image(image: Image.Image, channels: int) -> np.ndarray:
    array = np.asarray(image)
    return array[..., None] if channels == 1 else array


def text_width(text: str, size: int = FONT_SIZE) -> int:
    left, _, right, _ = _font(size).getbbox(text)
    return int(right - left)


def label_rows(
    grid: np.ndarray,
    names: list[str],
    row_pitch: int,
    pad: int = 2,
    scale: int = 1,
    columns: list[str] | tuple[str, ...] = (),
    col_pitch: int = 0,
    corner: str = "",
) -> np.ndarray:
    """``grid`` (rows, cols, C) upscaled by ``scale`` with a white margin on the left holding one name per row
    of tiles and, given ``columns``, a white band on top holding one heading per column of tiles (thinned to
    every k-th where they would touch; ``corner`` right-aligned in the band above the names). ``row_pitch`` and
    ``col_pitch`` are the tile height and width plus padding in unscaled pixels, ``pad`` the grid's border."""
    big = upscale(grid, scale)
    margin = max((text_width(text) for text in [*names, corner]), default=0) + 10
    band = FONT_SIZE + 8 if columns else 0
    channels = big.shape[-1]
    canvas = Image.new("L" if channels == 1 else "RGB", (big.shape[1] + margin, big.shape[0] + band), "white")
    canvas.paste(_to_image(big), (margin, band))
    draw, font = ImageDraw.Draw(canvas), _font()
    for i, name in enumerate(names):
        middle = band + (pad + i * row_pitch + (row_pitch - pad) / 2) * scale
        draw.text((4, middle), name, fill="black", font=font, anchor="lm")
    for i, heading in enumerate(spaced(list(columns), col_pitch * scale)):
        centre = margin + (pad + i * col_pitch + (col_pitch - pad) / 2) * scale
        draw.text((centre, band / 2), heading, fill="black", font=font, anchor="mm")
    if columns and corner:
        draw.text((margin - 6, band / 2), corner, fill="black", font=font, anchor="rm")
    return _from_image(canvas, channels)


def spaced(labels: list[str], room: int) -> list[str]:
    """Every k-th of ``labels`` side by side ``room`` pixels apart (the others blank), k the smallest step at
    which neighbours keep 6 pixels between them."""
    widest = max((text_width(text) for text in labels), default=0)
    k = max(1, -(-(widest + 6) // max(room, 1)))
    return [text if i % k == 0 else "" for i, text in enumerate(labels)]


def number(value: float) -> str:
    """A short label for a number: at most two decimals, no trailing zeros, no "-0"."""
    return f"{round(float(value), 2) + 0.0:g}"


def caption(array: np.ndarray, text: str, size: int = FONT_SIZE) -> np.ndarray:
    """``array`` (rows, cols, C) with a white band above it holding ``text``."""
    channels = array.shape[-1]
    band = size + 8
    canvas = Image.new("L" if channels == 1 else "RGB", (array.shape[1], array.shape[0] + band), "white")
    canvas.paste(_to_image(array), (0, band))
    ImageDraw.Draw(canvas).text((4, band / 2), text, fill="black", font=_font(size), anchor="lm")
    return _from_image(canvas, channels)
