"""Deterministic autoencoder: a point code, the reconstruction NLL alone. Its prior, for sampling, is a diagonal
Gaussian fitted to the training codes (running moments, like batch norm's), so samples show what the code
space holds."""

from __future__ import annotations

from dataclasses import dataclass

from ..nets import Nets
from ..parts import GaussianPrior, Objective, PointHead
from .config import ModelConfig
from .model import Model
from .registry import register


@dataclass
class AEConfig(ModelConfig):
    name: str = "ae"


@register("ae", AEConfig, "Deterministic autoencoder; samples from a Gaussian fitted to its training codes")
def ae(config: AEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    d = config.latent_dim
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": PointHead(d)},
                 prior={"z": GaussianPrior(d, fitted=True, momentum=0.01)}, objective=Objective())  # fmt: skip
