"""The in-memory dataset: uint8 images and int64 labels split into train / val / test, optionally binarised.

Images stay uint8 (N, C, H, W) in memory; `to_float` turns a batch into float32 in [0, 1] inside the step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..parts.noise import BatchShard, Generator
from .shapes import PackedImages
from .sources import SOURCES, DatasetInfo, load_source, resolve
from .stream import StreamFile, read_npy_dataset

BINARIZE_MODES = ("none", "static", "dynamic")
SPLITS = ("train", "val", "test")
_TEST_SEED = 0  # a carved test split never depends on the run's seed: every run tests on the same images
_STATIC_SEED = 0
_CHUNK = 8192  # images binarised at a time, bounding the float32 temporary


@dataclass(repr=False)
class ImageData:
    """A dataset in memory: per split, uint8 images (N, C, H, W) and int64 labels (N,) or None."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor | None
    val_x: torch.Tensor
    val_y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor | None
    class_names: list[str] | None
    binarize: str  # "none" | "static" (images hold 0/255 only) | "dynamic" (resampled by to_float each batch)
    description: str = ""  # what was loaded from where, for logs
    stream: StreamFile | None = None  # npy:PATH data: training streams train_x from this file

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.train_x.shape[1:]
        return c, h, w

    @property
    def num_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images, labels) of the split "train", "val" or "test"."""
        if name not in SPLITS:
            raise ConfigError(f"Unknown split: {name}; choose one of {', '.join(SPLITS)}")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        classes = f"{self.num_classes} classes" if self.class_names else "unlabelled"
        sizes = ", ".join(f"{s} {len(self.split(s)[0])}" for s in SPLITS)
        return f"ImageData({self.name}: {sizes}; {c}x{h}x{w}, {classes}, binarize={self.binarize})"


def load_dataset(
    name: str,
    data_dir: str | None = None,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    binarize: str = "none",
    limit: int | None = None,
) -> ImageData:
    """Load a named dataset and split it.

    Without an official test split, `test_fraction` of the images is carved out with the fixed seed 0; then
    `val_fraction` of what remains is carved out with `seed`. A fraction of 0 gives an empty split; a positive
    fraction gives at least one image. `test_fraction` is ignored when the source has a test split. `limit`
    keeps the first `limit` (shuffled) training images. `binarize="static"` draws Bernoulli(x / 255) once with
    seed 0, per source split and before splitting, so an image's binarisation is the same for every seed.
    """
    _check_options(val_fraction, test_fraction, binarize, limit)
    if resolve(name, data_dir)[0] == "npy":
        return _load_streamed(name, resolve(name, data_dir)[1], val_fraction, test_fraction, binarize, limit)
    raw = load_source(name, data_dir)
    images = _source_images(raw.train_x, binarize)
    rest = torch.arange(len(images))
    if raw.test_x is None:
        _check_sizes(name, len(rest), test_fraction, val_fraction)
        test_idx, rest = _carve(rest, test_fraction, _TEST_SEED)
        test_x, test_y = _take(images, test_idx), _labels(raw.train_y, test_idx)
    else:
        _check_sizes(name, len(rest), 0.0, val_fraction)
        test_x, test_y = _take(_source_images(raw.test_x, binarize)), _labels(raw.test_y)
    val_idx, train_idx = _carve(rest, val_fraction, seed)
    if limit is not None:
        train_idx = train_idx[:limit]
    val_x, val_y = _take(images, val_idx), _labels(raw.train_y, val_idx)
    x, y = _take(images, train_idx), _labels(raw.train_y, train_idx)
    return ImageData(name, x, y, val_x, val_y, test_x, test_y, raw.class_names, binarize, raw.description)


def _load_streamed(
    name: str, path: str, val_fraction: float, test_fraction: float, binarize: str, limit: int | None
) -> ImageData:
    """An npy:PATH dataset as memory maps, nothing read: the file's rows are already in a random order, so the
    splits are contiguous (train first, then val, then test when the file has no test split of its own) and
    do not depend on the seed. Training streams the train rows (data/stream.py)."""
    if binarize == "static":
        raise ConfigError("data.binarize=static is not available for npy data (it would copy the file into memory); "
                          "use dynamic or none, or binarise the file before vaelab convert")  # fmt: skip
    raw, stream = read_npy_dataset(path)
    x, y = torch.from_numpy(raw.train_x), _tensor_view(raw.train_y)
    n = len(x)
    _check_sizes(name, n, 0.0 if raw.test_x is not None else test_fraction, val_fraction)
    n_test = 0 if raw.test_x is not None else _count(n, test_fraction)
    n_val = _count(n - n_test, val_fraction)
    n_train = min(n - n_test - n_val, limit or n)
    end_val = n - n_test
    if raw.test_x is not None:
        test_x, test_y = torch.from_numpy(raw.test_x), _tensor_view(raw.test_y)
    else:
        test_x, test_y = x[end_val:], None if y is None else y[end_val:]
    return ImageData(
        name, x[:n_train], None if y is None else y[:n_train], x[end_val - n_val : end_val],
        None if y is None else y[end_val - n_val : end_val], test_x, test_y, raw.class_names, binarize,
        raw.description, replace(stream, rows=n_train),
    )  # fmt: skip


def _tensor_view(labels: np.ndarray | None) -> torch.Tensor | None:
    return None if labels is None else torch.from_numpy(labels)


def to_float(x_uint8: torch.Tensor, binarize: str, generator: Generator = None) -> torch.Tensor:
    """float32 in [0, 1]: x / 255, or with binarize="dynamic" a fresh draw of Bernoulli(x / 255) in {0, 1}.

    For one fixed binarisation (evaluation) pass `torch.Generator().manual_seed(0)`, on x's device.
    """
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {x_uint8.dtype}")
    _check_binarize(binarize)
    if binarize == "dynamic":
        return bernoulli_pixels(x_uint8, generator).float()
    return x_uint8.float().div_(255)


def bernoulli_pixels(x_uint8: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """A draw of Bernoulli(x / 255) per pixel, as a bool tensor of x's shape.

    Each pixel takes 16 random bits r, uniform on 0..65535, and is 1 when r < 257 x (+1 for x = 255):
    p = 257 x / 65536, within 1.6e-5 of x / 255 and exact at 0 and 255. Written by hand because one
    64-bit draw serves four pixels, which makes it about 4x faster than ``torch.bernoulli`` on a CPU,
    where the draw otherwise costs as much as the network's activations. With a ``BatchShard``, x holds
    the shard's rows (images) and the bits are drawn for the whole global batch.
    """
    n = x_uint8.numel()
    start, total = 0, n
    if isinstance(generator, BatchShard):
        per_image = n // max(1, len(x_uint8))
        start, total, generator = generator.start * per_image, generator.size * per_image, generator.generator
    bits = torch.empty((total + 3) // 4, dtype=torch.int64, device=x_uint8.device)
    bits.random_(-(2**63), None, generator=generator)
    r = bits.view(torch.int16)[start : start + n].view(x_uint8.shape)  # r - 32768, signed
    threshold = x_uint8.to(torch.int32).mul_(257).sub_(32768).add_(x_uint8 == 255)
    return r < threshold


def available_datasets(data_dir: str | None = None) -> list[DatasetInfo]:
    """Every registered source: can it be loaded, its sizes, where it is; from file headers only."""
    return [
        DatasetInfo(
            f"{name}:PATH",
            source.description,
            where=f"give a path: --data {name}:PATH (or data.name={name}:PATH)",
        )
        if source.probe is None
        else source.probe(DatasetInfo(name, source.description), data_dir)
        for name, source in SOURCES.items()
    ]


def _source_images(images: np.ndarray | PackedImages, binarize: str) -> np.ndarray | PackedImages:
    """A source's images to index splits from: binarised once here, whole and in source order, when static
    (binary images, such as packed ones, are their own static binarisation: it is exact at 0 and 255)."""
    if binarize == "static" and isinstance(images, np.ndarray):
        return _binarize_static(torch.from_numpy(images)).numpy()
    return images


def _take(images: np.ndarray | PackedImages, idx: torch.Tensor | None = None) -> torch.Tensor:
    """A fresh uint8 tensor of the images at ``idx`` (all when None): the only copy made of them."""
    if idx is None:
        return torch.from_numpy(np.array(images[:]))
    return torch.from_numpy(np.ascontiguousarray(images[idx.numpy()]))


def _labels(labels: np.ndarray | None, idx: torch.Tensor | None = None) -> torch.Tensor | None:
    if labels is None:
        return None
    return torch.from_numpy(labels.copy() if idx is None else labels[idx.numpy()])


def _count(n: int, fraction: float) -> int:
    """Images a split of `fraction` takes out of n: none for 0, else round(fraction * n) but at least one."""
    return 0 if fraction == 0 else max(1, round(fraction * n))


def _check_sizes(name: str, n: int, test_fraction: float, val_fraction: float) -> None:
    n_rest = n - _count(n, test_fraction)
    if n_rest - _count(n_rest, val_fraction) < 1:
        raise DataError(
            f"{name} has only {n} training images, too few to carve test_fraction={test_fraction} and "
            f"val_fraction={val_fraction} and keep one for training; lower the fractions or use more images"
        )


def _carve(idx: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(part, rest): a random ``fraction`` of the indices ``idx`` and the others, both in shuffled order."""
    perm = torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))
    k = _count(len(idx), fraction)
    return idx[perm[:k]], idx[perm[k:]]


def _binarize_static(x: torch.Tensor) -> torch.Tensor:
    """One fixed draw of Bernoulli(x / 255) with seed 0, stored as uint8 0 / 255."""
    generator = torch.Generator().manual_seed(_STATIC_SEED)
    out = torch.empty_like(x)
    for i in range(0, len(x), _CHUNK):
        out[i : i + _CHUNK] = bernoulli_pixels(x[i : i + _CHUNK], generator).to(torch.uint8).mul_(255)
    return out


def _check_binarize(binarize: str) -> None:
    if binarize not in BINARIZE_MODES:
        raise ConfigError(f"Unknown binarize mode: {binarize}; choose one of {', '.join(BINARIZE_MODES)}")


def _check_options(val_fraction: float, test_fraction: float, binarize: str, limit: int | None) -> None:
    _check_binarize(binarize)
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value <= 0.9:
            raise ConfigError(f"{key} must be between 0 and 0.9, got {value}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be a positive number of training images, got {limit}")
