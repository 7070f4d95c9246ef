"""beta-VAE (Higgins et al. 2017) and its capacity-annealed form (Burgess et al. 2018): the VAE's network
and posterior with another weight on the KL."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..schedules import capacity
from .registry import register
from .vae import VAE, VAEConfig


@dataclass
class BetaVAEConfig(VAEConfig):
    name: str = "beta-vae"
    beta: float = 4.0  # multiplies the per-image KL

    def validate(self) -> None:
        super().validate()
        if self.beta < 0:
            raise ConfigError(f"model.beta must be >= 0; got {self.beta}")


@register("beta-vae", BetaVAEConfig, "beta-VAE: recon + beta * KL (Higgins et al. 2017)")
class BetaVAE(VAE):
    def objective(self, recon: torch.Tensor, kl_per_dim: torch.Tensor, step: int):
        """recon + beta * KL per image (with warm-up and free bits if configured)."""
        kl, weight = self.regularised_kl(kl_per_dim, step)
        return recon + self.config.beta * weight * kl, {}


@dataclass
class CapacityVAEConfig(VAEConfig):
    name: str = "capacity-vae"
    gamma: float = 1000.0  # weight of |KL - C|
    c_min: float = 0.0  # capacity in nats at step 0
    c_max: float = 25.0  # capacity in nats after c_steps
    c_steps: int = 100_000

    def validate(self) -> None:
        super().validate()
        if self.gamma < 0 or self.c_min < 0 or self.c_max < 0 or self.c_steps < 0:
            raise ConfigError("model.gamma, model.c_min, model.c_max and model.c_steps must be >= 0")


@register(
    "capacity-vae", CapacityVAEConfig, "capacity-annealed beta-VAE: recon + gamma |KL - C(step)| (Burgess et al.)"
)
class CapacityVAE(VAE):
    def objective(self, recon: torch.Tensor, kl_per_dim: torch.Tensor, step: int):
        """recon + gamma * |KL - C(step)|, C rising linearly from c_min to c_max over c_steps."""
        cfg = self.config
        c = capacity(step, cfg.c_min, cfg.c_max, cfg.c_steps)
        kl, _ = self.regularised_kl(kl_per_dim, step)
        return recon + cfg.gamma * (kl - c).abs(), {"capacity": torch.tensor(c)}
