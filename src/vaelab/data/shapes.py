"""The `shapes` datasets: 64x64 binary sprites on the dSprites factor grid, generated on first use and cached.

A square, an ellipse (2:1) or a heart at 6 scales (0.5 .. 1), 40 orientations (0 .. 351 degrees, 9 degrees apart)
and 32 x 32 positions: 3 x 6 x 40 x 32 x 32 = 737,280 images (Matthey et al. 2017's dSprites grid; its colour
factor has one value and is left out). ``shapes-small`` is a coarser grid for tests and CPU demos:
3 x 3 x 8 x 8 x 8 = 4,608 images. Image ``i`` is the grid point ``np.unravel_index(i, grid.sizes)``:
factor order (shape, scale, orientation, pos_x, pos_y), pos_y varying fastest.

Each of the 3 x 6 x 40 sprites is drawn once in a 32x32 patch (a pixel is on when its centre is inside the
shape); positions are whole-pixel offsets of that patch, so all the images of a sprite are windows of one
padded canvas (no per-image work). Images are stored bit-packed (512 bytes each: 377 MB for ``shapes``) as
``<name>-v<VERSION>.npy`` in ``cache_dir()``, with a sha256 beside it; a damaged file is regenerated.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import cache_dir
from ..checkpoint import atomic_write, atomic_write_text

VERSION = 1  # bump when the drawing changes: cached files of other versions are then ignored
SIZE = 64  # image height and width
PATCH = 32  # a sprite is drawn in a PATCH x PATCH square, placed at offsets 0 .. SIZE - PATCH - 1
RADIUS = 10.0  # pixels: half the side of the square at scale 1 (rotated, it stays inside the patch)
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
CATEGORICAL = ("shape",)  # the other factors are ordered: their index is linear in their value


@dataclass(frozen=True)
class Grid:
    """A factor grid: 3 shapes x ``scales`` x ``orientations`` x ``positions`` x ``positions``."""

    name: str
    scales: int
    orientations: int
    positions: int

    @property
    def sizes(self) -> tuple[int, ...]:
        """Values of each factor, in FACTOR_NAMES order."""
        return (len(SHAPE_NAMES), self.scales, self.orientations, self.positions, self.positions)

    @property
    def n_images(self) -> int:
        return math.prod(self.sizes)

    def values(self) -> list[np.ndarray]:
        """Each factor's values: shape index, scale, orientation (radians), pos_x and pos_y in [0, 1]."""
        return [
            np.arange(len(SHAPE_NAMES), dtype=np.float64),
            np.linspace(0.5, 1.0, self.scales),
            np.linspace(0.0, 2 * np.pi, self.orientations, endpoint=False),
            np.linspace(0.0, 1.0, self.positions),
            np.linspace(0.0, 1.0, self.positions),
        ]

    def offsets(self) -> np.ndarray:
        """Pixel offset of the patch for each position value: round(pos * 31), 0 .. 31 one pixel apart on the
        full grid."""
        return np.rint(self.values()[3] * (SIZE - PATCH - 1)).astype(np.int64)


GRIDS = {"shapes": Grid("shapes", 6, 40, 32), "shapes-small": Grid("shapes-small", 3, 8, 8)}


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v), in units of the sprite's radius, lie in the shape (unrotated, centred)."""
    if shape == 0:  # square, side 2
        return np.maximum(np.abs(u), np.abs(v)) <= 1
    if shape == 1:  # ellipse, semi-axes 1 and 1/2
        return u**2 + (2 * v) ** 2 <= 1
    x, y = 1.15 * u, 1.15 * v + 0.12  # heart: (x^2 + y^2 - 1)^3 <= x^2 y^3, its bounding box centred
    return (x**2 + y**2 - 1) ** 3 <= x**2 * y**3


def render_sprites(grid: Grid) -> np.ndarray:
    """bool (shapes, scales, orientations, PATCH, PATCH): each sprite centred in its patch, y pointing up."""
    centres = np.arange(PATCH) + 0.5 - PATCH / 2
    x, y = centres[None, :], -centres[:, None]  # (1, P) columns, (P, 1) rows
    _, scales, angles, _, _ = grid.values()
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]  # (O, 1, 1)
    out = np.empty((len(SHAPE_NAMES), grid.scales, grid.orientations, PATCH, PATCH), dtype=bool)
    for k in range(len(SHAPE_NAMES)):
        for s, scale in enumerate(scales):
            r = RADIUS * scale
            u, v = (cos * x + sin * y) / r, (-sin * x + cos * y) / r  # rotate the plane by -angle: (O, P, P)
            out[k, s] = _inside(k, u, v)
    return out


def generate(grid: Grid) -> np.ndarray:
    """The grid's images bit-packed, uint8 (n_images, SIZE * SIZE / 8), in factor-grid order.

    A sprite placed at offsets (oy, ox) is the window [P - oy : P - oy + SIZE, P - ox : ...] of a canvas of
    size SIZE + P holding the sprite at (P, P), with P = SIZE - PATCH, so one strided view holds every position.
    """
    sprites = render_sprites(grid)
    pad = SIZE - PATCH
    offsets = grid.offsets()
    packed = np.empty((grid.n_images, SIZE * SIZE // 8), dtype=np.uint8)
    per_sprite = grid.positions**2
    for k in range(len(SHAPE_NAMES)):
        for s in range(grid.scales):
            canvas = np.zeros((grid.orientations, SIZE + pad, SIZE + pad), dtype=bool)
            canvas[:, pad : pad + PATCH, pad : pad + PATCH] = sprites[k, s]
            windows = np.lib.stride_tricks.sliding_window_view(canvas, (SIZE, SIZE), axis=(1, 2))  # (O, Y, X, S, S)
            rows = pad - offsets
            images = windows[:, rows[:, None], rows[None, :]]  # (O, pos_y, pos_x, S, S)
            images = images.transpose(0, 2, 1, 3, 4).reshape(-1, SIZE * SIZE)  # (O * pos_x * pos_y, S * S)
            start = (k * grid.scales + s) * grid.orientations * per_sprite
            packed[start : start + len(images)] = np.packbits(images, axis=1)
    return packed


class PackedImages:
    """Binary images stored 8 pixels a byte; indexing unpacks: ``images[idx]`` is uint8 0/255 (n, 1, SIZE, SIZE)."""

    def __init__(self, packed: np.ndarray):
        self.packed = packed  # (N, SIZE * SIZE / 8) uint8, in memory or memory-mapped

    def __len__(self) -> int:
        return len(self.packed)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return len(self.packed), 1, SIZE, SIZE

    def __getitem__(self, index) -> np.ndarray:
        bits = np.unpackbits(np.atleast_2d(self.packed[index]), axis=1)  # (n, SIZE * SIZE) of 0/1
        return np.multiply(bits, 255, out=bits).reshape(-1, 1, SIZE, SIZE)


@dataclass(frozen=True)
class FactorData:
    """A dataset generated from known factors: every grid point's image, and sampling as the disentanglement
    metrics need it (factors drawn uniformly and independently, as in dSprites)."""

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    categorical: tuple[bool, ...]  # factors whose index is a category, not an ordered value
    images: PackedImages  # (prod(factor_sizes), 1, H, W), in grid order

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, K) int64 factor indices, each uniform over its values."""
        return rng.integers(0, self.factor_sizes, size=(n, len(self.factor_sizes)))

    def observations(self, factors: np.ndarray) -> np.ndarray:
        """uint8 images (n, 1, H, W) of factor indices (n, K)."""
        return self.images[np.ravel_multi_index(tuple(np.asarray(factors).T), self.factor_sizes)]

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        """(n, K) factor indices of images ``index`` (n,) of the grid order."""
        return np.stack(np.unravel_index(index, self.factor_sizes), axis=1)


def cache_paths(name: str) -> tuple[Path, Path]:
    """(images .npy, manifest .json) of a grid in the cache."""
    stem = cache_dir() / f"{name}-v{VERSION}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


@functools.lru_cache(maxsize=2)
def _load_cached(name: str, location: Path) -> FactorData:
    """FactorData of grid ``name``, cached per process; ``location`` (the cache folder) is part of the key."""
    grid = GRIDS[name]
    packed = _read_or_generate(grid)
    categorical = tuple(n in CATEGORICAL for n in FACTOR_NAMES)
    return FactorData(name, FACTOR_NAMES, grid.sizes, categorical, PackedImages(packed))


def factor_data(name: str) -> FactorData:
    """The generated dataset ``name`` ("shapes" or "shapes-small"): from the cache, else generated and cached."""
    return _load_cached(name, cache_dir())


def _say(message: str) -> None:
    print(f"vaelab: {message}", file=sys.stderr, flush=True)


def _read_or_generate(grid: Grid) -> np.ndarray:
    """The grid's packed images, memory-mapped from the cache when its checksum holds; else generated,
    written (atomically) and returned."""
    images_path, manifest_path = cache_paths(grid.name)
    problem = _check_cache(grid, images_path, manifest_path)
    if problem is None:
        return np.load(images_path, mmap_mode="r", allow_pickle=False)
    if problem != "missing":
        _say(f"{images_path} is damaged ({problem}); generating it again")
    start = time.perf_counter()
    packed = generate(grid)
    seconds = time.perf_counter() - start
    atomic_write(images_path, lambda f: np.save(f, packed))  # streamed to the file: the full grid is ~377 MB
    manifest = {"name": grid.name, "version": VERSION, "sizes": grid.sizes, "sha256": _sha256(packed)}
    atomic_write_text(manifest_path, json.dumps({**manifest, "seconds": round(seconds, 2)}, indent=1) + "\n")
    _say(f"generated {grid.name} ({grid.n_images:,} images) in {seconds:.1f} s, cached in {images_path}")
    return packed


def _check_cache(grid: Grid, images_path: Path, manifest_path: Path) -> str | None:
    """None when the cached images match their manifest, else what is wrong ("missing" when absent)."""
    if not images_path.is_file() and not manifest_path.is_file():
        return "missing"
    try:
        manifest = json.loads(manifest_path.read_text())
        packed = np.load(images_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        return f"unreadable: {err}"
    expected = (grid.n_images, SIZE * SIZE // 8)
    if packed.shape != expected or packed.dtype != np.uint8:
        return f"holds {packed.dtype} {packed.shape}, expected uint8 {expected}"
    if manifest.get("sha256") != _sha256(packed):
        return "sha256 differs from its manifest"
    return None


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()
