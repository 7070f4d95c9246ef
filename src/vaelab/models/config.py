"""The config keys every model shares; a model's own config class inherits and adds to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..settings import setting


@dataclass
class ModelConfig:
    """Keys every neural model shares; a model's own config class inherits and adds to it."""

    refused: ClassVar[tuple[str, ...]] = ()  # keys inherited from a parent model that this one refuses (validate)

    name: str = setting("vae", "the registered model (vaelab models lists them)")
    net: Literal["mlp", "conv", "custom"] = setting(
        "mlp", "networks: MLP, conv, or custom (one's own, given from Python as Nets)"
    )
    latent_dim: int = setting(32, "dimensions of the continuous latent z")
    hidden: list[int] = setting([512, 512], "MLP widths, encoder order (net=conv: the first is its dense width)")
    channels: list[int] = setting([32, 64], "conv channels, encoder order (net=conv)")
    activation: Literal["relu", "elu", "silu", "gelu", "tanh"] = setting(
        "relu", "the nonlinearity after each hidden layer of encoder and decoder (net=mlp or conv)"
    )
    residual: bool = setting(
        False, "MLP hidden layers of equal widths add their input: x + act(W x + b) (residual blocks; net=mlp)"
    )
    likelihood: Literal["bernoulli", "gaussian"] = setting(
        "bernoulli", "p(x|z): Bernoulli logits, or a Gaussian of fixed std (gaussian_std)"
    )
    gaussian_std: float = setting(0.1, "std of the Gaussian likelihood, in pixel units of [0, 1]")
    pixel_context: int = setting(
        0, "odd k > 1: each pixel's Bernoulli also reads the pixels before it in a k x k window (autoregressive)"
    )
    conditional: bool = setting(False, "condition encoder and decoder on the one-hot label (a CVAE)")

    def validate(self) -> None:
        """Checks of a model's own keys beyond their types (a model's config class may add some)."""
