"""Small random moves of images (shift and rotation), batched: the perturbations of JointVAE's
code-invariance term (models/joint_vae.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .parts.noise import Generator, rand_like_rows


def affine(x: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Images ``x`` (B, C, H, W) rotated by ``angle`` radians about their centre (counter-clockwise as
    displayed, y pointing down), then moved ``shift_x`` pixels right and ``shift_y`` down; each (B,).
    Bilinear, zeros where the image moved away. In centred pixel coordinates an output pixel p shows the input
    at R(-angle) (p - t); F.affine_grid takes that map in [-1, 1] coordinates, S = diag(2/W, 2/H):
    theta = [S R(-angle) S^-1 | -S R(-angle) t]."""
    _, _, h, w = x.shape
    cos, sin = angle.cos(), angle.sin()  # R(-angle) = [[cos, -sin], [sin, cos]] with y pointing down
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, -(2 / w) * (cos * shift_x - sin * shift_y)], dim=-1),
            torch.stack([sin * w / h, cos, -(2 / h) * (sin * shift_x + cos * shift_y)], dim=-1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(x: torch.Tensor, shift: float, rotation: float, generator: Generator = None) -> torch.Tensor:
    """``x`` moved by a shift uniform in [-shift, shift] pixels along each axis and rotated by an angle uniform
    in [-rotation, rotation] degrees, drawn independently per image (rows drawn as the posterior noise is, so
    several processes draw what one would)."""
    u = rand_like_rows((len(x), 3), x, generator) * 2 - 1
    return affine(x, u[:, 0] * shift, u[:, 1] * shift, u[:, 2] * math.radians(rotation))
