"""Where the randomness of a step comes from: a torch Generator, or a BatchShard of one that several processes
share, so that data-parallel training draws exactly the noise one process would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class BatchShard:
    """A generator for one process's rows ``start:stop`` of a global batch of ``size`` rows: every process
    draws the noise of the whole batch from the same generator state and keeps its own rows."""

    generator: torch.Generator
    size: int
    start: int
    stop: int


Generator = torch.Generator | BatchShard | None


def draw(sample: Callable, shape: tuple[int, ...], generator: Generator, batch_dim: int = -2) -> torch.Tensor:
    """``sample(shape, torch_generator)``; with a BatchShard, drawn for the global batch along ``batch_dim``
    and narrowed to this process's rows."""
    if not isinstance(generator, BatchShard):
        return sample(shape, generator)
    rows = generator.stop - generator.start
    if shape[batch_dim] != rows:
        raise ValueError(f"noise of shape {shape} does not hold the {rows} rows of a shard")
    full = list(shape)
    full[batch_dim] = generator.size
    return sample(tuple(full), generator.generator).narrow(batch_dim, generator.start, rows)


def randn_like_rows(shape: tuple[int, ...], like: torch.Tensor, generator: Generator) -> torch.Tensor:
    """N(0, 1) draws of ``shape`` with ``like``'s dtype and device; rows are dim -2."""
    return draw(lambda s, g: torch.randn(s, generator=g, dtype=like.dtype, device=like.device), shape, generator)


def rand_like_rows(shape: tuple[int, ...], like: torch.Tensor, generator: Generator) -> torch.Tensor:
    """U(0, 1) draws of ``shape`` with ``like``'s dtype and device; rows are dim -2."""
    return draw(lambda s, g: torch.rand(s, generator=g, dtype=like.dtype, device=like.device), shape, generator)


def torch_generator(generator: Generator) -> torch.Generator | None:
    """The torch Generator behind ``generator`` (for draws that are not per row, e.g. prior samples)."""
    return generator.generator if isinstance(generator, BatchShard) else generator
