"""The aggregate posterior q(z) = 1/N sum_n q(z|x_n) of a training set of N images, seen through a batch of B:
the KL decomposition of beta-TCVAE (Chen et al. 2018) and the covariances DIP-VAE penalises (Kumar et al. 2018).
Per image, in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .posteriors import LOG_2PI, DiagonalGaussian

Estimator = Literal["mss", "mws"]


def pairwise_log_density(q: DiagonalGaussian, z: torch.Tensor) -> torch.Tensor:
    """log q(z_id | x_j) for each draw i (B, D), image j of the batch and dimension d, (B, B, D)."""
    z = z.unsqueeze(1)  # (B, 1, D) against mu, logvar (B, D)
    return -0.5 * (LOG_2PI + q.logvar + (z - q.mu).pow(2) * torch.exp(-q.logvar))


def log_batch_weights(batch: int, dataset_size: int, estimator: Estimator = "mss") -> torch.Tensor:
    """log w_ij, (B, B), of the estimate q(z_i) ~= sum_j w_ij q(z_i|x_j) for z_i drawn from q(z|x_i).

    ``mws``, the paper's minibatch-weighted sampling (Chen et al. 2018): w_ij = 1 / (N B). Its weights sum to
    1/N rather than 1, so its log q(z) and each log q(z_d) are low by between log B and log N (by log N when the
    batch is the whole dataset), which offsets its terms: the TC by up to D log N - log B.
    ``mss``, stratified (the paper's appendix, in this form): the draw's own image is a stratum of its own,
    w_ii = 1/N, and the B - 1 other images a uniform sample of the other N - 1, w_ij = (N - 1) / (N (B - 1)):
    an unbiased estimate of q(z_i), and q(z_i) itself when the batch is the whole dataset."""
    n = max(dataset_size, batch)
    if estimator == "mws":
        return torch.full((batch, batch), -math.log(n * batch))
    log_w = torch.full((batch, batch), math.log((n - 1) / (n * (batch - 1))) if batch > 1 else 0.0)
    return log_w.fill_diagonal_(-math.log(n))


@dataclass
class KLDecomposition:
    """log q(z|x) - log p(z) at each draw z of a batch, split into three terms (Chen et al. 2018), each
    (B,): their means estimate the index-code mutual information I(x; z), the total correlation
    KL(q(z) || prod_d q(z_d)) and the dimension-wise KL sum_d KL(q(z_d) || p(z_d))."""

    mi: torch.Tensor  # log q(z|x) - log q(z)
    tc: torch.Tensor  # log q(z) - sum_d log q(z_d)
    dwkl: torch.Tensor  # sum_d log q(z_d) - log p(z)


def kl_decomposition(
    q: DiagonalGaussian, z: torch.Tensor, log_pz: torch.Tensor, dataset_size: int, estimator: Estimator = "mss"
) -> KLDecomposition:
    """The decomposition at draws z (B, D) of q (a batch's posteriors), log p(z) (B,) given, log q(z) and each
    log q(z_d) estimated from the batch with ``log_batch_weights``."""
    log_pairs = pairwise_log_density(q, z)  # (B, B, D)
    log_w = log_batch_weights(len(z), dataset_size, estimator).to(z)  # (B, B)
    log_qz = torch.logsumexp(log_w + log_pairs.sum(-1), dim=1)  # (B,)
    log_qz_dims = torch.logsumexp(log_w.unsqueeze(-1) + log_pairs, dim=1).sum(-1)  # (B,)
    log_qz_x = log_pairs.diagonal().sum(0)  # (B,): log q(z_i|x_i)
    return KLDecomposition(log_qz_x - log_qz, log_qz - log_qz_dims, log_qz_dims - log_pz)


def covariance(x: torch.Tensor) -> torch.Tensor:
    """The covariance (D, D) of the batch's rows x (B, D) as a distribution of its own: centred x^T x / B."""
    centred = x - x.mean(0)
    return centred.T @ centred / len(x)


def dip_covariance(q: DiagonalGaussian, kind: Literal["i", "ii"]) -> torch.Tensor:
    """Cov[mu(x)] over the batch (DIP-VAE-I), or the covariance of the batch's aggregate posterior
    Cov_q(z)[z] = E[diag(sigma^2(x))] + Cov[mu(x)] (DIP-VAE-II; Kumar et al. 2018), (D, D)."""
    cov = covariance(q.mu)
    return cov if kind == "i" else cov + torch.diag(q.logvar.exp().mean(0))


def off_diagonal_penalty(cov: torch.Tensor) -> torch.Tensor:
    """sum_{i != j} C_ij^2."""
    return (cov - torch.diag(cov.diagonal())).pow(2).sum()


def diagonal_penalty(cov: torch.Tensor) -> torch.Tensor:
    """sum_i (C_ii - 1)^2."""
    return (cov.diagonal() - 1).pow(2).sum()
