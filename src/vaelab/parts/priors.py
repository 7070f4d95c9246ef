"""Priors p(z): ``sample(n)`` (with a temperature that scales the continuous spread), ``log_prob(z)``, and the
marginal moments of the continuous dimensions that traversals, latent maps and the explorer's sliders read.
Priors are modules, so learned or fitted ones keep their tensors in the run's weights."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .latent import LatentSpec
from .noise import Generator, torch_generator
from .posteriors import LOG_2PI


class Prior(nn.Module):
    """What every prior factor shares: its latent spec and the device its draws are made on."""

    def __init__(self, spec: LatentSpec):
        super().__init__()
        self.spec = spec
        self.register_buffer("anchor", torch.empty(0), persistent=False)  # follows .to(device); never saved

    def observe(self, z: torch.Tensor) -> None:
        """See a training batch of this factor's codes (fitted priors follow them; others ignore them)."""

    def attach(self, model: nn.Module) -> None:
        """Meet the model it is the prior of (a VampPrior encodes with it)."""


class GaussianPrior(Prior):
    """N(m, diag(s^2)) over ``size`` dimensions; the standard normal unless ``fitted``. A fitted one holds the
    moments of the training codes: running means updated by ``observe`` during training when ``momentum`` > 0
    (the AE, like batch norm's statistics), or set once (PCA: 0 and the eigenvalues)."""

    def __init__(self, size: int, fitted: bool = False, momentum: float = 0.0):
        super().__init__(LatentSpec(size))
        self.fitted, self.momentum = fitted, momentum
        if fitted:
            self.register_buffer("mean", torch.zeros(size))
            self.register_buffer("var", torch.ones(size))

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std, each (D,)."""
        if not self.fitted:
            d = self.spec.continuous
            return torch.zeros(d, device=self.anchor.device), torch.ones(d, device=self.anchor.device)
        return self.mean, self.var.clamp_min(0).sqrt()

    def sample(self, n: int, generator: Generator = None, temperature: float = 1.0) -> torch.Tensor:
        """z = m + T * s * eps, eps ~ N(0, I), (n, D)."""
        mean, std = self.moments()
        eps = torch.randn(n, self.spec.continuous, generator=torch_generator(generator), device=mean.device)
        return mean + temperature * std * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; m, diag(s^2)) summed over the last dimension."""
        mean, std = self.moments()
        return -0.5 * (LOG_2PI + ((z - mean) / std).pow(2) + 2 * std.log()).sum(-1)

    @torch.no_grad()
    def observe(self, z: torch.Tensor) -> None:
        """Move a fitted prior's moments towards those of a training batch of codes z (B, D)."""
        if self.fitted and self.momentum:
            self.mean.lerp_(z.mean(0), self.momentum)
            if len(z) > 1:
                self.var.lerp_(z.var(0, unbiased=False), self.momentum)


def mixture_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k N(z; mu_k, diag(exp(logvar_k))) for z (..., D), components mu, logvar (K, D), log_w (K,).

    The quadratic form sum_d (z_d - mu_kd)^2 / var_kd is expanded into two matmuls, z^2 @ (1/var)^T - 2 z @ (mu /
    var)^T + sum_d mu_kd^2 / var_kd, so that no (..., K, D) tensor is made (for 500 components on an IW-NLL call's
    2,048 rows, 32M floats; the matmuls run about 20x faster, docs/performance.md). In float32, outside any
    autocast (bf16 would cancel the expanded terms)."""
    with torch.autocast(z.device.type, enabled=False):
        z, mu, logvar, log_w = z.float(), mu.float(), logvar.float(), log_w.float()
        precision = torch.exp(-logvar)  # (K, D)
        const = (LOG_2PI + logvar + mu.pow(2) * precision).sum(-1)  # (K,)
        quad = z.pow(2) @ precision.T - 2 * (z @ (mu * precision).T)  # (..., K)
        return torch.logsumexp(log_w - 0.5 * (quad + const), dim=-1)


def mixture_moments(mu: torch.Tensor, logvar: torch.Tensor, log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per dimension, (D,) each, of the mixture: m = sum_k w_k mu_k and
    var = sum_k w_k (var_k + mu_k^2) - m^2."""
    w = log_w.exp()[:, None]  # (K, 1)
    mean = (w * mu).sum(0)
    return mean, ((w * (logvar.exp() + mu.pow(2))).sum(0) - mean.pow(2)).clamp_min(0).sqrt()


def mixture_sample(n: int, mu, logvar, log_w, generator: Generator, temperature: float) -> torch.Tensor:
    """n draws (n, D): a component k ~ w, then mu_k + T * exp(logvar_k / 2) * eps."""
    g = torch_generator(generator)
    k = torch.multinomial(log_w.exp(), n, replacement=True, generator=g)  # (n,)
    eps = torch.randn(n, mu.shape[-1], generator=g, device=mu.device)
    return mu[k] + temperature * torch.exp(0.5 * logvar[k]) * eps


class MixturePrior(Prior):
    """A learned mixture of K diagonal Gaussians, p(z) = sum_k w_k N(z; mu_k, diag(sigma_k^2)) (as in Dilokthanakul
    et al. 2016 and the GMVAE literature; here its weights, means and variances are parameters trained with the VAE)."""

    def __init__(self, size: int, components: int):
        super().__init__(LatentSpec(size))
        self.logits = nn.Parameter(torch.zeros(components))
        self.mu = nn.Parameter(torch.randn(components, size))
        self.logvar = nn.Parameter(torch.zeros(components, size))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.mu, self.logvar, torch.log_softmax(self.logits, 0)

    def sample(self, n: int, generator: Generator = None, temperature: float = 1.0) -> torch.Tensor:
        return mixture_sample(n, *self.components(), generator, temperature)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return mixture_log_prob(z, *self.components())

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        return mixture_moments(*self.components())


class VampPrior(MixturePrior):
    """The variational mixture of posteriors (Tomczak & Welling 2018): p(z) = 1/K sum_k q(z|u_k) with K learned
    pseudo-inputs u_k in [0, 1] (clamped, as the paper's hard tanh), encoded once per call: once per training
    step, a pass of K images through the encoder."""

    def __init__(self, size: int, components: int, image_shape: tuple[int, int, int], factor: str = "z"):
        Prior.__init__(self, LatentSpec(size))
        self.pseudo_inputs = nn.Parameter(0.5 + 0.1 * torch.randn(components, *image_shape))  # (K, C, H, W)
        self.factor, self.model = factor, []

    def attach(self, model: nn.Module) -> None:
        self.model = [model]  # a reference, not a submodule: the model owns this prior

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = self.model[0].encode(self.pseudo_inputs.clamp(0, 1)).factors[self.factor]  # (K, D) each
        return q.mu, q.logvar, torch.full((len(q.mu),), -math.log(len(q.mu)), device=q.mu.device)


class UniformCategorical(Prior):
    """prod_i Uniform(K_i) over one-hot codes."""

    def __init__(self, sizes: list[int]):
        super().__init__(LatentSpec(0, tuple(sizes)))

    def sample(self, n: int, generator: Generator = None, temperature: float = 1.0) -> torch.Tensor:
        """One-hots (n, sum K), each category equally likely (the temperature leaves codes alone)."""
        g, device = torch_generator(generator), self.anchor.device
        draws = [F.one_hot(torch.randint(0, k, (n,), generator=g, device=device), k) for k in self.spec.discrete]
        return torch.cat(draws, dim=-1).float()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """-sum_i log K_i for any one-hot code, (...,)."""
        return z.new_full(z.shape[:-1], -sum(map(math.log, self.spec.discrete)))


class ProductPrior(nn.ModuleDict):
    """p(z) = prod_f p_f(z_f) over the same named factors, in the same order, as the posterior."""

    def __init__(self, factors: dict[str, Prior]):
        super().__init__(factors)
        self.spec = LatentSpec(sum(f.spec.continuous for f in factors.values()),
                               tuple(k for f in factors.values() for k in f.spec.discrete))  # fmt: skip

    def sample(self, n: int, generator: Generator = None, temperature: float = 1.0) -> torch.Tensor:
        """n decoder inputs (n, code_size), the factors drawn in order."""
        return torch.cat([f.sample(n, generator, temperature) for f in self.values()], dim=-1)

    def split(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self, z.split([f.spec.code_size for f in self.values()], dim=-1), strict=True))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = sum_f log p_f(z_f), (...,)."""
        return sum(f.log_prob(part) for f, part in zip(self.values(), self.split(z).values(), strict=True))

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of each continuous dimension, (D,) each (empty for a model without continuous ones)."""
        parts = [f.moments() for f in self.values() if f.spec.continuous]
        if not parts:
            return torch.zeros(0), torch.ones(0)
        return torch.cat([m for m, _ in parts]), torch.cat([s for _, s in parts])

    def observe(self, z: torch.Tensor) -> None:
        """Let fitted factors follow a training batch's codes z (B, code_size)."""
        for f, part in zip(self.values(), self.split(z.detach()).values(), strict=True):
            f.observe(part)


def standard_prior(spec: LatentSpec) -> ProductPrior:
    """N(0, I) over the continuous dimensions and uniform categoricals: the prior of the VAE family."""
    factors: dict[str, Prior] = {"z": GaussianPrior(spec.continuous)} if spec.continuous else {}
    return ProductPrior(factors | ({"c": UniformCategorical(list(spec.discrete))} if spec.discrete else {}))
