"""A source's arrays as shipped, before splits and binarisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import PackedImages


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
