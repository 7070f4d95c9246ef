"""Latent traversals: one row per latent dimension, largest KL first, sweeping it over evenly spaced values
of the prior's std while the other dimensions stay at an encoded image's posterior mean; for JointVAE also
one row per categorical, showing each of its categories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import to_float
from ..errors import ConfigError
from .grids import LabelledRows, stack_rows
from .labels import number

ACTIVE_THRESHOLD = 0.01  # active unit: variance over images of its posterior mean above this (Burda et al. 2016)
MIN_KL = 0.05  # ... and, for a traversal, a mean KL of at least this many nats: below it a row shows no change
SUMMARY_IMAGES = 1000  # images of the split that rank the dimensions
RANGE, STEPS = 3.0, 11  # the default sweep: 11 values from -3 to +3 prior std, 0.6 std apart


class Traversal(LabelledRows):
    """Decoded images (rows, cols, C, H, W) in [0, 1], a name per row (e.g. ``z3 KL 2.41``, ``c0``) and the
    columns' values in prior std as headings."""


@dataclass
class DimensionSummary:
    """Per continuous dimension over some images: mean KL to the prior in nats (None for point codes) and the
    variance of the posterior mean; ``order`` ranks them, largest KL (or variance) first."""

    kl: np.ndarray | None  # (D,)
    mean_variance: np.ndarray  # (D,)

    @property
    def order(self) -> list[int]:
        key = self.kl if self.kl is not None else self.mean_variance
        return [int(j) for j in np.argsort(-key, kind="stable")]

    def active(self, j: int) -> bool:
        """Worth a row: the posterior mean varies over images (Burda et al.'s active unit) and, for a Gaussian
        posterior, its KL reaches MIN_KL (a unit can pass the variance test yet carry ~0.01 nats)."""
        return bool(self.mean_variance[j] > ACTIVE_THRESHOLD and (self.kl is None or self.kl[j] >= MIN_KL))

    def name(self, j: int) -> str:
        return f"z{j} KL {self.kl[j]:.2f}" if self.kl is not None else f"z{j}"


def split_float(run, split: str, n: int | None = None):
    """The first n images of a split as float (evaluation binarisation: seed 0) and their labels (or None)."""
    x_uint8, y = run.data.split(split)
    x_uint8 = x_uint8[:n] if n is not None else x_uint8
    y = None if y is None else y[: len(x_uint8)]
    return to_float(x_uint8, run.data.binarize, torch.Generator().manual_seed(0)), y


@torch.no_grad()
def summarise_dimensions(model, x: torch.Tensor, y: torch.Tensor | None) -> DimensionSummary:
    """KL per dimension and variance of the posterior means of images x (N, C, H, W)."""
    posterior = model.encode(x, y)
    means = posterior.continuous.mean  # (N, D)
    kl = model.closed_form_kls(posterior)[0]  # (N, D) or None
    kl = None if kl is None else kl.mean(0).double().cpu().numpy()
    return DimensionSummary(kl, means.double().var(0, unbiased=False).cpu().numpy())


def sweep(range_: float = RANGE, steps: int = STEPS) -> torch.Tensor:
    """``steps`` evenly spaced values from -range to +range, in prior std: k_i = -range + 2 range i / (steps - 1).
    Equal steps in z show how fast the image changes along a dimension, out to the prior's tails."""
    if range_ <= 0 or steps < 2:
        raise ConfigError(f"a traversal needs range > 0 and steps >= 2; got range {range_}, steps {steps}")
    return torch.linspace(-range_, range_, steps, dtype=torch.float64).float()


def describe(range_: float = RANGE, steps: int = STEPS, ranked: bool = True) -> str:
    """What a traversal's columns and rows are, for captions and the command's output; ``ranked``: the rows
    were chosen by ``choose_dims`` (auto or all), not given as indices."""
    rows = (
        "dimensions in order of their KL to the prior, largest first (row names give it in nats; models with "
        "point codes: in order of their code's variance over images)"
        if ranked
        else "the dimensions asked for, in that order"
    )
    return (
        f"columns: {steps} evenly spaced values of the dimension from -{number(range_)} to "
        f"+{number(range_)} prior std, {number(2 * range_ / (steps - 1))} std apart (the headings); rows: {rows}"
    )


def choose_dims(dims: str | Sequence[int], summary: DimensionSummary, latent_dim: int) -> list[int]:
    """``"auto"``: the active dimensions, largest KL first (the top one if none is active); ``"all"``: every
    dimension in that order; or the given indices."""
    if dims == "auto":
        active = [j for j in summary.order if summary.active(j)]
        return active or summary.order[:1]
    if dims == "all":
        return summary.order
    if isinstance(dims, str):
        try:
            dims = [int(part) for part in dims.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"--dims must be auto, all or indices like 0,3,5; got {dims!r}") from None
    bad = [j for j in dims if not 0 <= j < latent_dim]
    if bad or not dims:
        raise ConfigError(f"--dims {bad or dims}: this model's continuous latents are z0..z{latent_dim - 1}")
    return list(dims)


@torch.no_grad()
def traverse(
    run,
    dims: str | Sequence[int] = "auto",
    range_: float = RANGE,
    steps: int = STEPS,
    index: int = 0,
    split: str = "test",
    max_rows: int | None = None,
) -> Traversal:
    """Traverse the latents of image ``index`` of ``split``: each chosen dimension j sweeps z_j = m_j + s_j k
    over the evenly spaced k of ``sweep`` ((m, s) the prior's mean and std), the others fixed at the image's
    posterior mean; then one row per categorical (JointVAE) with its categories in turn."""
    model = run.model
    n = len(run.data.split(split)[0])
    if not 0 <= index < n:
        raise ConfigError(f"--index {index} is out of range: the {split} split has {n} images")
    x, y = split_float(run, split, max(SUMMARY_IMAGES, index + 1))
    x, y = x.to(model.device), run.as_labels(y) if run.conditional else None
    summary = summarise_dimensions(model, x, y)
    chosen = choose_dims(dims, summary, model.spec.continuous)[:max_rows]
    y0 = None if y is None else y[index : index + 1]
    z0 = model.encode(x[index : index + 1], y0).mean  # (1, code_size)
    mean, std = model.prior.moments()
    values = sweep(range_, steps).to(z0.device)  # (steps,)
    rows, names = [], []
    for j in chosen:
        z = z0.repeat(steps, 1)
        z[:, j] = mean[j] + std[j] * values
        rows.append(model.decode_mean(z, None if y0 is None else y0.expand(steps)))
        names.append(summary.name(j) + ("" if summary.active(j) else " (inactive)"))
    codes = model.spec.codes(z0)  # (1, n_discrete)
    for i, size in enumerate(model.spec.discrete):
        each = codes.repeat(size, 1)
        each[:, i] = torch.arange(size)  # category i of this categorical, the others as encoded
        z = model.spec.join(z0[:, : model.spec.continuous].repeat(size, 1), each)
        rows.append(model.decode_mean(z, None if y0 is None else y0.expand(size)))
        names.append(f"c{i} ({size} categories)")
    headings = [number(v) for v in values.tolist()]
    return Traversal(stack_rows(rows).cpu(), names, headings, "prior std:")
