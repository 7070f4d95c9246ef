"""KL(q(z|x) || p(z)) per unit, in nats: closed forms registered per (posterior, prior) pair, as
``torch.distributions.kl.register_kl`` does, and a Monte Carlo estimate from the sample z otherwise.

A unit is what free bits floors: a continuous dimension, or a whole categorical.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .posteriors import Categoricals, DiagonalGaussian, categorical_kl_to_uniform
from .priors import GaussianPrior, UniformCategorical

_CLOSED_FORMS: dict[tuple[type, type], tuple[Callable, bool]] = {}


def register_kl(posterior: type, prior: type, given_draw: bool = False):
    """Decorator: ``fn(q, p) -> (B, units)`` is the closed-form KL of this pair; with ``given_draw``,
    ``fn(q, p, z) -> (..., B, units)`` is closed-form given a draw z (a hierarchy's layers, each given the ones
    above)."""

    def decorate(fn: Callable) -> Callable:
        _CLOSED_FORMS[posterior, prior] = fn, given_draw
        return fn

    return decorate


def closed_form_kl(q, p, z: torch.Tensor | None = None) -> torch.Tensor | None:
    """KL(q || p) per image and unit where the pair has a closed form, None otherwise: (B, units), or for a
    form given a draw, (..., B, units) at z (at the posterior's mean where z is None)."""
    closed_form, given_draw = _CLOSED_FORMS.get((type(q), type(p)), (None, False))
    if closed_form is None:
        return None
    return closed_form(q, p, q.mean if z is None else z) if given_draw else closed_form(q, p)


def kl_units(q, p, z: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(q || p) per image and unit: the pair's closed form, or log q(z) - log p(z) at a draw z of the
    posterior (..., B, width) whose log-density the draw gave, ``log_q`` (..., B), as one unit (an unbiased
    estimate: a flow's posterior cannot evaluate log q at other points)."""
    units = closed_form_kl(q, p, z)
    return units if units is not None else (log_q - p.log_prob(z)).unsqueeze(-1)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """Per dimension: KL(N(mu_q, s^2) || N(mu_p, t^2)) = log(t / s) + (s^2 + (mu_q - mu_p)^2) / (2 t^2) - 1/2."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1)


@register_kl(DiagonalGaussian, GaussianPrior)
def _gaussian_gaussian(q: DiagonalGaussian, p: GaussianPrior) -> torch.Tensor:
    """Per dimension: ``gaussian_kl`` to the fitted moments; for the standard normal
    -0.5 * (1 + logvar - mu^2 - exp(logvar)) (Kingma & Welling 2014, appendix B)."""
    if not p.fitted:
        return -0.5 * (1 + q.logvar - q.mu.pow(2) - q.logvar.exp())
    mean, std = p.moments()
    return gaussian_kl(q.mu, q.logvar, mean, 2 * std.log())


@register_kl(Categoricals, UniformCategorical)
def _categorical_uniform(q: Categoricals, p: UniformCategorical) -> torch.Tensor:
    """Per categorical: KL(Cat(pi) || Uniform(K)) = sum_k pi_k log pi_k + log K."""
    return torch.stack([categorical_kl_to_uniform(lg) for lg in q.logits], dim=-1)
