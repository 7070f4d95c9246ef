"""Principal component analysis with the autoencoders' reading interface: encode, decode, sample.

PCA is the linear autoencoder with a closed-form optimum (Baldi & Hornik 1989): the code of an image x
(flattened to (P,)) is z = (x - m) W, its reconstruction m + z W^T, where m is the training mean and the
columns of W (P, D) are the top-D eigenvectors of the training covariance. It is fitted once, by
``fit_closed_form``, which the Trainer calls instead of gradient epochs.

So that ``terms``, ``eval`` and ``compare`` treat it like the neural models, the reconstruction is read as
the mean of the run's likelihood: ``decode`` returns the logit of the clamped mean image, the form every
likelihood in vaelab takes (Bernoulli logits, or the pre-sigmoid mean of the fixed-std Gaussian), and
``terms`` returns that likelihood's NLL with KL = 0. Samples come from N(0, diag(eigenvalues)), the
Gaussian fitted to the training codes (the codes are centred, and their variances are the eigenvalues).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig
from ..distributions import make_likelihood
from ..errors import ConfigError
from .ae import PointPosterior
from .base import Autoencoder, ImageTerms
from .registry import register

MEAN_EPS = 1e-3  # the mean image is clamped to [eps, 1 - eps] before its logit: a Bernoulli pixel costs <= 6.9 nats


@dataclass
class PCAConfig(ModelConfig):
    name: str = "pca"


@register("pca", PCAConfig, "PCA (closed form, one fit); only model.latent_dim and model.likelihood matter")
class PCA(Autoencoder):
    """Learned tensors (``mean_``, ``components_``, ``explained_variance_``, scikit-learn's names) are
    frozen nn.Parameters rather than buffers: they save in model.safetensors either way, and the Trainer
    builds an optimizer over the parameters of every model (an empty list would be an error)."""

    closed_form = True

    def __init__(self, config: PCAConfig, image_shape: tuple[int, int, int], num_classes: int | None = None):
        nn.Module.__init__(self)  # no networks: Autoencoder.__init__ would build an encoder and a decoder
        self.config = config
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.latent_dim = config.latent_dim
        self.likelihood = make_likelihood(config.likelihood, config.gaussian_std)
        if getattr(config, "conditional", False):
            raise ConfigError("model.conditional=true is not supported by pca; drop it or pick a neural model")
        n_pixels = math.prod(self.image_shape)
        if self.latent_dim > n_pixels:
            raise ConfigError(f"model.latent_dim={self.latent_dim} exceeds the {n_pixels} pixels of an image (pca)")
        frozen = dict(requires_grad=False)
        self.mean_ = nn.Parameter(torch.zeros(n_pixels), **frozen)  # (P,)
        self.components_ = nn.Parameter(torch.zeros(n_pixels, self.latent_dim), **frozen)  # (P, D) orthonormal
        self.explained_variance_ = nn.Parameter(torch.ones(self.latent_dim), **frozen)  # (D,) code variances

    @torch.no_grad()
    def fit_closed_form(self, x: torch.Tensor, y: torch.Tensor | None = None) -> PCA:
        """Mean and top-D principal directions of the training images x (N, C, H, W), from the
        eigendecomposition (float64) of the smaller Gram matrix: X^T X (P, P) or, when N < P, X X^T (N, N)."""
        flat = x.flatten(1).double()  # (N, P)
        n, p = flat.shape
        if self.latent_dim > n:
            raise ConfigError(f"model.latent_dim={self.latent_dim} exceeds the {n} training images (pca)")
        mean = flat.mean(0)
        centred = flat - mean
        if n >= p:
            eigvals, eigvecs = torch.linalg.eigh(centred.T @ centred)  # ascending; (P,), (P, P)
            directions = eigvecs[:, -self.latent_dim :].flip(1)  # (P, D)
        else:
            eigvals, eigvecs = torch.linalg.eigh(centred @ centred.T)  # same nonzero eigenvalues; (N, N)
            u = eigvecs[:, -self.latent_dim :].flip(1)  # (N, D)
            directions = centred.T @ u  # (P, D) = X^T u, of norm sqrt(eigenvalue)
            directions = directions / directions.norm(dim=0).clamp_min(1e-12)
        variances = eigvals[-self.latent_dim :].flip(0).clamp_min(0) / n  # (D,)
        directions = directions * _sign_convention(directions)  # deterministic signs, as scikit-learn's svd_flip
        self.mean_.copy_(mean)
        self.components_.copy_(directions)
        self.explained_variance_.copy_(variances)
        return self

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> PointPosterior:
        """The projection z = (x - m) W, (B, D)."""
        return PointPosterior((x.flatten(1) - self.mean_) @ self.components_)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """logit(clamp(m + z W^T, eps, 1 - eps)), (B, C, H, W): the likelihood's mean image as its parameter."""
        mean_image = torch.addmm(self.mean_, z, self.components_.T).clamp_(MEAN_EPS, 1 - MEAN_EPS)  # (B, P)
        return torch.logit(mean_image).view(z.shape[0], *self.image_shape)  # shape[0], not len(): export keeps N

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, generator=None) -> ImageTerms:
        """The likelihood's NLL of the reconstruction per image; KL = 0 (the code is a point)."""
        recon = self.likelihood.nll(self.decode(self.encode(x).mean), x)
        return ImageTerms(recon, torch.zeros_like(recon))

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, diag(eigenvalues)): the Gaussian fitted to the (centred) training codes, (n, D)."""
        eps = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return eps * self.explained_variance_.sqrt()

    @property
    def device(self) -> torch.device:
        return self.mean_.device


def _sign_convention(directions: torch.Tensor) -> torch.Tensor:
    """+1 or -1 per column so that each column's largest-magnitude entry is positive, (D,)."""
    idx = directions.abs().argmax(0)
    return torch.sign(directions[idx, torch.arange(directions.shape[1])]).clamp_min(0) * 2 - 1
