"""Tile images into one picture (optionally with a name per row and a heading per column) and save it as PNG."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..checkpoint import atomic_write_bytes
from ..errors import ConfigError
from .labels import label_rows


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


@dataclass
class LabelledRows:
    """Rows of images (rows, cols, C, H, W) in [0, 1], a name per row, and optionally a heading per column
    (``corner`` names what the headings count); ``pad`` pixels of grey between the tiles."""

    images: torch.Tensor
    names: list[str]
    columns: list[str] | None = None
    corner: str = ""
    pad: int = 2

    def grid(self) -> np.ndarray:
        """The tiles as a uint8 grid (rows, cols, C), without text."""
        return image_grid(self.images.flatten(0, 1), ncols=self.images.shape[1], pad=self.pad)

    def labelled(self, scale: int = 2) -> np.ndarray:
        """The grid upscaled by ``scale`` with the row names on its left and the column headings above it."""
        h, w = self.images.shape[-2:]
        pitch = (h + self.pad, w + self.pad)
        return label_rows(self.grid(), self.names, pitch[0], self.pad, scale, self.columns or (), pitch[1], self.corner)


def stack_rows(rows: list[torch.Tensor], fill: float = 0.5) -> torch.Tensor:
    """Rows of images (n_i, C, H, W) as one tensor (rows, max n_i, C, H, W), short rows padded with ``fill``
    (the grid's own border grey by default)."""
    width = max(len(row) for row in rows)
    return torch.stack([torch.cat([row, row.new_full((width - len(row), *row.shape[1:]), fill)]) for row in rows])


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
