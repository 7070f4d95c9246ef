"""Regularised autoencoder, RAE-L2 (Ghosh et al. 2020, eq. 11): a point code trained on the reconstruction NLL
+ beta * ||z||^2 / 2 + lambda * ||theta_decoder||^2, sampled through an ex-post density on the codes (here a
Gaussian fitted to them, as for the AE)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..parts import GaussianPrior, Objective, Pass, Penalty, PointHead
from ..settings import setting
from .config import ModelConfig
from .model import Model
from .registry import register


@dataclass
class RAEConfig(ModelConfig):
    name: str = "rae"
    beta: float = setting(1e-4, "weight of the code penalty ||z||^2 / 2 per image (the paper's and pythae's)")
    decoder_decay: float = setting(1e-7, "weight of the decoder's squared parameters (the L2 of RAE-L2)")


def code_norm(p: Pass) -> torch.Tensor:
    return 0.5 * p.z.pow(2).sum(-1).mean()


def decoder_norm(p: Pass) -> torch.Tensor:
    return sum(w.pow(2).sum() for w in p.model.decoder.parameters())


@register("rae", RAEConfig, "Regularised autoencoder, RAE-L2 (Ghosh et al. 2020): point codes, penalties")
def rae(config: RAEConfig, image_shape, num_classes=None, nets=None) -> Model:
    terms = [Penalty("code_norm", config.beta, code_norm), Penalty("decoder_norm", config.decoder_decay, decoder_norm)]
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": PointHead(config.latent_dim)},
                 prior={"z": GaussianPrior(config.latent_dim, fitted=True, momentum=0.01)},
                 objective=Objective(regularisers=terms))  # fmt: skip
