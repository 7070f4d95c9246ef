"""Likelihoods p(x|z) of the decoder's outputs: ``nll`` per image in nats (summed over pixels) and ``mean``,
the image in [0, 1] that pictures show."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .posteriors import LOG_2PI


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for pixels x in [0, 1] under Bernoulli(sigmoid(logits)), summed per image, (B,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, std: float) -> torch.Tensor:
    """-log N(x; mean, std^2 I) summed per image, (B,): sum(0.5 * ((x - mean) / std)^2 + log std + 0.5 log 2pi)."""
    squared = (x - mean).pow(2).flatten(1).sum(1)
    return 0.5 * squared / std**2 + x[0].numel() * (math.log(std) + 0.5 * LOG_2PI)


class BernoulliLikelihood:
    """p(x|z) = Bernoulli(sigmoid(logits)) per pixel: for binarised data (or grey levels as soft targets)."""

    name = "bernoulli"

    def nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return bernoulli_nll(decoded, x)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(decoded)


class GaussianLikelihood:
    """p(x|z) = N(sigmoid(out), std^2 I) with a fixed, stated std; its NLL compares only to other Gaussian NLLs."""

    name = "gaussian"

    def __init__(self, std: float):
        self.std = std

    def nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(torch.sigmoid(decoded), x, self.std)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(decoded)


def make_likelihood(name: str, gaussian_std: float) -> BernoulliLikelihood | GaussianLikelihood:
    """The likelihood named in the model config."""
    return GaussianLikelihood(gaussian_std) if name == "gaussian" else BernoulliLikelihood()
