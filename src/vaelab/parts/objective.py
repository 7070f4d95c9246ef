"""Objectives: what training minimises, per image in nats and averaged over the batch.

The ELBO's KL is weighed per posterior factor by a ``KLWeight`` (beta, warm-up, free bits, capacity: each written
once); ``Objective(k=K)`` trains on the importance-weighted bound instead; regularisers add named terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..schedules import capacity, kl_warmup
from .noise import Generator
from .posteriors import Product


@dataclass
class ImageTerms:
    """Per-image terms, each (B,), in nats: -ELBO = recon + kl."""

    recon: torch.Tensor
    kl: torch.Tensor
    kl_parts: dict[str, torch.Tensor] = field(default_factory=dict)  # kl_<factor>, when there are several

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.recon + self.kl


@dataclass
class LossTerms:
    """Batch means of the terms; ``total`` is what the optimiser minimises."""

    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def named(self) -> dict[str, torch.Tensor]:
        return {"loss": self.total, "recon": self.recon, "kl": self.kl, **self.extras}


@dataclass(frozen=True)
class Capacity:
    """gamma * |KL - C(step)|, C rising linearly from c_min to c_max over ``steps`` and capped at ``limit``
    (Burgess et al. 2018; Dupont 2018 caps a categorical's at log K, the most its KL to a uniform can be)."""

    gamma: float
    c_max: float
    steps: int
    c_min: float = 0.0
    limit: float = math.inf

    def target(self, step: int) -> float:
        return min(capacity(step, self.c_min, self.c_max, self.steps), self.limit)


@dataclass(frozen=True)
class KLWeight:
    """The term one factor's KL adds: beta * w(step) * sum_j max(free_bits, KL_j), w the linear warm-up
    (Bowman et al. 2016) over ``warmup_steps`` or over ``warmup_fraction`` of the run's steps, and the floor the
    free bits of Kingma et al. (2016, eq. 15); with a capacity, gamma * |sum_j max(free_bits, KL_j) - C(step)|
    instead."""

    beta: float = 1.0
    warmup_steps: int = 0
    free_bits: float = 0.0
    capacity: Capacity | None = None
    warmup_fraction: float = 0.0

    def __call__(self, kl_units: torch.Tensor, step: int, total_steps: int | None = None) -> torch.Tensor:
        """The penalty for batch-mean KLs per unit (U,) at ``step`` of a run of ``total_steps``."""
        kl = kl_units.clamp(min=self.free_bits).sum() if self.free_bits > 0 else kl_units.sum()
        if self.capacity is not None:
            return self.capacity.gamma * (kl - self.capacity.target(step)).abs()
        return self.weight(step, total_steps) * kl

    def weight(self, step: int, total_steps: int | None = None) -> float:
        """beta * w(step), what the KL is multiplied by at ``step`` (without a capacity)."""
        return self.beta * kl_warmup(step, self.warmup_length(total_steps))

    def warmup_length(self, total_steps: int | None) -> int:
        """The warm-up's steps: ``warmup_steps``, or ``warmup_fraction`` of ``total_steps`` (rounded up)."""
        if not self.warmup_fraction:
            return self.warmup_steps
        if total_steps is None:
            raise ValueError("a KL warm-up over a fraction of the run needs the run's length: set the objective's "
                             "total_steps (the training loop does)")  # fmt: skip
        return math.ceil(self.warmup_fraction * total_steps)


@dataclass
class Pass:
    """One training pass over a batch: what regularisers read."""

    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor | None
    step: int
    generator: Generator
    posterior: Product
    z: torch.Tensor  # (B, code_size), the draw that was decoded
    decoded: torch.Tensor  # (B, C, H, W), the decoder's outputs at z (the likelihood's parameters)
    dataset_size: int | None = None  # N, the training images the batch is drawn from (None: the batch's size)
    shared: dict[str, Any] = field(default_factory=dict)  # what several regularisers of one pass compute once


class Regulariser(Protocol):
    """A named term added in training: ``weight * term(pass)``, logged as ``train_<name>``."""

    name: str
    weight: float

    def __call__(self, p: Pass) -> torch.Tensor: ...


@dataclass
class Objective:
    """recon + sum_f KLWeight_f(KL_f) + sum_r weight_r * r (the -ELBO by default); with k set, the k-sample
    importance-weighted bound -L_k = -[logsumexp_k log w_k - log k] (Burda et al. 2016, eq. 8) instead (at
    k = 1 the single-sample ELBO, its KL estimated by log q - log p), averaged over ``groups`` independent sets
    of k draws (MIWAE), and mixed with the ELBO of the same draws, ``elbo_weight`` * ELBO + (1 - elbo_weight)
    * L_k (CIWAE); with ``partial``, the decoder and the prior follow the bound of all groups * k draws and the
    encoder the mean of the groups' bounds (PIWAE; all three Rainforth et al. 2018)."""

    kl: dict[str, KLWeight] = field(default_factory=dict)  # by posterior factor; unnamed factors: KLWeight()
    k: int | None = None
    groups: int = 1
    elbo_weight: float = 0.0
    partial: bool = False
    regularisers: list[Regulariser] = field(default_factory=list)
    dataset_size: int | None = None  # training images, set by the loop: regularisers of q(z) = 1/N sum_n q(z|x_n)
    total_steps: int | None = None  # the run's optimisation steps, set by the loop: warm-ups over a fraction of it

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor | None, step: int, generator: Generator) -> LossTerms:
        if self.k is not None:
            return self.importance_weighted(model, x, y, generator)
        posterior = model.encode(x, y, step)
        draw = posterior.draw(generator)
        z = draw.z  # (B, code_size)
        decoded = model.decode(z, y)
        recon = model.likelihood.nll(decoded, x).mean()
        kls = {name: units.mean(0) for name, units in model.kl_units(posterior, draw).items()}  # (U,) each
        total = recon + sum(self.kl.get(name, KLWeight())(units, step, self.total_steps) for name, units in kls.items())
        several, parts = len(kls) > 1, posterior.kl_parts(kls)
        extras = parts if len(parts) > 1 else {}
        for name, weight in self.kl.items():
            suffix = f"_{name}" if several else ""
            if weight.capacity is not None:
                extras["capacity" + suffix] = torch.tensor(weight.capacity.target(step))
            elif weight.warmup_length(self.total_steps):  # the loss is recon + this weight x KL, not the -ELBO
                extras["kl_weight" + suffix] = torch.tensor(weight.weight(step, self.total_steps))
        if model.training:
            model.prior.observe(z)  # fitted priors follow the training codes
            p = Pass(model, x, y, step, generator, posterior, z, decoded, self.dataset_size)
            for regulariser in self.regularisers:
                extras[regulariser.name] = term = regulariser(p)
                total = total + regulariser.weight * term
        kl = sum(units.sum() for units in kls.values()) if kls else torch.zeros_like(recon)
        return LossTerms(total, recon, kl, extras)

    def importance_weighted(self, model, x, y, generator: Generator) -> LossTerms:
        """-L_k as the total; recon (averaged over the k samples) and the closed-form KL reported beside it."""
        log_px_z, log_pz, log_qz, posterior, draw = model.sample_log_terms(x, y, self.groups * self.k, generator)
        log_w = (log_px_z + log_pz - log_qz).view(self.groups, self.k, len(x))  # (M, k, B)
        bound = (torch.logsumexp(log_w, dim=1) - math.log(self.k)).mean(0)  # (B,)
        if self.elbo_weight:
            bound = self.elbo_weight * log_w.mean((0, 1)) + (1 - self.elbo_weight) * bound
        kl = sum(units.sum(-1).mean() for units in model.kl_units(posterior, draw).values())
        total = -bound.mean() if not self.partial else -self.partial_bound(model, x, y, log_w, draw).mean()
        return LossTerms(total, -log_px_z.mean().detach(), kl.detach())

    def partial_bound(self, model, x, y, log_w: torch.Tensor, draw) -> torch.Tensor:
        """PIWAE's bound of all the draws, (B,), whose gradient is the encoder's MIWAE gradient and the decoder's
        and prior's gradient of that bound: both are sums of the draws' grad log w_i, weighted by the softmax of log w
        within a group over the groups (b_i) or over all draws (a_i). The surrogate sum_i b_i log w_i plus
        sum_i (a_i - b_i) log p(x, z_i), z_i held fixed (one more decoder pass), has exactly those gradients."""
        n = self.groups * self.k
        a = torch.softmax(log_w.view(n, -1), 0).detach()  # (n, B)
        b = (torch.softmax(log_w, 1) / self.groups).view(n, -1).detach()
        z = draw.z.detach().flatten(0, 1)
        log_pxz = -model.likelihood.nll_draws(model.decode(z, None if y is None else y.repeat(n)), x, n)
        log_joint = log_pxz.view(n, -1) + model.prior.log_prob(draw.z.detach())  # (n, B)
        surrogate = (b * log_w.view(n, -1)).sum(0) + ((a - b) * log_joint).sum(0)
        value = torch.logsumexp(log_w.view(n, -1), 0) - math.log(n)
        return value.detach() + surrogate - surrogate.detach()
