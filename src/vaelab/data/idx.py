"""IDX files, the MNIST format: read and write, gzip or raw, with every header field checked.

Layout: 00 00, a dtype code, ndim; ndim big-endian uint32 sizes; the values, big-endian, in C order.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from vaelab.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_NDIM = 4
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.name: code for code, dtype in _DTYPES.items()}
_VALID = ", ".join(f"0x{code:02X} {dtype.name}" for code, dtype in _DTYPES.items())


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzip detected by its magic bytes), in native byte order."""
    data = _read_bytes(path)
    dtype, shape, offset = _parse_header(path, data)
    expected, found = math.prod(shape) * dtype.itemsize, len(data) - offset
    if found < expected:
        raise DataError(f"{path} is truncated: {_says(shape, dtype)}, file holds {found} bytes of data; re-fetch it")
    if found > expected:
        raise DataError(
            f"{path} has {found - expected} unexpected bytes after the data: {_says(shape, dtype)}, "
            f"file holds {found}; it is corrupt or not an IDX file"
        )
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    return values.reshape(shape).astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def read_idx_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) from an IDX header, reading only the first bytes of the file."""
    dtype, shape, _ = _parse_header(path, _read_bytes(path, 4 + 4 * _MAX_NDIM))
    return dtype.newbyteorder("="), shape


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array of 1 to 4 dims as IDX; gzip-compressed when the path ends with .gz."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.name)
    if code is None:
        raise DataError(f"cannot write {array.dtype} to IDX file {path}: cast it to one of {_VALID}")
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise DataError(f"cannot write a {array.ndim}-d array to IDX file {path}: give 1 to {_MAX_NDIM} dims")
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        Path(path).write_bytes(data)


def _read_bytes(path: str | Path, size: int = -1) -> bytes:
    """The file's (decompressed) bytes, the first `size` of them when size >= 0."""
    compressed = False
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            if not compressed:
                return f.read(size)
            with gzip.GzipFile(fileobj=f) as g:
                return g.read(size)
    except (OSError, EOFError, zlib.error) as e:
        if not compressed:
            raise DataError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}; check the path") from None
        raise DataError(f"{path} is a corrupt gzip file ({e}); re-fetch or re-create it") from None


def _parse_header(path: str | Path, data: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """(big-endian dtype, shape, offset of the first value), each field validated."""
    if len(data) < 4 or data[0] or data[1]:
        raise DataError(
            f"{path} is not an IDX file: it starts with bytes {data[:4].hex(' ') or '(none)'}, "
            "expected 00 00 <dtype> <ndim>"
        )
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise DataError(f"{path} has unknown IDX dtype code 0x{code:02X}; valid codes are {_VALID}")
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataError(f"{path} declares {ndim} dimensions in its IDX header; expected 1 to {_MAX_NDIM}")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{path} is truncated inside its IDX header ({len(data)} of {offset} bytes); re-fetch it")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return _DTYPES[code], shape, offset


def _says(shape: tuple[int, ...], dtype: np.dtype) -> str:
    """'header says 60000 items of 28x28 uint8 (47040000 bytes)', the expectation in an error message."""
    items = f"{shape[0]} items of {'x'.join(map(str, shape[1:]))}" if len(shape) > 1 else f"{shape[0]} values,"
    return f"header says {items} {dtype.name} ({math.prod(shape) * dtype.itemsize} bytes)"
