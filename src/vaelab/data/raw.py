"""A source's arrays as shipped, before splits and binarisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .shapes import PackedImages

MAX_CLASSES = 100_000  # a label space beyond this is a sign of labels that are not class indices


def index_class_names(labels: list[np.ndarray | None], where: str) -> list[str]:
    """Class names "0".."K-1" of integer labels 0..K-1 (K = the largest label + 1, over all arrays); a
    DataError when K is beyond MAX_CLASSES (e.g. ids or timestamps given as labels), before any name is made."""
    present = [y for y in labels if y is not None and len(y)]
    top = max((int(y.max()) for y in present), default=-1)
    if top >= MAX_CLASSES:
        distinct = len(np.unique(np.concatenate([y.ravel() for y in present])))
        raise DataError(
            f"{where}: the labels run up to {top:,}, a space of {top + 1:,} classes for {distinct:,} distinct values; "
            "labels are class indices 0..K-1: renumber them, e.g. y = np.unique(y, return_inverse=True)[1]"
        )
    return [str(k) for k in range(top + 1)]


@dataclass(frozen=True)
class RawSplits:
    """A source's arrays as shipped: uint8 images (N, C, H, W), int64 labels (N,) or None.

    Images are an array or, for the generated binary sources, ``PackedImages`` (indexing unpacks), so that
    only the images a run keeps are ever unpacked.

    test_x is None when the source has no official test split; class_names is set exactly when labels are.
    """

    train_x: np.ndarray | PackedImages
    train_y: np.ndarray | None
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    class_names: list[str] | None
    description: str
