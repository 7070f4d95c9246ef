"""One image file as uint8 pixels, whatever mode PIL opens it in: converted faithfully or refused by name.

| mode | read as |
| --- | --- |
| 1, L | grey (1: 0 or 255) |
| I;16, I;16B, I;16L (16-bit TIFF, PNG), I of a PNG (16-bit grey) | grey, scaled: round(v * 255 / 65535) |
| RGB, RGBX, YCbCr, P (palette), CMYK | RGB (CMYK by PIL's formula R = 255 - C - K, without colour profile) |
| LA, RGBA, PA, P with transparency | grey or RGB when every pixel is opaque; refused if any is transparent |
| I of other formats (32-bit integers), F (floats), La, RGBa, LAB, HSV, multi-frame files | refused, saying what to do |
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

_COLOUR_MODES = {"RGB", "RGBX", "YCbCr", "CMYK", "P", "PA", "RGBA"}
SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W) for grey modes, (H, W, 3) for colour; a DataError naming the file and its mode otherwise."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                raise DataError(f"{path} holds {im.n_frames} frames; save each as its own image")
            return _pixels(im, path)
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read image {path} ({e}); delete or replace it") from None


def _pixels(im, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("LA", "RGBA", "PA"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            raise DataError(
                f"{path} is {mode} with transparent pixels; vaelab does not guess a background: flatten it "
                "onto the one you want (e.g. Image.alpha_composite onto white) and save it without alpha"
            )
        return np.asarray(im.convert("L" if mode == "LA" else "RGB"))
    if mode.startswith("I;16"):
        return _from_16_bit(np.asarray(im).astype(np.uint32))
    if mode == "I":  # a PNG's 16-bit grey; elsewhere 32-bit integers of unknown range
        values = np.asarray(im)
        if im.format != "PNG" or values.min() < 0 or values.max() > 65535:
            raise DataError(
                f"{path} holds 32-bit integers (mode I, {values.min()}..{values.max()}), whose range vaelab cannot "
                "know; save it as 8- or 16-bit greyscale"
            )
        return _from_16_bit(values.astype(np.uint32))
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))
    if mode in _COLOUR_MODES:
        return np.asarray(im.convert("RGB"))
    if mode == "F":
        raise DataError(
            f"{path} holds 32-bit floats (mode F), whose range vaelab cannot know; save 8- or 16-bit images, or "
            "an npz of floats in [0, 1] (data.name=npz:PATH)"
        )
    raise DataError(f"{path} is in mode {mode}, which vaelab does not read; save it as greyscale or RGB")


def _from_16_bit(values: np.ndarray) -> np.ndarray:
    """0..65535 to 0..255, rounded to the nearest."""
    return ((values * 255 + 32767) // 65535).astype(np.uint8)
