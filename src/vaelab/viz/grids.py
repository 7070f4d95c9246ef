"""Tile images into one picture and save it as PNG."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..checkpoint import atomic_write_bytes
from ..errors import ConfigError


def image_grid(images: torch.Tensor, ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile images (N, C, H, W) with values in [0, 1] into a uint8 array (rows, cols, C), C in {1, 3},
    separated by ``pad`` pixels of mid grey so that black and white borders both stay visible."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1 or 3, H, W); got {tuple(images.shape)}")
    n, c, h, w = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = torch.full((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad), 0.5)
    tiles = images.detach().float().cpu().clamp(0, 1)
    for i in range(n):  # a few dozen tiles per picture: not a hot loop
        r, q = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = tiles[i]
    return (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, ncols: int = 16) -> np.ndarray:
    """Rows of originals, each followed by the row of their reconstructions."""
    rows = []
    for start in range(0, len(originals), ncols):
        rows += [originals[start : start + ncols], reconstructions[start : start + ncols]]
        if len(rows[-1]) < ncols:  # pad a short last pair of rows so each stays aligned
            fill = torch.zeros(ncols - len(rows[-1]), *originals.shape[1:])
            rows[-2], rows[-1] = torch.cat([rows[-2], fill]), torch.cat([rows[-1], fill])
    return image_grid(torch.cat(rows), ncols=ncols)


def png_bytes(array: np.ndarray, scale: int = 1, compress_level: int = 6) -> bytes:
    """A uint8 (rows, cols, 1 or 3) array as the bytes of a PNG file, upscaled by ``scale`` with nearest pixels."""
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def check_png_path(path: str | Path) -> None:
    """A picture is written as PNG, so its path must say so (a ConfigError otherwise)."""
    if Path(path).suffix.lower() != ".png":
        raise ConfigError(f"{path}: the picture is a PNG image; give an output path ending in .png")


def save_png(array: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Save a uint8 (rows, cols, 1 or 3) array as PNG (atomically), upscaled by ``scale`` with nearest pixels."""
    check_png_path(path)
    atomic_write_bytes(path, png_bytes(array, scale))
    return Path(path)
