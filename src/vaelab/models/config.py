"""The config keys every model shares; a model's own config class inherits and adds to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    """Keys every neural model shares; a model's own config class inherits and adds to it."""

    name: str = "vae"
    net: Literal["mlp", "conv", "custom"] = "mlp"  # custom: networks of one's own, given from Python (Nets)
    latent_dim: int = 32
    hidden: list[int] = field(default_factory=lambda: [512, 512])  # MLP widths, encoder order
    channels: list[int] = field(default_factory=lambda: [32, 64])  # conv channels, encoder order
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    gaussian_std: float = 0.1  # fixed std of the Gaussian likelihood
    conditional: bool = False  # condition encoder and decoder on the one-hot label

    def validate(self) -> None:
        """Checks of a model's own keys beyond their types (a model's config class may add some)."""
