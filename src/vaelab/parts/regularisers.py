"""Regularisers: named terms an objective adds in training, each ``weight * term(pass)``; ``Penalty`` makes one
of any function of the pass.

The code terms help JointVAE's categorical find classes (docs/models.md has the runs). ``CodeInvariance`` asks
the categoricals of an image moved a little (shifted, rotated) to be those of the image, KL(q(c|x) || q(c|T x))
with q(c|x) held fixed (the consistency term of VAT / IMSAT clustering): what a small move changes (position,
slant) is style, for the continuous part. ``CodeBalance`` asks a batch to use the codes equally,
KL(mean_b q(c|x_b) || uniform) (IMSAT's marginal entropy): a capacity term only makes each image's code
confident, and alone it lets a few codes take most digits.

``DecompositionTerm`` weighs one term of beta-TCVAE's KL decomposition and ``PriorMMD`` the MMD between the
batch's codes and prior draws (InfoVAE, WAE): terms of the aggregate posterior, estimated from the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .aggregate import Estimator, kl_decomposition
from .mmd import Kernel, mmd, prior_bandwidths
from .objective import Pass
from .posteriors import categorical_kl, categorical_kl_to_uniform


@dataclass
class Penalty:
    """``weight * term(pass)`` logged as ``name``, e.g. ``Penalty("l2", 1e-4, lambda p: p.z.pow(2).sum(-1).mean())``."""

    name: str
    weight: float
    term: Callable[[Pass], torch.Tensor]

    def __call__(self, p: Pass) -> torch.Tensor:
        return self.term(p)


def invariance_term(logits: list[torch.Tensor], moved_logits: list[torch.Tensor]) -> torch.Tensor:
    """sum_i mean_b KL(q(c_i|x_b) || q(c_i|T x_b)), q(c|x) held fixed (no gradient): the moved images' codes
    are pulled towards the images' own, not the other way round."""
    pairs = zip(logits, moved_logits, strict=True)
    return sum(categorical_kl(lg.detach(), moved).mean() for lg, moved in pairs)


def balance_term(logits: list[torch.Tensor]) -> torch.Tensor:
    """sum_i KL(mean_b q(c_i|x_b) || Uniform(K_i)), zero when the batch uses every code equally."""
    batch_means = [torch.logsumexp(torch.log_softmax(lg, -1), 0) - math.log(len(lg)) for lg in logits]
    return sum(categorical_kl_to_uniform(log_mean) for log_mean in batch_means)


@dataclass
class CodeInvariance:
    """weight * invariance_term, the move a shift up to ``shift`` pixels along each axis and a rotation up to
    ``rotation`` degrees either way, drawn per image."""

    weight: float
    shift: float
    rotation: float
    name: str = "invariance"

    def __call__(self, p: Pass) -> torch.Tensor:
        from ..augment import random_affine  # here: augment.py uses parts/noise.py (a cycle through parts/)

        moved = random_affine(p.x, self.shift, self.rotation, p.generator)
        moved_posterior = p.model.encode(moved, p.y, p.step)
        return invariance_term(p.posterior.categorical.logits, moved_posterior.categorical.logits)


@dataclass
class CodeBalance:
    """weight * balance_term of the batch's categoricals."""

    weight: float
    name: str = "balance"

    def __call__(self, p: Pass) -> torch.Tensor:
        return balance_term(p.posterior.categorical.logits)


@dataclass
class DecompositionTerm:
    """weight * the batch mean of one term (``name``: mi, tc or dwkl) of the KL decomposition of the Gaussian
    factor ``factor`` (``parts/aggregate.kl_decomposition``); the terms of one pass share one computation."""

    name: str
    weight: float
    estimator: Estimator = "mss"
    factor: str = "z"

    def __call__(self, p: Pass) -> torch.Tensor:
        key = f"kl_decomposition:{self.factor}:{self.estimator}"
        if key not in p.shared:
            z = p.posterior.split(p.z)[self.factor]
            log_pz = p.model.prior[self.factor].log_prob(z)
            n = p.dataset_size or len(z)
            p.shared[key] = kl_decomposition(p.posterior.factors[self.factor], z, log_pz, n, self.estimator)
        return getattr(p.shared[key], self.name).mean()


@dataclass
class PriorMMD:
    """weight * MMD^2(the batch's codes, as many draws from the prior), with a ``kernel`` summed over
    bandwidths 2 D s for each s in ``scales`` (``parts/mmd.py``); 0 for a batch of one code."""

    weight: float
    kernel: Kernel
    scales: list[float]
    name: str = "mmd"

    def __call__(self, p: Pass) -> torch.Tensor:
        if len(p.z) < 2:
            return p.z.new_zeros(())
        prior = p.model.prior.sample(len(p.z), p.generator)  # (B, code_size)
        return mmd(p.z, prior, self.kernel, prior_bandwidths(p.z.shape[-1], self.scales))
