"""The maximum mean discrepancy (Gretton et al. 2012) between a batch's codes and draws from the prior: the
divergence InfoVAE (Zhao et al. 2019) and WAE-MMD (Tolstikhin et al. 2018) put between q(z) and p(z)."""

from __future__ import annotations

from typing import Literal

import torch

Kernel = Literal["rbf", "imq"]


def kernel_matrix(a: torch.Tensor, b: torch.Tensor, kernel: Kernel, bandwidths: list[float]) -> torch.Tensor:
    """sum_s k(a_i, b_j; C_s), (n, m), for a (n, D), b (m, D) and bandwidths C_s: the Gaussian (RBF) kernel
    exp(-||a - b||^2 / C) or the inverse multiquadratic C / (C + ||a - b||^2) of WAE."""
    sq = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)  # (n, m)
    if kernel == "rbf":
        return sum(torch.exp(-sq / c) for c in bandwidths)
    return sum(c / (c + sq) for c in bandwidths)


def mmd(a: torch.Tensor, b: torch.Tensor, kernel: Kernel, bandwidths: list[float]) -> torch.Tensor:
    """The unbiased estimate (the U-statistic of Gretton et al. 2012, eq. 3) of MMD^2 between the distributions
    of samples a (n, D) and b (m, D), n, m >= 2: mean_{i != j} k(a_i, a_j) + mean_{i != j} k(b_i, b_j)
    - 2 mean_{i, j} k(a_i, b_j). Zero in expectation when a and b come from one distribution."""

    def within(x: torch.Tensor) -> torch.Tensor:
        k = kernel_matrix(x, x, kernel, bandwidths)
        return (k.sum() - k.diagonal().sum()) / (len(x) * (len(x) - 1))

    return within(a) + within(b) - 2 * kernel_matrix(a, b, kernel, bandwidths).mean()


def prior_bandwidths(dim: int, scales: list[float]) -> list[float]:
    """C_s = 2 D s: WAE's C = 2 D sigma^2 (the mean squared distance of two N(0, sigma^2 I) draws) times each
    scale s."""
    return [2.0 * dim * s for s in scales]
