"""DIP-VAE I and II (Kumar et al. 2018, "Variational inference of disentangled latent concepts from unlabeled
observations"): the VAE's -ELBO plus lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2, C the
covariance over the batch of the posterior means (I) or of the aggregate posterior itself (II: that plus the
mean posterior variance; parts/aggregate.py), which asks the codes to be decorrelated with unit variance. The
two penalties are logged as ``train_dip_od`` and ``train_dip_d``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from ..errors import ConfigError
from ..nets import Nets
from ..parts import GaussianHead, GaussianPrior, Objective, Pass, Penalty
from ..parts.aggregate import diagonal_penalty, dip_covariance, off_diagonal_penalty
from ..settings import setting
from .model import Model
from .registry import register
from .vae import VAEConfig


@dataclass
class DIPVAEConfig(VAEConfig):
    """Defaults: the paper's lambda_d = 10 lambda_od for DIP-VAE-I."""

    name: str = "dip-vae-i"
    lambda_od: float = setting(
        10.0, "weight of the squared off-diagonal entries of C (I: cov of the means, II: of q(z))"
    )
    lambda_d: float = setting(100.0, "weight of the squared distances of C's diagonal from 1")

    kind = "i"  # the covariance penalised: of the posterior means (i) or of the aggregate posterior (ii)

    def validate(self) -> None:
        super().validate()
        if min(self.lambda_od, self.lambda_d) < 0:
            raise ConfigError("model.lambda_od and model.lambda_d must be >= 0")


@dataclass
class DIPVAEIIConfig(DIPVAEConfig):
    """Defaults: the paper's lambda_d = lambda_od for DIP-VAE-II."""

    name: str = "dip-vae-ii"
    lambda_d: float = 10.0

    kind = "ii"


def dip_term(kind: Literal["i", "ii"], penalty: Callable[[Tensor], Tensor]) -> Callable[[Pass], Tensor]:
    """The pass's ``penalty(C)``, C the batch's DIP covariance of the factor z."""
    return lambda p: penalty(dip_covariance(p.posterior.factors["z"], kind))


@register("dip-vae-i", DIPVAEConfig, "DIP-VAE-I: decorrelates the posterior means (Kumar et al. 2018)")
@register("dip-vae-ii", DIPVAEIIConfig, "DIP-VAE-II: decorrelates the aggregate posterior (Kumar et al. 2018)")
def dip_vae(config: DIPVAEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    terms = [Penalty("dip_od", config.lambda_od, dip_term(config.kind, off_diagonal_penalty)),
             Penalty("dip_d", config.lambda_d, dip_term(config.kind, diagonal_penalty))]  # fmt: skip
    d, objective = config.latent_dim, Objective({"z": config.kl_weight()}, regularisers=terms)
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": GaussianHead(d)},
                 prior={"z": GaussianPrior(d)}, objective=objective)  # fmt: skip
