"""Datasets: named sources, IDX files, and the in-memory split dataset."""

from vaelab.data.dataset import ImageData, available_datasets, load_dataset, to_float
from vaelab.data.idx import read_idx, write_idx
from vaelab.data.sources import DatasetInfo

__all__ = [
    "DatasetInfo",
    "ImageData",
    "available_datasets",
    "load_dataset",
    "read_idx",
    "to_float",
    "write_idx",
]
