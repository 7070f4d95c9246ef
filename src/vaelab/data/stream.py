"""Data larger than memory: a uint8 ``.npy`` file on disk (``vaelab convert``) and training batches streamed
from it with a bounded-memory shuffle.

A converted dataset DST.npy is: ``DST.npy`` the images, uint8 (N, C, H, W), in a seeded random order;
``DST.labels.npy`` int64 labels (N,) if labelled; ``DST.test.npy`` (+ ``DST.test.labels.npy``) an official test
split; ``DST.json`` class names and origin. Any uint8 .npy of images (N, C, H, W) or (N, H, W) works alone.

The shuffle: the training rows are cut into chunks of contiguous images; each epoch visits the chunks in a
seeded random order, a window of chunks at a time (``data.buffer_mb`` of images), and shuffles the images
within the window. Memory holds one window, whatever the file's size. The window is filled with plain file
reads, not through the memory map, so what was read stays in the kernel's page cache and out of the
process's resident memory.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import naming_errors
from ..distributed import Context
from ..errors import DataError
from .batches import Batch, global_batches, shard
from .raw import RawSplits

CHUNKS_PER_WINDOW = 64  # the window holds this many chunks: the finer the chunks, the better the shuffle
CONVERT_SEED = 0
_WRITE_ROWS = 8192


@dataclass(frozen=True)
class NpyArray:
    """Where an array's bytes start in a .npy file, and its shape and dtype."""

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class StreamFile:
    """The training rows [0, rows) of a .npy of images, and its labels file (or None)."""

    images: NpyArray
    labels: NpyArray | None
    rows: int


def sibling(path: Path, part: str) -> Path:
    """DST.npy -> DST.<part> (e.g. labels.npy, test.npy, test.labels.npy, json)."""
    return path.with_name(path.name.removesuffix(".npy") + "." + part)


def read_header(path: Path) -> NpyArray:
    """The layout of a .npy file, with a DataError if it is not one or is truncated."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; write it with vaelab convert SRC {path}")
    size = path.stat().st_size
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        truncated = "greater than file size" in str(e) or "cannot reshape" in str(e)
        what = "is truncated" if truncated else "is not a .npy file of numbers"
        raise DataError(f"{path} {what} ({e}); write it again with vaelab convert SRC {path}") from None
    if not isinstance(array, np.memmap) or not array.flags.c_contiguous:
        raise DataError(f"{path} does not hold one C-ordered array; save it with numpy.save")
    layout = NpyArray(path, array.offset, tuple(array.shape), array.dtype)
    if size < layout.offset + array.nbytes:
        raise DataError(f"{path} is truncated: its header says {array.shape} {array.dtype}, the file is shorter")
    return layout


def _images(path: Path) -> tuple[NpyArray, np.ndarray]:
    array = read_header(path)
    if array.dtype != np.uint8 or len(array.shape) not in (3, 4) or array.shape[0] == 0:
        raise DataError(f"{path} holds {array.dtype} {array.shape}; expected uint8 images (N, C, H, W) or (N, H, W)")
    x = np.load(path, mmap_mode="c", allow_pickle=False)  # copy-on-write: writable for torch, never written
    return array, (x[:, None] if x.ndim == 3 else x)


def _labels(path: Path, n: int) -> tuple[NpyArray | None, np.ndarray | None]:
    if not path.is_file():
        return None, None
    array = read_header(path)
    if array.dtype != np.int64 or array.shape != (n,):
        raise DataError(f"{path} holds {array.dtype} {array.shape}; expected int64 labels ({n},)")
    return array, np.load(path, mmap_mode="c", allow_pickle=False)


def read_npy_dataset(path: str | Path) -> tuple[RawSplits, StreamFile]:
    """The arrays of a converted dataset as memory maps (nothing read yet) and the stream of its images."""
    path = Path(path)
    header, x = _images(path)
    labels_header, y = _labels(sibling(path, "labels.npy"), len(x))
    test_x = test_y = None
    if sibling(path, "test.npy").is_file():
        _, test_x = _images(sibling(path, "test.npy"))
        _, test_y = _labels(sibling(path, "test.labels.npy"), len(test_x))
        if test_x.shape[1:] != x.shape[1:]:
            raise DataError(f"{sibling(path, 'test.npy')} holds images of {test_x.shape[1:]}, {path} of {x.shape[1:]}")
    meta = json.loads(sibling(path, "json").read_text()) if sibling(path, "json").is_file() else {}
    names = meta.get("class_names")
    if y is not None and names is None:
        names = [str(k) for k in range(int(max(y.max(), -1 if test_y is None else test_y.max())) + 1)]
    raw = RawSplits(x, y, test_x, test_y, names if y is not None else None, f"uint8 images streamed from {path}")
    return raw, StreamFile(header, labels_header, len(x))


def write_npy_dataset(raw: RawSplits, dst: str | Path) -> list[Path]:
    """Write a source's splits as DST.npy (+ labels, test split, DST.json), rows in a seeded random order, so
    that contiguous chunks are fair samples; returns the files written."""
    dst = Path(dst)
    if dst.suffix != ".npy":
        raise DataError(f"{dst}: the destination must end in .npy")
    with naming_errors(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        written = _write_split(raw.train_x, raw.train_y, dst, sibling(dst, "labels.npy"))
        if raw.test_x is not None:
            written += _write_split(raw.test_x, raw.test_y, sibling(dst, "test.npy"), sibling(dst, "test.labels.npy"))
        meta = {"class_names": raw.class_names, "source": raw.description, "shape": list(raw.train_x.shape[1:])}
        sibling(dst, "json").write_text(json.dumps(meta, indent=1) + "\n")
    return [*written, sibling(dst, "json")]


def _write_split(x: np.ndarray, y: np.ndarray | None, x_path: Path, y_path: Path) -> list[Path]:
    order = np.random.default_rng(CONVERT_SEED).permutation(len(x))
    tmp = x_path.with_name(f".{x_path.name}.tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=x.shape)
    for start in range(0, len(x), _WRITE_ROWS):
        out[start : start + _WRITE_ROWS] = x[order[start : start + _WRITE_ROWS]]
    out.flush()
    del out
    os.replace(tmp, x_path)
    if y is None:
        y_path.unlink(missing_ok=True)
        return [x_path]
    np.save(y_path, np.ascontiguousarray(y[order], dtype=np.int64))
    return [x_path, y_path]


class StreamBatches:
    """Training batches read from a .npy file with the chunk-and-window shuffle; memory: one window."""

    def __init__(self, stream: StreamFile, batch_size: int, seed: int, context: Context, buffer_bytes: int):
        self.stream, self.batch_size, self.seed, self.context = stream, batch_size, seed, context
        row = stream.images.row_bytes
        self.chunk = max(1, buffer_bytes // CHUNKS_PER_WINDOW // row)  # images per chunk
        self.window = max(1, buffer_bytes // (self.chunk * row))  # chunks per window
        self.n_chunks = -(-stream.rows // self.chunk)
        image_shape = stream.images.shape[1:]
        image_shape = (1, *image_shape) if len(image_shape) == 2 else image_shape  # (N, H, W) files: one channel
        self.buffer = np.empty((self.window * self.chunk, *image_shape), dtype=np.uint8)  # the one window in memory
        self.label_buffer = np.empty(self.window * self.chunk, dtype=np.int64) if stream.labels else None

    def __len__(self) -> int:
        return global_batches(self.stream.rows, self.batch_size, self.context)

    @property
    def images(self) -> int:
        return min(self.stream.rows, len(self) * self.batch_size)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The epoch's batches: chunks in a seeded order, a window at a time, shuffled within the window; a
        batch that straddles two windows takes the rest of one and the start of the next."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        chunks = torch.randperm(self.n_chunks, generator=generator).tolist()
        carry = None  # (idx, x, y): fewer than batch_size images, copied out of the window
        with contextlib.ExitStack() as files:
            images = files.enter_context(open(self.stream.images.path, "rb"))
            labels = files.enter_context(open(self.stream.labels.path, "rb")) if self.stream.labels else None
            for w in range(0, len(chunks), self.window):
                ids = self._fill(chunks[w : w + self.window], images, labels)  # (rows,) dataset indices
                order = torch.randperm(len(ids), generator=generator)
                pos = 0
                if carry is not None:
                    pos = self.batch_size - len(carry[0])
                    more = self._take(ids, order[:pos])
                    carry = tuple(None if a is None else torch.cat([a, b]) for a, b in zip(carry, more, strict=True))
                    if len(carry[0]) == self.batch_size:
                        yield shard(*carry, self.context)
                        carry = None
                for part in order[pos:].split(self.batch_size):
                    if len(part) == self.batch_size:
                        yield shard(*self._take(ids, part), self.context)
                    else:
                        carry = self._take(ids, part)  # gathered: a copy, safe from the next window's reads
        if carry is not None and len(carry[0]) >= self.context.world_size:
            yield shard(*carry, self.context)

    def _take(self, ids: torch.Tensor, rows: torch.Tensor):
        """(dataset indices, images, labels) of window rows ``rows``, gathered into new tensors."""
        y = None if self.label_buffer is None else torch.from_numpy(self.label_buffer)[rows]
        return ids[rows], torch.from_numpy(self.buffer)[rows], y

    def _fill(self, chunks: list[int], images, labels) -> torch.Tensor:
        """Read ``chunks`` into the first rows of the window, in order; returns each row's dataset index."""
        ids, row = [], 0
        for c in chunks:
            start = c * self.chunk
            rows = min(self.chunk, self.stream.rows - start)
            _read_rows(images, self.stream.images, start, self.buffer[row : row + rows])
            if labels is not None:
                _read_rows(labels, self.stream.labels, start, self.label_buffer[row : row + rows])
            ids.append(torch.arange(start, start + rows))
            row += rows
        return torch.cat(ids)


def _read_rows(f, array: NpyArray, start: int, out: np.ndarray) -> None:
    f.seek(array.offset + start * array.row_bytes)
    view = memoryview(out.reshape(-1).view(np.uint8))
    if f.readinto(view) != len(view):
        raise DataError(f"{array.path} ended early: was it changed while training?")
