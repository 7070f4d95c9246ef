"""Variational autoencoder (Kingma & Welling 2014): a diagonal Gaussian posterior, a N(0, I) prior, the -ELBO.

The beta-VAE (Higgins et al. 2017) and the capacity-annealed VAE (Burgess et al. 2018) are the same model with
another weight on the KL (``KLWeight``); free bits work for all three, KL warm-up for the first two (the
capacity's schedule is the third's warm-up).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..nets import Nets
from ..parts import Capacity, GaussianHead, GaussianPrior, KLWeight, Objective
from ..settings import setting
from .config import ModelConfig
from .model import Model
from .registry import register


@dataclass
class VAEConfig(ModelConfig):
    name: str = "vae"
    kl_warmup_steps: int = setting(0, "KL weight rises linearly 0 -> 1 over these steps; 0 = off")
    kl_warmup_fraction: float = setting(0.0, "the same over this fraction of the run's steps, whatever its length")
    free_bits: float = setting(0.0, "per-dimension KL floor in nats (Kingma et al. 2016); 0 = off")

    def validate(self) -> None:
        if self.kl_warmup_steps < 0 or self.free_bits < 0:
            raise ConfigError("model.kl_warmup_steps and model.free_bits must be >= 0")
        if not 0 <= self.kl_warmup_fraction <= 1:
            raise ConfigError(f"model.kl_warmup_fraction must be in [0, 1] (a share of the run's steps); got "
                              f"{self.kl_warmup_fraction}")  # fmt: skip
        if self.kl_warmup_steps and self.kl_warmup_fraction:
            raise ConfigError("set one of model.kl_warmup_steps and model.kl_warmup_fraction: both say how long "
                              "the KL warm-up is")  # fmt: skip

    def kl_weight(self) -> KLWeight:
        return KLWeight(1.0, self.kl_warmup_steps, self.free_bits, warmup_fraction=self.kl_warmup_fraction)


@dataclass
class BetaVAEConfig(VAEConfig):
    name: str = "beta-vae"
    beta: float = setting(4.0, "multiplies the per-image KL")

    def validate(self) -> None:
        super().validate()
        if self.beta < 0:
            raise ConfigError(f"model.beta must be >= 0; got {self.beta}")

    def kl_weight(self) -> KLWeight:
        return replace(super().kl_weight(), beta=self.beta)


@dataclass
class CapacityVAEConfig(VAEConfig):
    name: str = "capacity-vae"
    refused = ("kl_warmup_steps", "kl_warmup_fraction")
    gamma: float = setting(1000.0, "weight of |KL - C|")
    c_min: float = setting(0.0, "capacity C in nats at step 0")
    c_max: float = setting(25.0, "capacity C in nats from c_steps on")
    c_steps: int = setting(100_000, "steps over which C rises linearly from c_min to c_max")

    def validate(self) -> None:
        super().validate()
        if min(self.gamma, self.c_min, self.c_max, self.c_steps) < 0:
            raise ConfigError("model.gamma, model.c_min, model.c_max and model.c_steps must be >= 0")
        if self.kl_warmup_steps or self.kl_warmup_fraction:
            raise ConfigError("capacity-vae's capacity C(step) is its warm-up: set model.c_steps, not "
                              "model.kl_warmup_steps or model.kl_warmup_fraction")  # fmt: skip

    def kl_weight(self) -> KLWeight:
        return KLWeight(free_bits=self.free_bits, capacity=Capacity(self.gamma, self.c_max, self.c_steps, self.c_min))


@register("vae", VAEConfig, "Variational autoencoder: Gaussian posterior, reparameterisation, analytic KL")
@register("beta-vae", BetaVAEConfig, "beta-VAE: recon + beta * KL (Higgins et al. 2017)")
@register("capacity-vae", CapacityVAEConfig, "capacity-annealed VAE: recon + gamma |KL - C(step)| (Burgess et al.)")
def vae(config: VAEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    d = config.latent_dim
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": GaussianHead(d)},
                 prior={"z": GaussianPrior(d)}, objective=Objective({"z": config.kl_weight()}))  # fmt: skip
