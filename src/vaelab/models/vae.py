"""Variational autoencoder (Kingma & Welling 2014): diagonal Gaussian posterior, N(0, I) prior."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..distributions import DiagonalGaussian
from .base import Autoencoder, ImageTerms
from .registry import register


@dataclass
class VAEConfig(ModelConfig):
    name: str = "vae"


@register("vae", VAEConfig, "Variational autoencoder: Gaussian posterior, reparameterisation, analytic KL")
class VAE(Autoencoder):
    def encoder_outputs(self) -> int:
        return 2 * self.latent_dim  # mu and logvar

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        return DiagonalGaussian.from_params(self.encoder(x))  # (B, D) each

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, generator=None) -> ImageTerms:
        """-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)) (Kingma & Welling 2014, eq. 10), one z per image."""
        posterior = self.encode(x, y)
        z = posterior.rsample(generator)  # (B, D)
        recon = self.likelihood.nll(self.decode(z, y), x)  # (B,)
        return ImageTerms(recon, posterior.kl_to_standard_normal())

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)
