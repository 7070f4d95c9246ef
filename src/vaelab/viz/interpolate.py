"""Interpolation between the latents of two images: linear, or spherical (slerp, White 2016)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .grids import image_grid
from .traverse import split_float


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b for vectors a, b (D,) and fractions t (T,): (T, D)."""
    return a + t[:, None] * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation sin((1 - t) w) / sin w * a + sin(t w) / sin w * b, w the angle between a and b
    (White 2016): (T, D). It keeps the norm near that of the endpoints, where Gaussian draws live, instead of
    cutting through the low-density centre; linear when a and b are (anti)parallel or zero."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if torch.sin(omega).abs() < 1e-6:
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / torch.sin(omega)


@torch.no_grad()
def interpolate(
    run, i: int, j: int, steps: int = 10, spherical: bool = False, split: str = "test", converted=None
) -> torch.Tensor:
    """Images (steps + 2, C, H, W) in [0, 1]: image i, the decoded latents from i's posterior mean to j's in
    ``steps`` equal steps (both ends included), image j. The continuous part is interpolated linearly or by
    slerp, JointVAE's one-hot codes linearly; a conditional model decodes the first half with i's label and
    the second half with j's. ``converted``: the split as ``split_float`` gives it, if the caller holds it
    (the explorer does), instead of converting its first max(i, j) + 1 images on every call."""
    n = len(run.data.split(split)[0])
    if not (0 <= i < n and 0 <= j < n):
        raise ConfigError(f"--pair {i} {j}: both images must be in 0..{n - 1} (the {split} split has {n})")
    if steps < 2:
        raise ConfigError(f"--steps {steps}: the path needs at least 2 steps (its two ends)")
    model = run.model
    x, y = converted if converted is not None else split_float(run, split, max(i, j) + 1)
    x = x[[i, j]].to(model.device)
    y = run.as_labels(y[[i, j]]) if run.conditional else None
    z = model.encode(x, y).mean  # (2, code_size)
    t = torch.linspace(0, 1, steps, device=z.device)
    d = model.spec.continuous
    path = (slerp if spherical else lerp)(z[0, :d], z[1, :d], t)
    path = torch.cat([path, lerp(z[0, d:], z[1, d:], t)], dim=1)  # (steps, code_size)
    labels = None if y is None else torch.where(t < 0.5, y[0], y[1])
    return torch.cat([x[:1], model.decode_mean(path, labels), x[1:]]).cpu()


def interpolation_grid(
    run, i: int, j: int, steps: int = 10, spherical: bool = False, split: str = "test", converted=None
) -> np.ndarray:
    """``interpolate`` as one row of a uint8 grid (rows, cols, C): image i, the path, image j."""
    images = interpolate(run, i, j, steps, spherical, split, converted)
    return image_grid(images, ncols=len(images))
