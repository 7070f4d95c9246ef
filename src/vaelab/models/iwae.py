"""Importance-weighted autoencoders: the VAE's parts trained on the k-sample bound (IWAE, Burda et al. 2016), on
the average of M such bounds (MIWAE), each network on its own of the two (PIWAE), or on its mix with the ELBO
(CIWAE; the three Rainforth et al. 2018, which shows a tighter bound can starve the encoder of signal)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..nets import Nets
from ..parts import GaussianHead, GaussianPrior, Objective
from ..settings import setting
from .model import Model
from .registry import register
from .vae import VAEConfig


@dataclass
class IWAEConfig(VAEConfig):
    name: str = "iwae"
    refused = ("kl_warmup_steps", "kl_warmup_fraction", "free_bits")
    k: int = setting(5, "importance samples per image")

    def validate(self) -> None:
        if self.kl_warmup_steps or self.kl_warmup_fraction or self.free_bits:
            raise ConfigError("iwae trains on the importance-weighted bound, which has no KL term to warm up or "
                              "floor: drop model.kl_warmup_steps, model.kl_warmup_fraction and "
                              "model.free_bits")  # fmt: skip
        if self.k < 1:
            raise ConfigError(f"model.k must be >= 1 (importance samples per image); got {self.k}")

    def objective(self) -> Objective:
        return Objective(k=self.k)


@dataclass
class MIWAEConfig(IWAEConfig):
    name: str = "miwae"
    k: int = setting(8, "importance samples per bound")
    m: int = setting(8, "bounds averaged (the paper's MIWAE(8, 8))")

    def validate(self) -> None:
        super().validate()
        if self.m < 1:
            raise ConfigError(f"model.m must be >= 1 (bounds averaged); got {self.m}")

    def objective(self) -> Objective:
        return Objective(k=self.k, groups=self.m)


@dataclass
class PIWAEConfig(MIWAEConfig):
    name: str = "piwae"

    def objective(self) -> Objective:
        return Objective(k=self.k, groups=self.m, partial=True)


@dataclass
class CIWAEConfig(IWAEConfig):
    name: str = "ciwae"
    k: int = 64
    beta: float = setting(0.5, "weight of the ELBO against the k-sample bound, in [0, 1]")

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.beta <= 1:
            raise ConfigError(f"model.beta must lie in [0, 1] (the ELBO's weight); got {self.beta}")

    def objective(self) -> Objective:
        return Objective(k=self.k, elbo_weight=self.beta)


@register("iwae", IWAEConfig, "IWAE: trains on the k-sample importance-weighted bound (Burda et al. 2016)")
@register("miwae", MIWAEConfig, "MIWAE: the average of m k-sample bounds (Rainforth et al. 2018)")
@register(
    "piwae", PIWAEConfig, "PIWAE: the decoder on the k*m-draw bound, the encoder on MIWAE (Rainforth et al. 2018)"
)
@register("ciwae", CIWAEConfig, "CIWAE: beta * ELBO + (1 - beta) * the k-sample bound (Rainforth et al. 2018)")
def iwae(config: IWAEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    d = config.latent_dim
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": GaussianHead(d)},
                 prior={"z": GaussianPrior(d)}, objective=config.objective())  # fmt: skip
