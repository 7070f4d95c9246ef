"""JointVAE (Dupont 2018): continuous Gaussian latents plus one or more categorical latents relaxed with
Gumbel-softmax, each part held to its own capacity schedule.

Latent spec: ``model.latent_dim`` continuous dimensions and ``model.discrete`` (a list of category
counts). The decoder sees z = [z_cont, one-hot or relaxed one-hot of each categorical].

Two terms that are not in the paper help the categorical find classes (docs/models.md has the runs):
``model.invariance`` > 0 asks the categoricals of an image moved a little (shifted, rotated) to be those of the
image, KL(q(c|x) || q(c|T x)) with q(c|x) held fixed (the consistency term of VAT / IMSAT clustering): what a
small move changes (position, slant) is style, for the continuous part. ``model.balance`` > 0 asks a batch to
use the codes equally, KL(mean_b q(c|x_b) || uniform) (IMSAT's marginal entropy): the capacity term only
makes each image's code confident, and alone it lets a few codes take most digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..augment import random_affine
from ..config import ModelConfig
from ..distributions import (
    DiagonalGaussian,
    categorical_kl,
    categorical_kl_to_uniform,
    categorical_sample,
    gumbel_softmax_sample,
    standard_normal_log_prob,
)
from ..errors import ConfigError
from ..schedules import capacity
from .base import Autoencoder, ImageTerms, LossTerms
from .registry import register


@dataclass
class JointVAEConfig(ModelConfig):
    """Defaults: the JointVAE paper's MNIST spec (its training keys lr 5e-4, batch 64 are in
    configs/joint-vae-mlp.yaml)."""

    name: str = "joint-vae"
    latent_dim: int = 10  # continuous dimensions
    discrete: list[int] = field(default_factory=lambda: [10])  # categories of each discrete latent
    tau: float = 0.67  # Gumbel-softmax temperature in training
    gamma: float = 30.0  # weight of each |KL - C|
    cont_c_max: float = 5.0  # continuous capacity (nats), rising from 0 over cont_c_steps
    cont_c_steps: int = 25_000
    disc_c_max: float = 5.0  # discrete capacity (nats), capped at sum(log K)
    disc_c_steps: int = 25_000
    invariance: float = 0.0  # weight of KL(q(c|x) || q(c|moved x)); 0 is the paper's JointVAE
    invariance_shift: float = 2.0  # the moves: up to this many pixels along each axis
    invariance_rotation: float = 10.0  # and up to this many degrees either way
    balance: float = 0.0  # weight of KL(batch mean of q(c|x) || uniform); 0 is the paper's JointVAE

    def validate(self) -> None:
        keys = (self.gamma, self.cont_c_max, self.cont_c_steps, self.disc_c_max, self.disc_c_steps, self.invariance,
                self.invariance_shift, self.invariance_rotation, self.balance)  # fmt: skip
        if min(keys) < 0:
            raise ConfigError(
                "model.gamma, the capacity keys (cont_c_*, disc_c_*), model.invariance* and model.balance must be >= 0"
            )
        if not self.tau > 0:
            raise ConfigError(f"model.tau must be > 0 (the Gumbel-softmax temperature); got {self.tau}")
        if not self.discrete or any(k < 2 for k in self.discrete):
            raise ConfigError(f"model.discrete must list category counts >= 2, e.g. [10]; got {self.discrete}")


@dataclass
class JointPosterior:
    """q(z|x) = N(mu, diag(exp(logvar))) x prod_i Cat(softmax(logits_i))."""

    gaussian: DiagonalGaussian
    logits: list[torch.Tensor]  # each (B, K_i)

    @property
    def codes(self) -> torch.Tensor:
        """The most probable category of each discrete latent, (B, n_discrete)."""
        return torch.stack([lg.argmax(-1) for lg in self.logits], dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        """The evaluation code: [mu, one-hot argmax of each categorical], (B, D + sum K)."""
        hard = [F.one_hot(lg.argmax(-1), lg.shape[-1]).to(lg.dtype) for lg in self.logits]
        return torch.cat([self.gaussian.mu, *hard], dim=-1)

    def rsample(self, generator=None, tau: float | None = None) -> torch.Tensor:
        """[z_cont, relaxed one-hots at temperature tau] (training), or exact one-hots when tau is None."""
        z = self.gaussian.rsample(generator)
        parts = [
            gumbel_softmax_sample(lg, tau, generator)
            if tau is not None
            else F.one_hot(categorical_sample(lg, generator), lg.shape[-1]).to(lg.dtype)
            for lg in self.logits
        ]
        return torch.cat([z, *parts], dim=-1)

    def kl_discrete(self) -> torch.Tensor:
        """Sum over the categoricals of KL(Cat(pi_i) || Uniform(K_i)), (B,)."""
        return torch.stack([categorical_kl_to_uniform(lg) for lg in self.logits]).sum(0)


def invariance_term(logits: list[torch.Tensor], moved_logits: list[torch.Tensor]) -> torch.Tensor:
    """sum_i mean_b KL(q(c_i|x_b) || q(c_i|T x_b)), q(c|x) held fixed (no gradient): the moved images' codes
    are pulled towards the images' own, not the other way round."""
    pairs = zip(logits, moved_logits, strict=True)
    return sum(categorical_kl(lg.detach(), moved).mean() for lg, moved in pairs)


def balance_term(logits: list[torch.Tensor]) -> torch.Tensor:
    """sum_i KL(mean_b q(c_i|x_b) || Uniform(K_i)), zero when the batch uses every code equally."""
    batch_means = [torch.logsumexp(torch.log_softmax(lg, -1), 0) - math.log(len(lg)) for lg in logits]
    return sum(categorical_kl_to_uniform(log_mean) for log_mean in batch_means)


@register("joint-vae", JointVAEConfig, "JointVAE: Gaussian + Gumbel-softmax categorical latents (Dupont 2018)")
class JointVAE(Autoencoder):
    def __init__(self, config: JointVAEConfig, image_shape, num_classes=None):
        self.discrete_sizes = list(config.discrete)
        super().__init__(config, image_shape, num_classes)

    def encoder_outputs(self) -> int:
        return 2 * self.latent_dim + sum(self.discrete_sizes)

    def code_size(self) -> int:
        return self.latent_dim + sum(self.discrete_sizes)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> JointPosterior:
        return self.posterior(self.encoder_params(x, y))

    def posterior(self, params: torch.Tensor) -> JointPosterior:
        """q(z|x) from the encoder's outputs (B, 2D + sum K)."""
        gaussian = DiagonalGaussian.from_params(params[:, : 2 * self.latent_dim])
        return JointPosterior(gaussian, list(params[:, 2 * self.latent_dim :].split(self.discrete_sizes, dim=-1)))

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, generator=None, posterior: JointPosterior | None = None
    ) -> ImageTerms:
        """recon with relaxed categoricals in training, exact ones in evaluation (a true ELBO); KL split into
        its continuous and discrete parts. ``posterior``: q(z|x) if already encoded."""
        posterior = self.encode(x, y) if posterior is None else posterior
        z = posterior.rsample(generator, self.config.tau if self.training else None)
        recon = self.likelihood.nll(self.decode(z, y), x)
        kl_cont, kl_disc = posterior.gaussian.kl_to_standard_normal(), posterior.kl_discrete()
        return ImageTerms(recon, kl_cont + kl_disc, {"kl_cont": kl_cont, "kl_disc": kl_disc})

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, step: int = 0, generator=None) -> LossTerms:
        """recon + gamma |KL_cont - C_cont(step)| + gamma |KL_disc - C_disc(step)| (Dupont 2018, eq. 7), the
        discrete capacity capped at sum(log K), the most a uniform-prior categorical KL can reach; in training
        plus invariance * invariance_term + balance * balance_term where their weights are > 0. With
        model.invariance the randomly moved images are encoded in the same pass as x."""
        cfg = self.config
        moved_logits = None
        if self.training and cfg.invariance > 0:
            moved = random_affine(x, cfg.invariance_shift, cfg.invariance_rotation, generator)
            both = self.encoder_params(torch.cat([x, moved]), None if y is None else y.repeat(2))
            params, moved_params = both.chunk(2)
            posterior, moved_logits = self.posterior(params), self.posterior(moved_params).logits
        else:
            posterior = self.encode(x, y)
        t = self.terms(x, y, generator, posterior)
        recon, kl_cont, kl_disc = t.recon.mean(), t.kl_parts["kl_cont"].mean(), t.kl_parts["kl_disc"].mean()
        c_cont = capacity(step, 0.0, cfg.cont_c_max, cfg.cont_c_steps)
        c_disc = min(capacity(step, 0.0, cfg.disc_c_max, cfg.disc_c_steps), sum(map(math.log, self.discrete_sizes)))
        total = recon + cfg.gamma * ((kl_cont - c_cont).abs() + (kl_disc - c_disc).abs())
        extras = {"kl_cont": kl_cont, "kl_disc": kl_disc}
        if moved_logits is not None:
            extras["invariance"] = invariance_term(posterior.logits, moved_logits)
            total = total + cfg.invariance * extras["invariance"]
        if self.training and cfg.balance > 0:
            extras["balance"] = balance_term(posterior.logits)
            total = total + cfg.balance * extras["balance"]
        return LossTerms(total, recon, kl_cont + kl_disc, extras)

    def log_importance_weights(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, generator=None):
        """log p(x|z) + log p(z) - log q(z|x), (k, B), with exact categorical samples (no relaxation)."""
        posterior = self.encode(x, y)
        z_cont = posterior.gaussian.rsample(generator, k)  # (k, B, D)
        indices = [categorical_sample(lg.expand(k, *lg.shape), generator) for lg in posterior.logits]  # (k, B)
        one_hots = [F.one_hot(i, n).to(z_cont.dtype) for i, n in zip(indices, self.discrete_sizes, strict=True)]
        z = torch.cat([z_cont, *one_hots], dim=-1)
        decoded = self.decode(z.flatten(0, 1), None if y is None else y.repeat(k))
        log_px_z = -self.likelihood.nll(decoded, x.repeat(k, *([1] * (x.ndim - 1)))).view(k, len(x))
        log_q_disc = sum(
            torch.log_softmax(lg, -1).gather(-1, i.T).T for lg, i in zip(posterior.logits, indices, strict=True)
        )
        log_p_disc = -sum(map(math.log, self.discrete_sizes))
        log_q = posterior.gaussian.log_prob(z_cont) + log_q_disc
        return log_px_z + standard_normal_log_prob(z_cont) + log_p_disc - log_q

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        one_hots = [
            F.one_hot(torch.randint(0, k, (n,), generator=generator, device=self.device), k).float()
            for k in self.discrete_sizes
        ]
        return torch.cat([z, *one_hots], dim=-1)
