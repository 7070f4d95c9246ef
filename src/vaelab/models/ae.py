"""Deterministic autoencoder. Its "prior" for sampling is a diagonal Gaussian fitted to the training codes
(running mean and variance, like batch norm's), so samples show what the code space holds."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig
from .base import Autoencoder, ImageTerms
from .registry import register


@dataclass
class AEConfig(ModelConfig):
    name: str = "ae"


@dataclass
class PointPosterior:
    """A deterministic code z = f(x): its mean and its sample are the code itself."""

    mean: torch.Tensor

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean


@register("ae", AEConfig, "Deterministic autoencoder; samples from a Gaussian fitted to its training codes")
class AE(Autoencoder):
    code_momentum = 0.01

    def __init__(self, config: AEConfig, image_shape, num_classes=None):
        super().__init__(config, image_shape, num_classes)
        self.register_buffer("code_mean", torch.zeros(self.latent_dim))
        self.register_buffer("code_var", torch.ones(self.latent_dim))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> PointPosterior:
        return PointPosterior(self.encoder_params(x, y))

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, generator=None) -> ImageTerms:
        """Reconstruction NLL per image; no KL (the code is a point)."""
        z = self.encoder_params(x, y)  # (B, D)
        if self.training:
            self._track_codes(z.detach())
        recon = self.likelihood.nll(self.decode(z, y), x)
        return ImageTerms(recon, torch.zeros_like(recon))

    @torch.no_grad()
    def _track_codes(self, z: torch.Tensor) -> None:
        self.code_mean.lerp_(z.mean(0), self.code_momentum)
        self.code_var.lerp_(z.var(0, unbiased=False) if len(z) > 1 else self.code_var, self.code_momentum)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return self.code_mean + self.code_var.sqrt() * eps
