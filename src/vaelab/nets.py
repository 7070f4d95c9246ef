"""Encoder and decoder builders, sized from the image shape: MLPs and strided convolutions.

An encoder maps images (B, C, H, W) to a flat vector (B, out_features); a decoder maps latents
(B, in_features) to image-shaped decoder outputs (B, C, H, W) (logits or pre-sigmoid means).
"""

from __future__ import annotations

import math

from torch import nn


def mlp_encoder(image_shape: tuple[int, int, int], hidden: list[int], out_features: int) -> nn.Sequential:
    """Flatten, then Linear+ReLU for each hidden width, then a linear head."""
    widths = [math.prod(image_shape), *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(w_in, w_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)


def mlp_decoder(in_features: int, hidden: list[int], image_shape: tuple[int, int, int]) -> nn.Sequential:
    """The mirror of ``mlp_encoder``: hidden widths reversed, a linear output reshaped to the image."""
    widths = [in_features, *reversed(hidden)]
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(w_in, w_out), nn.ReLU()]
    layers += [nn.Linear(widths[-1], math.prod(image_shape)), nn.Unflatten(1, image_shape)]
    return nn.Sequential(*layers)


def _conv_sizes(height: int, width: int, n_layers: int) -> list[tuple[int, int]]:
    """Spatial sizes before each stride-2 conv (kernel 4, padding 1: size -> size // 2), plus the last."""
    sizes = [(height, width)]
    for _ in range(n_layers):
        h, w = sizes[-1]
        if h < 2 or w < 2:
            raise ValueError(f"image of {height}x{width} is too small for {n_layers} stride-2 conv layers")
        sizes.append((h // 2, w // 2))
    return sizes


def conv_encoder(
    image_shape: tuple[int, int, int], channels: list[int], hidden: int, out_features: int
) -> nn.Sequential:
    """Stride-2 convs (kernel 4) halving the size each layer, then Linear(hidden) and a linear head."""
    c, h, w = image_shape
    sizes = _conv_sizes(h, w, len(channels))
    layers: list[nn.Module] = []
    for c_in, c_out in zip([c, *channels[:-1]], channels, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
    h_last, w_last = sizes[-1]
    layers += [
        nn.Flatten(),
        nn.Linear(channels[-1] * h_last * w_last, hidden),
        nn.ReLU(),
        nn.Linear(hidden, out_features),
    ]
    return nn.Sequential(*layers)


def conv_decoder(
    in_features: int, channels: list[int], hidden: int, image_shape: tuple[int, int, int]
) -> nn.Sequential:
    """Mirror of ``conv_encoder``; each transposed conv doubles the size, and output_padding = the size
    lost to the encoder's floor division, so any H x W comes back exactly."""
    c, h, w = image_shape
    sizes = _conv_sizes(h, w, len(channels))
    h_last, w_last = sizes[-1]
    layers: list[nn.Module] = [
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, channels[-1] * h_last * w_last),
        nn.ReLU(),
        nn.Unflatten(1, (channels[-1], h_last, w_last)),
    ]
    outs = [*reversed(channels[:-1]), c]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs, strict=True)):
        target_h, target_w = sizes[len(channels) - 1 - i]
        padding = (target_h % 2, target_w % 2)
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, output_padding=padding))
        if i < len(channels) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def build_encoder(kind: str, image_shape, hidden: list[int], channels: list[int], out_features: int):
    """The encoder named by ``model.net``; conv nets use the first hidden width for their dense layer."""
    if kind == "conv":
        return conv_encoder(image_shape, channels, hidden[0] if hidden else 256, out_features)
    return mlp_encoder(image_shape, hidden, out_features)


def build_decoder(kind: str, in_features: int, hidden: list[int], channels: list[int], image_shape):
    """The decoder named by ``model.net``, mirroring ``build_encoder``."""
    if kind == "conv":
        return conv_decoder(in_features, channels, hidden[0] if hidden else 256, image_shape)
    return mlp_decoder(in_features, hidden, image_shape)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
