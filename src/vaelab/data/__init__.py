"""Datasets: named sources, IDX files, and the in-memory split dataset."""

from .dataset import ImageData, available_datasets, load_dataset, to_float
from .idx import read_idx, write_idx
from .sources import DatasetInfo

__all__ = [
    "DatasetInfo",
    "ImageData",
    "available_datasets",
    "load_dataset",
    "read_idx",
    "to_float",
    "write_idx",
]
