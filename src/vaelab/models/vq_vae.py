"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning"): the encoder's output is read as
``positions`` vectors of ``latent_dim`` dimensions, each quantised to the nearest of ``codebook_size`` codebook
vectors; the decoder sees the quantised vectors, the gradient passes straight through to the encoder. Training
minimises the reconstruction NLL + ||sg[z_e] - e||^2 (or an EMA codebook) + beta ||z_e - sg[e]||^2 (eq. 3),
and, beside it, the NLL of an autoregressive prior over the detached code indices, which samples are drawn
from. The posterior is a point (no density): eval reports the reconstruction NLL, as for the AE."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..parts import Objective
from ..parts.quantiser import CodePrior, VectorQuantiser, vq_terms
from ..settings import setting
from .config import ModelConfig
from .model import Model
from .registry import register


@dataclass
class VQVAEConfig(ModelConfig):
    name: str = "vq-vae"
    latent_dim: int = setting(8, "dimensions of each codebook vector (the code has positions * latent_dim)")
    positions: int = setting(8, "code vectors per image, each one of codebook_size indices")
    codebook_size: int = setting(128, "K, the codebook's vectors")
    beta: float = setting(0.25, "weight of the commitment loss ||z_e - sg[e]||^2 (the paper's 0.25)")
    ema_decay: float = setting(0.0, "> 0: the codebook follows moving averages of its vectors; 0: a codebook loss")
    prior_hidden: int = setting(256, "hidden units of the autoregressive prior over the code indices (a MADE)")

    def validate(self) -> None:
        if self.positions < 1 or self.codebook_size < 2:
            raise ConfigError("model.positions must be >= 1 and model.codebook_size >= 2")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"model.ema_decay must be in [0, 1) (0: no EMA), got {self.ema_decay}")


@register("vq-vae", VQVAEConfig, "VQ-VAE (van den Oord et al. 2017): codebook, straight-through, code prior")
def vq_vae(config: VQVAEConfig, image_shape, num_classes=None, nets=None) -> Model:
    m, d, k = config.positions, config.latent_dim, config.codebook_size
    quantiser = VectorQuantiser(m, d, k, config.ema_decay)
    prior = CodePrior(m, d, k, config.prior_hidden)
    objective = Objective(regularisers=vq_terms(config.beta, ema=config.ema_decay > 0))
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": quantiser}, prior={"z": prior},
                 objective=objective)  # fmt: skip
