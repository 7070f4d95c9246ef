"""Text on pictures: row names left of a grid, a caption above a frame. Drawn with Pillow's bundled font
(no font files needed), on white margins, after upscaling so the text stays sharp."""

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


def label_rows(grid: np.ndarray, names: list[str], row_pitch: int, pad: int = 2, scale: int = 1) -> np.ndarray:
    """``grid`` (rows, cols, C) upscaled by ``scale`` with a white margin on the left holding one name per row
    of tiles; ``row_pitch`` is the tile height plus padding in unscaled pixels, ``pad`` the top border."""
    big = upscale(grid, scale)
    margin = max((text_width(name) for name in names), default=0) + 10
    channels = big.shape[-1]
    canvas = Image.new("L" if channels == 1 else "RGB", (big.shape[1] + margin, big.shape[0]), "white")
    canvas.paste(_to_image(big), (margin, 0))
    draw, font = ImageDraw.Draw(canvas), _font()
    for i, name in enumerate(names):
        middle = (pad + i * row_pitch + (row_pitch - pad) / 2) * scale
        draw.text((4, middle), name, fill="black", font=font, anchor="lm")
    return _from_image(canvas, channels)


def caption(array: np.ndarray, text: str, size: int = FONT_SIZE) -> np.ndarray:
    """``array`` (rows, cols, C) with a white band above it holding ``text``."""
    channels = array.shape[-1]
    band = size + 8
    canvas = Image.new("L" if channels == 1 else "RGB", (array.shape[1], array.shape[0] + band), "white")
    canvas.paste(_to_image(array), (0, band))
    ImageDraw.Draw(canvas).text((4, band / 2), text, fill="black", font=_font(size), anchor="lm")
    return _from_image(canvas, channels)
