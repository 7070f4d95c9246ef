"""Training batches: global batches of which each process takes its rows (one process takes them all), and
the in-memory source of them, gathered by index in each epoch's seeded order (data/stream.py streams them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..distributed import Context, shard_bounds


@dataclass
class Batch:
    """This process's rows start:stop of a global batch of ``size`` images: dataset indices (rows,), uint8
    images (rows, C, H, W) and labels (rows,) or None."""

    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor | None
    size: int
    start: int
    stop: int


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def global_batches(n: int, batch_size: int, context: Context) -> int:
    """Batches per epoch; a last batch with fewer images than processes is dropped (every process needs one)."""
    full, rest = divmod(n, batch_size)
    return full + (rest >= context.world_size)


def shard(idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None, context: Context) -> Batch:
    """This process's rows of the global batch (idx, x, y)."""
    start, stop = shard_bounds(len(idx), context)
    return Batch(idx[start:stop], x[start:stop], None if y is None else y[start:stop], len(idx), start, stop)


class InMemoryBatches:
    """Batches gathered by index from uint8 images held in memory (on the training device)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, batch_size: int, seed: int, context: Context):
        self.x, self.y, self.batch_size, self.seed, self.context = x, y, batch_size, seed, context

    def __len__(self) -> int:
        return global_batches(len(self.x), self.batch_size, self.context)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        order = epoch_permutation(len(self.x), self.seed, epoch)
        for idx in order.split(self.batch_size)[: len(self)]:
            start, stop = shard_bounds(len(idx), self.context)
            mine = idx[start:stop].to(self.x.device)
            yield Batch(idx[start:stop], self.x[mine], None if self.y is None else self.y[mine], len(idx), start, stop)

    @property
    def images(self) -> int:
        """Images one epoch trains on, over all processes."""
        return min(len(self.x), len(self) * self.batch_size)
