"""Variational autoencoder (Kingma & Welling 2014): diagonal Gaussian posterior, N(0, I) prior."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..distributions import DiagonalGaussian, standard_normal_log_prob
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
        return DiagonalGaussian.from_params(self.encoder_params(x, y))  # (B, D) each

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, generator=None) -> ImageTerms:
        """-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)) (Kingma & Welling 2014, eq. 10), one z per image."""
        posterior = self.encode(x, y)
        z = posterior.rsample(generator)  # (B, D)
        recon = self.likelihood.nll(self.decode(z, y), x)  # (B,)
        return ImageTerms(recon, posterior.kl_to_standard_normal())

    def log_importance_weights(
        self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, generator=None
    ) -> torch.Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for k posterior samples per image, (k, B)
        (Burda et al. 2016): logsumexp over k minus log k bounds log p(x) from below."""
        posterior = self.encode(x, y)
        z = posterior.rsample(generator, k)  # (k, B, D)
        decoded = self.decode(z.flatten(0, 1), None if y is None else y.repeat(k))  # (k*B, C, H, W)
        log_px_z = -self.likelihood.nll(decoded, x.repeat(k, *([1] * (x.ndim - 1)))).view(k, len(x))
        return log_px_z + standard_normal_log_prob(z) - posterior.log_prob(z)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)
