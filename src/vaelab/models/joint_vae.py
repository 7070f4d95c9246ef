"""JointVAE (Dupont 2018): continuous Gaussian latents plus categorical ones relaxed with Gumbel-softmax, each
part held to its own capacity schedule; the code terms of parts/regularisers.py are optional extras.

Latent spec: ``model.latent_dim`` continuous dimensions and ``model.discrete`` (category counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..nets import Nets
from ..parts import (
    Capacity,
    CategoricalHead,
    CodeBalance,
    CodeInvariance,
    GaussianHead,
    GaussianPrior,
    KLWeight,
    Objective,  # fmt: skip
    UniformCategorical,
)
from ..schedules import linear_ramp
from ..settings import setting
from .config import ModelConfig
from .model import Model
from .registry import register


@dataclass
class JointVAEConfig(ModelConfig):
    """Defaults: the paper's MNIST spec (its training keys lr 5e-4, batch 64 are in configs/joint-vae-mlp.yaml)."""

    name: str = "joint-vae"
    latent_dim: int = setting(10, "continuous (Gaussian) dimensions")
    discrete: list[int] = setting([10], "categories of each discrete latent")
    tau: float = setting(0.67, "Gumbel-softmax temperature in training (after tau_steps)")
    tau_start: float = setting(0.67, "temperature at step 0, annealed linearly to tau over tau_steps")
    tau_steps: int = setting(0, "steps of the temperature's annealing; 0 = tau from the start")
    gamma: float = setting(30.0, "weight of each |KL - C|")
    cont_c_max: float = setting(5.0, "continuous capacity (nats), rising from 0 over cont_c_steps")
    cont_c_steps: int = setting(25_000, "steps of the continuous capacity's rise")
    disc_c_max: float = setting(5.0, "discrete capacity (nats), capped at sum(log K)")
    disc_c_steps: int = setting(25_000, "steps of the discrete capacity's rise")
    invariance: float = setting(0.0, "weight of KL(q(c|x) || q(c|moved x)); 0 is the paper's JointVAE")
    invariance_shift: float = setting(2.0, "the moves: up to this many pixels along each axis")
    invariance_rotation: float = setting(10.0, "the moves: up to this many degrees either way")
    balance: float = setting(0.0, "weight of KL(batch mean of q(c|x) || uniform); 0 is the paper's JointVAE")

    def validate(self) -> None:
        keys = (self.gamma, self.cont_c_max, self.cont_c_steps, self.disc_c_max, self.disc_c_steps, self.tau_steps,
                self.invariance, self.invariance_shift, self.invariance_rotation, self.balance)  # fmt: skip
        if min(keys) < 0:
            raise ConfigError("model.gamma, the capacity keys (cont_c_*, disc_c_*), model.tau_steps, "
                              "model.invariance* and model.balance must be >= 0")  # fmt: skip
        if not (self.tau > 0 and self.tau_start > 0):
            raise ConfigError(
                f"model.tau and model.tau_start must be > 0 (Gumbel-softmax temperatures); got {self.tau}"
            )
        if not self.discrete or any(k < 2 for k in self.discrete):
            raise ConfigError(f"model.discrete must list category counts >= 2, e.g. [10]; got {self.discrete}")


@register("joint-vae", JointVAEConfig, "JointVAE: Gaussian + Gumbel-softmax categorical latents (Dupont 2018)")
def joint_vae(config: JointVAEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    c = config
    tau = lambda step: linear_ramp(step, c.tau_start, c.tau, c.tau_steps)  # noqa: E731
    max_disc_kl = sum(map(math.log, c.discrete))  # the most a KL to uniform categoricals can be
    kl = {"cont": KLWeight(capacity=Capacity(c.gamma, c.cont_c_max, c.cont_c_steps)),
          "disc": KLWeight(capacity=Capacity(c.gamma, c.disc_c_max, c.disc_c_steps, limit=max_disc_kl))}  # fmt: skip
    terms = [CodeInvariance(c.invariance, c.invariance_shift, c.invariance_rotation)] if c.invariance else []
    terms += [CodeBalance(c.balance)] if c.balance else []
    return Model(c, image_shape, num_classes, nets=nets,
                 posterior={"cont": GaussianHead(c.latent_dim), "disc": CategoricalHead(c.discrete, tau)},
                 prior={"cont": GaussianPrior(c.latent_dim), "disc": UniformCategorical(c.discrete)},
                 objective=Objective(kl, regularisers=terms))  # fmt: skip
