"""Posteriors q(z|x): distributions over one batch (``rsample``, ``log_prob``, ``mean``) and the heads that make
them from the encoder's outputs. Per image, in nats, summed over a factor's dimensions.

Written by hand rather than with ``torch.distributions`` so that the hot path has no validation overhead and
every quantity is reduced the same way; tests check each formula against ``torch.distributions``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .latent import LatentSpec
from .noise import Generator, rand_like_rows, randn_like_rows

LOGVAR_MIN, LOGVAR_MAX = -20.0, 10.0  # exp stays in [2e-9, 2.2e4]: no overflow, no zero variance
LOG_2PI = math.log(2 * math.pi)


class Distribution:
    """What every posterior factor shares: a draw together with its log-density, from ``rsample`` and
    ``log_prob`` (a flow computes both in one pass instead)."""

    discrete = False
    has_density = True
    layers: tuple[int, ...] = ()  # widths of a hierarchy's stochastic layers, bottom first (its KL is per layer)

    def rsample_log_prob(self, generator: Generator = None, k: int | None = None):
        z = self.rsample(generator, k)
        return z, self.log_prob(z)

    def code_indices(self) -> tuple[torch.Tensor, int] | None:
        """A quantised code's indices (B, M) into its codebook and the codebook's size; None for others."""
        return None


@dataclass
class DiagonalGaussian(Distribution):
    """N(mu, diag(exp(logvar))); tensors (B, D)."""

    mu: torch.Tensor
    logvar: torch.Tensor

    @classmethod
    def from_params(cls, params: torch.Tensor) -> DiagonalGaussian:
        """Split an encoder output (B, 2D) into mu and a bounded logvar."""
        mu, logvar = params.chunk(2, dim=-1)
        return cls(mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))

    @property
    def mean(self) -> torch.Tensor:
        return self.mu

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def rsample(self, generator: Generator = None, k: int | None = None) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (Kingma & Welling 2014, eq. 10): (B, D), or (k, B, D)."""
        shape = tuple(self.mu.shape) if k is None else (k, *self.mu.shape)
        return self.mu + self.std * randn_like_rows(shape, self.mu, generator)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over dimensions, (..., B): -0.5 * sum(log 2pi + logvar + (z - mu)^2 / var)."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.mu).pow(2) * torch.exp(-self.logvar)).sum(-1)

    def outputs(self) -> dict[str, torch.Tensor]:
        """What an exported encoder gives beside the mean."""
        return {"logvar": self.logvar}


def gumbel_softmax_sample(logits: torch.Tensor, tau: float, generator: Generator = None) -> torch.Tensor:
    """A relaxed one-hot softmax((logits + g) / tau), g ~ Gumbel(0, 1) (Jang et al. 2017; Maddison et al. 2017),
    on the simplex; its argmax is an exact draw from Categorical(softmax(logits))."""
    u = rand_like_rows(tuple(logits.shape), logits, generator)
    gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
    return torch.softmax((logits + gumbel) / tau, dim=-1)


def categorical_sample(logits: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """An exact draw from Categorical(softmax(logits)) as indices (...,), by the Gumbel-max trick."""
    u = rand_like_rows(tuple(logits.shape), logits, generator)
    return (logits - torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))).argmax(-1)


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(Cat(softmax(p_logits)) || Cat(softmax(q_logits))) per row in nats, (B,)."""
    log_p, log_q = torch.log_softmax(p_logits, dim=-1), torch.log_softmax(q_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def categorical_kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(Cat(pi) || Uniform(K)) per row in nats, (B,): sum_k pi_k log pi_k + log K."""
    log_pi = torch.log_softmax(logits, dim=-1)
    return (log_pi.exp() * log_pi).sum(-1) + math.log(logits.shape[-1])


@dataclass
class Categoricals(Distribution):
    """prod_i Cat(softmax(logits_i)), each logits (B, K_i). Drawn as relaxed one-hots at temperature ``tau``
    (training), or as exact one-hots when ``tau`` is None."""

    logits: list[torch.Tensor]
    tau: float | None = None
    discrete = True

    @property
    def codes(self) -> torch.Tensor:
        """The most probable category of each categorical, (B, n)."""
        return torch.stack([lg.argmax(-1) for lg in self.logits], dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        """The evaluation code: the one-hot argmax of each categorical, (B, sum K)."""
        return torch.cat([F.one_hot(lg.argmax(-1), lg.shape[-1]).to(lg.dtype) for lg in self.logits], dim=-1)

    def rsample(self, generator: Generator = None, k: int | None = None) -> torch.Tensor:
        """Relaxed (tau set) or exact one-hots of each categorical, (B, sum K) or (k, B, sum K)."""
        parts = []
        for lg in self.logits:
            lg = lg if k is None else lg.expand(k, *lg.shape)
            if self.tau is None:
                parts.append(F.one_hot(categorical_sample(lg, generator), lg.shape[-1]).to(lg.dtype))
            else:
                parts.append(gumbel_softmax_sample(lg, self.tau, generator))
        return torch.cat(parts, dim=-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(c|x) of exact one-hots z (..., B, sum K): sum_i <z_i, log softmax(logits_i)>, (..., B)."""
        blocks = z.split([lg.shape[-1] for lg in self.logits], dim=-1)
        return sum((b * torch.log_softmax(lg, -1)).sum(-1) for b, lg in zip(blocks, self.logits, strict=True))

    def outputs(self) -> dict[str, torch.Tensor]:
        return {"logits": torch.cat(self.logits, dim=-1)}


@dataclass
class Point(Distribution):
    """A deterministic code z = f(x) (the AE, PCA): no density, so no KL and no importance weights."""

    mean: torch.Tensor
    has_density = False

    def rsample(self, generator: Generator = None, k: int | None = None) -> torch.Tensor:
        return self.mean if k is None else self.mean.expand(k, *self.mean.shape)

    def rsample_log_prob(self, generator: Generator = None, k: int | None = None):
        return self.rsample(generator, k), None

    def outputs(self) -> dict[str, torch.Tensor]:
        return {}


@dataclass
class Product:
    """q(z|x) = prod_f q_f(z_f|x) over named factors laid out in order along z's last dimension."""

    factors: dict[str, DiagonalGaussian | Categoricals | Point]
    widths: list[int] = field(repr=False)

    @property
    def has_density(self) -> bool:
        return all(f.has_density for f in self.factors.values())

    @property
    def continuous(self) -> DiagonalGaussian | Point | None:
        """The continuous factor (the Gaussian or the point code), if any."""
        return next((f for f in self.factors.values() if not f.discrete), None)

    @property
    def categorical(self) -> Categoricals | None:
        """The categorical factor, if any."""
        return next((f for f in self.factors.values() if f.discrete), None)

    @property
    def mean(self) -> torch.Tensor:
        """The evaluation code (B, code_size): Gaussian means, points and one-hot argmaxes."""
        return torch.cat([f.mean for f in self.factors.values()], dim=-1)

    def rsample(self, generator: Generator = None, k: int | None = None) -> torch.Tensor:
        """One draw of each factor in order, (B, code_size) or (k, B, code_size)."""
        return torch.cat([f.rsample(generator, k) for f in self.factors.values()], dim=-1)

    def draw(self, generator: Generator = None, k: int | None = None) -> Draw:
        """A draw of each factor in order with its log-density: what KLs without a closed form and the
        importance weights need."""
        draws = {name: f.rsample_log_prob(generator, k) for name, f in self.factors.items()}
        return Draw(torch.cat([z for z, _ in draws.values()], dim=-1), {n: lq for n, (_, lq) in draws.items()})

    def outputs(self) -> dict[str, torch.Tensor]:
        """What an exported encoder gives: the mean, then each factor's parameters (logvar, logits)."""
        return {"mean": self.mean} | {k: v for f in self.factors.values() for k, v in f.outputs().items()}

    def kl_parts(self, kl_units: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each factor's KL per unit (..., U) summed into its named part: ``kl_<factor>``, or ``kl_layer<l>``
        per layer of a hierarchy (l = 1 at the bottom)."""
        parts = {}
        for name, units in kl_units.items():
            layers = self.factors[name].layers
            if layers:
                parts |= {f"kl_layer{i + 1}": u.sum(-1) for i, u in enumerate(units.split(layers, dim=-1))}
            else:
                parts[f"kl_{name}"] = units.sum(-1)
        return parts

    def code_indices(self) -> tuple[torch.Tensor, int] | None:
        """The first quantised factor's code indices (B, M) and codebook size (None without one)."""
        return next((c for c in (f.code_indices() for f in self.factors.values()) if c is not None), None)

    def split(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """z (..., code_size) cut into the factors' parts."""
        return dict(zip(self.factors, z.split(self.widths, dim=-1), strict=True))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) = sum_f log q_f(z_f|x), (..., B)."""
        return sum(f.log_prob(part) for f, part in zip(self.factors.values(), self.split(z).values(), strict=True))


@dataclass
class Draw:
    """z (..., B, code_size) drawn from a Product posterior, and each factor's log q of its part (None for
    point codes)."""

    z: torch.Tensor
    log_q: dict[str, torch.Tensor | None]


class GaussianHead(nn.Module):
    """Encoder outputs (B, 2D) -> N(mu, diag(exp(logvar)))."""

    def __init__(self, size: int):
        super().__init__()
        self.spec, self.n_params, self.has_density = LatentSpec(size), 2 * size, True

    def forward(self, params: torch.Tensor, step: int = 0) -> DiagonalGaussian:
        return DiagonalGaussian.from_params(params)


class CategoricalHead(nn.Module):
    """Encoder outputs (B, sum K) -> categoricals, relaxed in training at the temperature ``tau(step)``."""

    def __init__(self, sizes: list[int], tau: Callable[[int], float]):
        super().__init__()
        self.spec, self.n_params, self.has_density, self.tau = LatentSpec(0, tuple(sizes)), sum(sizes), True, tau

    def forward(self, params: torch.Tensor, step: int = 0) -> Categoricals:
        logits = list(params.split(list(self.spec.discrete), dim=-1))
        return Categoricals(logits, self.tau(step) if self.training else None)


class PointHead(nn.Module):
    """Encoder outputs (B, D) -> the point code itself."""

    def __init__(self, size: int):
        super().__init__()
        self.spec, self.n_params, self.has_density = LatentSpec(size), size, False

    def forward(self, params: torch.Tensor, step: int = 0) -> Point:
        return Point(params)


class PosteriorHeads(nn.ModuleDict):
    """Named heads, continuous ones first; together they read the encoder's outputs as a Product posterior."""

    def __init__(self, heads: dict[str, nn.Module]):
        super().__init__(heads)
        specs = [h.spec for h in heads.values()]
        if any(a.discrete and b.continuous for a, b in zip(specs, specs[1:], strict=False)):
            raise ValueError("continuous posterior factors come before categorical ones (the latent layout)")
        self.spec = LatentSpec(sum(s.continuous for s in specs), tuple(k for s in specs for k in s.discrete))
        self.n_params = sum(h.n_params for h in heads.values())
        self.has_density = all(h.has_density for h in heads.values())  # False: no KL, no importance weights

    def forward(self, params: torch.Tensor, step: int = 0) -> Product:
        """q(z|x) from the encoder's outputs (B, n_params)."""
        chunks = params.split([h.n_params for h in self.values()], dim=-1)
        factors = {name: head(p, step) for (name, head), p in zip(self.items(), chunks, strict=True)}
        return Product(factors, [h.spec.code_size for h in self.values()])
