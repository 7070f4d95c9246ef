"""Posteriors and likelihoods, all per image in nats (summed over latent dimensions or pixels).

Written by hand rather than with ``torch.distributions`` so that the hot path has no validation
overhead and every quantity is reduced the same way; tests check each formula against
``torch.distributions``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOGVAR_MIN, LOGVAR_MAX = -20.0, 10.0  # exp stays in [2e-9, 2.2e4]: no overflow, no zero variance
LOG_2PI = math.log(2 * math.pi)


@dataclass
class BatchShard:
    """A generator for one process's rows ``start:stop`` of a global batch of ``size`` rows: every process
    draws the noise of the whole batch from the same generator state and keeps its own rows, so the
    processes together draw exactly what one process would (data-parallel training equals one process).

    For torch.compile, which cannot trace a draw from a Generator, the draws of a step can be made ahead:
    ``record`` collects what each draw was, and a later step with the same rows passes them as ``tape``."""

    generator: torch.Generator
    size: int
    start: int
    stop: int
    tape: list[torch.Tensor] | None = None  # draws made ahead, consumed in order
    record: list[tuple[Callable, tuple[int, ...], int]] | None = None  # (sample, shape, batch_dim) of each draw

    def draw_ahead(self, recorded: list[tuple[Callable, tuple[int, ...], int]]) -> None:
        """Make the draws ``recorded`` on an earlier step, in order, as this step's tape."""
        self.tape = [_draw(sample, shape, self, batch_dim) for sample, shape, batch_dim in recorded]


Generator = torch.Generator | BatchShard | None


def draw(sample, shape: tuple[int, ...], generator: Generator, batch_dim: int = -2) -> torch.Tensor:
    """``sample(shape, torch_generator)``; with a BatchShard, drawn for the global batch along ``batch_dim``
    and narrowed to this process's rows (or taken from its tape)."""
    if isinstance(generator, BatchShard) and generator.tape is not None:
        return generator.tape.pop(0)
    out = _draw(sample, shape, generator, batch_dim)
    if isinstance(generator, BatchShard) and generator.record is not None:
        generator.record.append((sample, shape, batch_dim))
    return out


def _draw_now(sample, shape: tuple[int, ...], generator: Generator, batch_dim: int) -> torch.Tensor:
    if not isinstance(generator, BatchShard):
        return sample(shape, generator)
    if shape[batch_dim] != generator.stop - generator.start:
        raise ValueError(f"noise of shape {shape} does not hold the {generator.stop - generator.start} rows of a shard")
    full = list(shape)
    full[batch_dim] = generator.size
    rows = generator.stop - generator.start
    return sample(tuple(full), generator.generator).narrow(batch_dim, generator.start, rows)


_draw = _draw_now  # what draw() calls; keep_draws_out_of_compiled_graphs() wraps it


def keep_draws_out_of_compiled_graphs() -> None:
    """Make torch.compile break its graph at each draw, which it cannot trace from a Generator. Called when
    compilation is switched on rather than at import: torch.compiler.disable imports torch._dynamo, which
    would add ~1.6 s to the start of every vaelab command."""
    global _draw
    _draw = torch.compiler.disable(_draw_now)


def randn_like_rows(shape: tuple[int, ...], like: torch.Tensor, generator: Generator) -> torch.Tensor:
    """N(0, 1) draws of ``shape`` with ``like``'s dtype and device; rows are dim -2."""
    return draw(lambda s, g: torch.randn(s, generator=g, dtype=like.dtype, device=like.device), shape, generator)


def rand_like_rows(shape: tuple[int, ...], like: torch.Tensor, generator: Generator) -> torch.Tensor:
    """U(0, 1) draws of ``shape`` with ``like``'s dtype and device; rows are dim -2."""
    return draw(lambda s, g: torch.rand(s, generator=g, dtype=like.dtype, device=like.device), shape, generator)


@dataclass
class DiagonalGaussian:
    """q(z|x) = N(mu, diag(exp(logvar))); tensors of shape (B, D)."""

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

    def rsample(self, generator: Generator = None, k: int | None = None) -> torch.Tensor:
        """Reparameterised sample z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (Kingma & Welling 2014,
        eq. 10): (B, D), or (k, B, D) with ``k`` samples per image."""
        shape = tuple(self.mu.shape) if k is None else (k, *self.mu.shape)
        eps = randn_like_rows(shape, self.mu, generator)
        return self.mu + torch.exp(0.5 * self.logvar) * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over dimensions, (..., B): -0.5 * sum(log 2pi + logvar + (z - mu)^2 / var)."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.mu).pow(2) * torch.exp(-self.logvar)).sum(-1)

    def kl_per_dim(self) -> torch.Tensor:
        """KL(q || N(0, I)) per dimension, (B, D): -0.5 * (1 + logvar - mu^2 - exp(logvar))."""
        return -0.5 * (1 + self.logvar - self.mu.pow(2) - self.logvar.exp())

    def kl_to_standard_normal(self) -> torch.Tensor:
        """KL(N(mu, diag(exp(logvar))) || N(0, I)) per image in nats, (B,) (Kingma & Welling 2014, appendix B)."""
        return self.kl_per_dim().sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


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


def gumbel_softmax_sample(logits: torch.Tensor, tau: float, generator: Generator = None) -> torch.Tensor:
    """A relaxed one-hot sample softmax((logits + g) / tau), g ~ Gumbel(0, 1) (Jang et al. 2017; Maddison
    et al. 2017), (B, K) on the simplex; its argmax is an exact draw from Categorical(softmax(logits))."""
    u = rand_like_rows(tuple(logits.shape), logits, generator)
    gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
    return torch.softmax((logits + gumbel) / tau, dim=-1)


def categorical_sample(logits: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """An exact draw from Categorical(softmax(logits)) as indices (..., ) via the Gumbel-max trick."""
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
