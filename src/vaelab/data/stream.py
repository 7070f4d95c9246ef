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
import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..checkpoint import atomic_write, naming_errors
from ..distributed import Context
from ..errors import DataError
from .batches import Batch, global_batches, shard
from .raw import RawSplits, index_class_names

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
        names = index_class_names([y, test_y], str(path))
    raw = RawSplits(x, y, test_x, test_y, names if y is not None else None, f"uint8 images streamed from {path}")
    return raw, StreamFile(header, labels_header, len(x))


def write_npy_dataset(raw: RawSplits, dst: str | Path) -> list[Path]:
    """Write a source's splits as DST.npy (+ labels, test split, DST.json), rows in a seeded random order, so
    that contiguous chunks are fair samples; returns the files written. All files are written to temporaries
    first and renamed into place when every one is whole: a failure (e.g. a full disk) leaves the old ones."""
    dst = Path(dst)
    if dst.suffix != ".npy":
        raise DataError(f"{dst}: the destination must end in .npy")
    with naming_errors(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
    files: dict[Path, Callable[[BinaryIO], object]] = {}
    splits = [(raw.train_x, raw.train_y, dst, sibling(dst, "labels.npy"))]
    if raw.test_x is not None:
        splits.append((raw.test_x, raw.test_y, sibling(dst, "test.npy"), sibling(dst, "test.labels.npy")))
    stale = []
    for x, y, x_path, y_path in splits:
        order = np.random.default_rng(CONVERT_SEED).permutation(len(x))
        files[x_path] = functools.partial(_write_rows, x, order)
        if y is None:
            stale.append(y_path)
        else:
            files[y_path] = functools.partial(np.save, arr=np.ascontiguousarray(y[order], dtype=np.int64))
    meta = {"class_names": raw.class_names, "source": raw.description, "shape": list(raw.train_x.shape[1:])}
    files[sibling(dst, "json")] = lambda f: f.write((json.dumps(meta, indent=1) + "\n").encode())
    _write_all(files)
    for path in stale:
        path.unlink(missing_ok=True)
    return list(files)


def _write_rows(x: np.ndarray, order: np.ndarray, f: BinaryIO) -> None:
    """x[order] as a uint8 .npy file, a block of rows at a time (x may be larger than memory)."""
    np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": tuple(x.shape)})
    for start in range(0, len(x), _WRITE_ROWS):
        f.write(np.ascontiguousarray(x[order[start : start + _WRITE_ROWS]], dtype=np.uint8).data)


def _write_all(files: dict[Path, Callable[[BinaryIO], object]]) -> None:
    """Each file written by its function to a hidden temporary beside it, then all renamed into place; on an
    error the temporaries are removed and the old files are left as they were."""
    ready: dict[Path, Path] = {}
    try:
        for path, write in files.items():
            tmp = path.with_name(f".{path.name}.new.tmp")
            ready[path] = tmp
            with naming_errors(path):
                atomic_write(tmp, write)
    except BaseException:
        for tmp in ready.values():
            tmp.unlink(missing_ok=True)
        raise
    for path, tmp in ready.items():
        os.replace(tmp, path)


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
