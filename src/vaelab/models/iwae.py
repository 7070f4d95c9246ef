"""Importance-weighted autoencoder (Burda et al. 2016): the VAE's network trained on the k-sample bound."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import LossTerms
from .registry import register
from .vae import VAE, VAEConfig


@dataclass
class IWAEConfig(VAEConfig):
    name: str = "iwae"
    k: int = 5  # importance samples per image

    def validate(self) -> None:
        super().validate()
        if self.k < 1:
            raise ConfigError(f"model.k must be >= 1 (importance samples per image); got {self.k}")


@register("iwae", IWAEConfig, "IWAE: trains on the k-sample importance-weighted bound (Burda et al. 2016)")
class IWAE(VAE):
    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, step: int = 0, generator=None) -> LossTerms:
        """total = -L_k = -mean_b [logsumexp_k log w_k - log k] (Burda et al. 2016, eq. 8); recon and kl are
        the ELBO's terms (recon averaged over the k samples), reported alongside."""
        k = self.config.k
        log_px_z, log_pz, log_qz, posterior = self.k_sample_terms(x, y, k, generator)  # (k, B) each
        bound = torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)  # (B,)
        recon, kl = -log_px_z.mean(), posterior.kl_to_standard_normal().mean()
        return LossTerms(-bound.mean(), recon.detach(), kl.detach())
