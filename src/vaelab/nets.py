"""Encoder and decoder builders, sized from the image shape: MLPs and strided convolutions.

An encoder body maps images (B, C, H, W) to features (B, width); the model puts its own linear head
on top (so a conditional model can append a one-hot label to the features first). A decoder maps
latents (B, in_features) to image-shaped decoder outputs (B, C, H, W) (logits or pre-sigmoid means).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

CONV_DENSE_DEFAULT = 256  # the conv nets' dense width when model.hidden is empty
ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class ResidualBlock(nn.Module):
    """x + act(W x + b): a hidden layer that adds its input to its output (the identity shortcut of He et al.
    2016), so that a deeper MLP trains as well as a shallow one (docs/performance.md measures it)."""

    def __init__(self, width: int, activation: str):
        super().__init__()
        self.linear, self.activation = nn.Linear(width, width), ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.activation(self.linear(x))


def _dense_stack(widths: list[int], activation: str, residual: bool = False) -> list[nn.Module]:
    """Linear + activation from each width to the next; with ``residual``, a ``ResidualBlock`` where the two
    widths match."""
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
        if residual and w_in == w_out:
            layers.append(ResidualBlock(w_in, activation))
        else:
            layers += [nn.Linear(w_in, w_out), ACTIVATIONS[activation]()]
    return layers


class EncoderBody(nn.Module):
    """features(x) (flatten, or convs then flatten), then the dense ReLU layers; a conditional model's one-hot
    label c is appended to the features before the dense layers, so the whole dense stack can use it."""

    def __init__(self, features: nn.Module, dense: list[nn.Module]):
        super().__init__()
        self.features = features
        self.dense = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, F)
        if condition is not None:
            h = torch.cat([h, condition], dim=-1)
        return self.dense(h)


def mlp_encoder_body(
    image_shape: tuple[int, int, int],
    hidden: list[int],
    n_conditions: int = 0,
    activation: str = "relu",
    residual: bool = False,
) -> tuple[EncoderBody, int]:
    """Flatten (+ one-hot label), then Linear + activation for each hidden width; returns the body and its
    output width."""
    widths = [math.prod(image_shape) + n_conditions, *hidden]
    return EncoderBody(nn.Flatten(), _dense_stack(widths, activation, residual)), widths[-1]


def mlp_decoder(
    in_features: int,
    hidden: list[int],
    image_shape: tuple[int, int, int],
    activation: str = "relu",
    residual: bool = False,
) -> nn.Sequential:
    """The mirror of the MLP encoder: hidden widths reversed, a linear output reshaped to the image."""
    widths = [in_features, *reversed(hidden)]
    output = [nn.Linear(widths[-1], math.prod(image_shape)), nn.Unflatten(1, image_shape)]
    return nn.Sequential(*_dense_stack(widths, activation, residual), *output)


def _conv_sizes(height: int, width: int, n_layers: int) -> list[tuple[int, int]]:
    """Spatial sizes before each stride-2 conv (kernel 4, padding 1: size -> size // 2), plus the last."""
    sizes = [(height, width)]
    for _ in range(n_layers):
        h, w = sizes[-1]
        if h < 2 or w < 2:
            raise ValueError(f"image of {height}x{width} is too small for {n_layers} stride-2 conv layers")
        sizes.append((h // 2, w // 2))
    return sizes


def conv_encoder_body(
    image_shape: tuple[int, int, int],
    channels: list[int],
    hidden: list[int],
    n_conditions: int = 0,
    activation: str = "relu",
) -> tuple[EncoderBody, int]:
    """Stride-2 convs (kernel 4) halving the size each layer, flatten (+ one-hot label), one dense layer; the
    activation after each."""
    c, h, w = image_shape
    h_last, w_last = _conv_sizes(h, w, len(channels))[-1]
    dense = hidden[0] if hidden else CONV_DENSE_DEFAULT
    layers: list[nn.Module] = []
    for c_in, c_out in zip([c, *channels[:-1]], channels, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
    layers.append(nn.Flatten())
    return EncoderBody(
        nn.Sequential(*layers), _dense_stack([channels[-1] * h_last * w_last + n_conditions, dense], activation)
    ), dense


def conv_decoder(
    in_features: int,
    channels: list[int],
    hidden: list[int],
    image_shape: tuple[int, int, int],
    activation: str = "relu",
) -> nn.Sequential:
    """Mirror of the conv encoder; each transposed conv doubles the size, and output_padding = the size
    lost to the encoder's floor division, so any H x W comes back exactly."""
    c, h, w = image_shape
    sizes = _conv_sizes(h, w, len(channels))
    h_last, w_last = sizes[-1]
    dense = hidden[0] if hidden else CONV_DENSE_DEFAULT
    layers: list[nn.Module] = [
        *_dense_stack([in_features, dense, channels[-1] * h_last * w_last], activation),
        nn.Unflatten(1, (channels[-1], h_last, w_last)),
    ]
    outs = [*reversed(channels[:-1]), c]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs, strict=True)):
        target_h, target_w = sizes[len(channels) - 1 - i]
        padding = (target_h % 2, target_w % 2)
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, output_padding=padding))
        if i < len(channels) - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def build_encoder_body(
    kind: str,
    image_shape,
    hidden: list[int],
    channels: list[int],
    n_conditions: int = 0,
    activation: str = "relu",
    residual: bool = False,
) -> tuple[EncoderBody, int]:
    """The encoder body named by ``model.net`` (taking a one-hot label if n_conditions > 0) and its width;
    ``residual``: the MLP's equal-width hidden layers are ``ResidualBlock``s."""
    if kind == "conv":
        return conv_encoder_body(image_shape, channels, hidden, n_conditions, activation)
    return mlp_encoder_body(image_shape, hidden, n_conditions, activation, residual)


def build_decoder(
    kind: str,
    in_features: int,
    hidden: list[int],
    channels: list[int],
    image_shape,
    activation: str = "relu",
    residual: bool = False,
) -> nn.Sequential:
    """The decoder named by ``model.net``, mirroring ``build_encoder_body``."""
    if kind == "conv":
        return conv_decoder(in_features, channels, hidden, image_shape, activation)
    return mlp_decoder(in_features, hidden, image_shape, activation, residual)


@dataclass
class Nets:
    """Networks of one's own: ``encoder`` maps images (B, C, H, W) to features (B, F), on which the model puts
    a linear ``head`` sized for its posterior (or the given one); ``decoder`` maps decoder inputs
    (B, code_size) to the likelihood's parameters (B, C, H, W) (Bernoulli logits, pre-sigmoid means)."""

    encoder: nn.Module
    decoder: nn.Module
    head: nn.Module | None = None


@torch.no_grad()
def feature_width(encoder: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """The width F of an encoder's features (B, F), from one forward pass of a blank image."""
    features = encoder(torch.zeros(1, *image_shape, device=next(encoder.parameters(), torch.empty(0)).device))
    if features.ndim != 2:
        raise ValueError(f"an encoder must return features (B, F); yours returned {tuple(features.shape)}")
    return features.shape[1]
