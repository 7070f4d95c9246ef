"""Variational autoencoder (Kingma & Welling 2014): diagonal Gaussian posterior, N(0, I) prior.

The network and the posterior live here; the objective is ``objective(recon, kl_per_dim, step)``,
which the beta-VAE and capacity variants override. KL warm-up and free bits work for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..distributions import DiagonalGaussian, standard_normal_log_prob
from ..errors import ConfigError
from ..schedules import kl_warmup
from .base import Autoencoder, ImageTerms, LossTerms
from .registry import register


@dataclass
class VAEConfig(ModelConfig):
    name: str = "vae"
    kl_warmup_steps: int = 0  # KL weight rises linearly 0 -> 1 over these steps; 0 = off
    free_bits: float = 0.0  # per-dimension KL floor in nats (Kingma et al. 2016); 0 = off

    def validate(self) -> None:
        if self.kl_warmup_steps < 0 or self.free_bits < 0:
            raise ConfigError("model.kl_warmup_steps and model.free_bits must be >= 0")


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

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, step: int = 0, generator=None) -> LossTerms:
        posterior = self.encode(x, y)
        recon = self.likelihood.nll(self.decode(posterior.rsample(generator), y), x).mean()
        kl_per_dim = posterior.kl_per_dim().mean(0)  # (D,) batch means
        total, extras = self.objective(recon, kl_per_dim, step)
        return LossTerms(total, recon, kl_per_dim.sum(), extras)

    def regularised_kl(self, kl_per_dim: torch.Tensor, step: int) -> tuple[torch.Tensor, float]:
        """The KL the objective penalises: free bits (sum_j max(lambda, KL_j), Kingma et al. 2016, eq. 15)
        and the warm-up weight."""
        kl = kl_per_dim.clamp(min=self.config.free_bits).sum() if self.config.free_bits > 0 else kl_per_dim.sum()
        return kl, kl_warmup(step, self.config.kl_warmup_steps)

    def objective(self, recon: torch.Tensor, kl_per_dim: torch.Tensor, step: int):
        """The -ELBO, with warm-up and free bits if configured: (total, extras)."""
        kl, weight = self.regularised_kl(kl_per_dim, step)
        return recon + weight * kl, {}

    def log_importance_weights(
        self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, generator=None
    ) -> torch.Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for k posterior samples per image, (k, B)
        (Burda et al. 2016): logsumexp over k minus log k bounds log p(x) from below."""
        log_px_z, log_pz, log_qz, _ = self.k_sample_terms(x, y, k, generator)
        return log_px_z + log_pz - log_qz

    def k_sample_terms(self, x: torch.Tensor, y: torch.Tensor | None, k: int, generator=None):
        """(log p(x|z_k), log p(z_k), log q(z_k|x)), each (k, B), for k posterior samples per image, and
        the posterior."""
        posterior = self.encode(x, y)
        z = posterior.rsample(generator, k)  # (k, B, D)
        decoded = self.decode(z.flatten(0, 1), None if y is None else y.repeat(k))  # (k*B, C, H, W)
        log_px_z = -self.likelihood.nll(decoded, x.repeat(k, *([1] * (x.ndim - 1)))).view(k, len(x))
        return log_px_z, standard_normal_log_prob(z), posterior.log_prob(z), posterior

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)
