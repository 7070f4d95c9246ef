"""Principal component analysis with the autoencoders' interface (Baldi & Hornik 1989: the linear autoencoder
with a closed-form optimum). The code of an image x (flattened to (P,)) is z = (x - m) W, its reconstruction
m + z W^T, with m the training mean and the columns of W (P, D) the top-D eigenvectors of the training
covariance; fitted once on all training images instead of by gradient steps.

So that eval and compare treat it like the neural models, the reconstruction is read as the mean of the run's
likelihood: the decoder returns the logit of the clamped mean image. The prior is the Gaussian of the
(centred) training codes: N(0, diag(eigenvalues)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..nets import Nets
from ..parts import GaussianPrior, Objective, PointHead
from .config import ModelConfig
from .model import Model
from .registry import register

MEAN_EPS = 1e-3  # the mean image is clamped to [eps, 1 - eps] before its logit: a Bernoulli pixel costs <= 6.9 nats


@dataclass
class PCAConfig(ModelConfig):
    name: str = "pca"
    refused = ("pixel_context",)

    def validate(self) -> None:
        if self.pixel_context:
            raise ConfigError(
                "model.pixel_context is not available for pca: its fit has no context to learn; set it to 0"
            )


class Projection(nn.Module):
    """z = (x - m) W, (B, D); ``mean`` (P,) and ``components`` (P, D) orthonormal columns."""

    def __init__(self, n_pixels: int, d: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_pixels))
        self.register_buffer("components", torch.zeros(n_pixels, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.mean) @ self.components


class Reconstruction(nn.Module):
    """logit(clamp(m + z W^T, eps, 1 - eps)), (B, C, H, W): the likelihood's mean image as its parameter."""

    def __init__(self, projection: Projection, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        self.projection = [projection]  # a reference, not a submodule: its tensors are saved once, by the encoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        p = self.projection[0]
        mean_image = torch.addmm(p.mean, z, p.components.T).clamp_(MEAN_EPS, 1 - MEAN_EPS)  # (B, P)
        return torch.logit(mean_image).view(z.shape[0], *self.image_shape)  # shape[0], not len(): export keeps N


@torch.no_grad()
def fit_pca(model: Model, x: torch.Tensor) -> None:
    """Mean and top-D principal directions of the training images x (N, C, H, W), from the eigendecomposition
    (float64) of the smaller Gram matrix: X^T X (P, P) or, when N < P, X X^T (N, N)."""
    d, flat = model.spec.continuous, x.flatten(1).double()  # (N, P)
    n, p = flat.shape
    if d > n:
        raise ConfigError(f"model.latent_dim={d} exceeds the {n} training images (pca)")
    mean = flat.mean(0)
    centred = flat - mean
    if n >= p:
        eigvals, eigvecs = torch.linalg.eigh(centred.T @ centred)  # ascending; (P,), (P, P)
        directions = eigvecs[:, -d:].flip(1)  # (P, D)
    else:
        eigvals, eigvecs = torch.linalg.eigh(centred @ centred.T)  # same nonzero eigenvalues; (N, N)
        directions = centred.T @ eigvecs[:, -d:].flip(1)  # (P, D) = X^T u, of norm sqrt(eigenvalue)
        directions = directions / directions.norm(dim=0).clamp_min(1e-12)
    largest = directions.abs().argmax(0)  # deterministic signs, as scikit-learn's svd_flip
    directions = directions * torch.sign(directions[largest, torch.arange(d)]).clamp_min(0).mul(2).sub(1)
    projection = model.encoder.features
    projection.mean.copy_(mean)
    projection.components.copy_(directions)
    model.prior["z"].var.copy_(eigvals[-d:].flip(0).clamp_min(0) / n)  # the codes' variances


@register("pca", PCAConfig, "PCA (closed form, one fit); only model.latent_dim and model.likelihood matter")
def pca(config: PCAConfig, image_shape, num_classes=None, nets=None) -> Model:
    if config.conditional or nets is not None:
        raise ConfigError("pca takes neither model.conditional nor networks of its own; pick a neural model")
    d, n_pixels = config.latent_dim, math.prod(image_shape)
    if d > n_pixels:
        raise ConfigError(f"model.latent_dim={d} exceeds the {n_pixels} pixels of an image (pca)")
    projection = Projection(n_pixels, d)
    nets = Nets(projection, Reconstruction(projection, tuple(image_shape)), head=nn.Identity())
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": PointHead(d)},
                 prior={"z": GaussianPrior(d, fitted=True)}, objective=Objective(), fit=fit_pca)  # fmt: skip
