"""Importance-weighted autoencoder (Burda et al. 2016): the VAE's parts trained on the k-sample bound."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..nets import Nets
from ..parts import GaussianHead, GaussianPrior, Objective
from .model import Model
from .registry import register
from .vae import VAEConfig


@dataclass
class IWAEConfig(VAEConfig):
    name: str = "iwae"
    k: int = 5  # importance samples per image

    def validate(self) -> None:
        if self.kl_warmup_steps or self.free_bits:
            raise ConfigError("iwae trains on the importance-weighted bound, which has no KL term to warm up or "
                              "floor: drop model.kl_warmup_steps and model.free_bits")  # fmt: skip
        if self.k < 1:
            raise ConfigError(f"model.k must be >= 1 (importance samples per image); got {self.k}")


@register("iwae", IWAEConfig, "IWAE: trains on the k-sample importance-weighted bound (Burda et al. 2016)")
def iwae(config: IWAEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    d = config.latent_dim
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": GaussianHead(d)},
                 prior={"z": GaussianPrior(d)}, objective=Objective(k=config.k))  # fmt: skip
