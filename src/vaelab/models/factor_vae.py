"""FactorVAE (Kim & Mnih 2018, "Disentangling by factorising"): the VAE's -ELBO plus gamma times the total
correlation of q(z), estimated by a discriminator between the batch's codes and their dimensions shuffled across
the batch (the density-ratio trick, parts/density_ratio.py). The discriminator trains beside the model on its
own cross-entropy with its own Adam settings (the paper's lr 1e-4, betas (0.5, 0.9)), saved in the checkpoints
with the model's; the TC estimate and the cross-entropy are logged as ``train_tc`` and
``train_discriminator``, and the training loss is the sum of both networks' objectives.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..nets import Nets
from ..parts import GaussianHead, GaussianPrior, Objective
from ..parts.density_ratio import DiscriminatorTerm, TCDiscriminator
from ..settings import setting
from .model import Model
from .registry import register
from .vae import VAEConfig


@dataclass
class FactorVAEConfig(VAEConfig):
    name: str = "factor-vae"
    gamma: float = setting(10.0, "weight of the total correlation estimate (the discriminator's log density ratio)")
    discriminator_hidden: list[int] = setting([1000, 1000], "the TC discriminator's MLP widths (the paper: 6 x 1000)")
    discriminator_lr: float = setting(1e-4, "the discriminator's Adam learning rate (train.lr is the VAE's)")
    discriminator_betas: list[float] = setting([0.5, 0.9], "the discriminator's Adam betas")

    def validate(self) -> None:
        super().validate()
        if self.gamma < 0 or self.discriminator_lr <= 0 or min(self.discriminator_hidden, default=1) < 1:
            raise ConfigError("model.gamma must be >= 0, model.discriminator_lr > 0 and model.discriminator_hidden "
                              "list widths >= 1")  # fmt: skip
        if len(self.discriminator_betas) != 2 or not all(0 <= b < 1 for b in self.discriminator_betas):
            raise ConfigError(f"model.discriminator_betas must be two numbers in [0, 1), e.g. [0.5, 0.9]; got "
                              f"{self.discriminator_betas}")  # fmt: skip


@register("factor-vae", FactorVAEConfig, "FactorVAE: -ELBO + gamma * a discriminator's TC estimate (Kim & Mnih 2018)")
def factor_vae(config: FactorVAEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    d, c = config.latent_dim, config
    critic = TCDiscriminator(d, c.discriminator_hidden, c.discriminator_lr, tuple(c.discriminator_betas))
    terms = [DiscriminatorTerm("tc", c.gamma, critic), DiscriminatorTerm("discriminator", 1.0, critic)]
    objective = Objective({"z": c.kl_weight()}, regularisers=terms)
    posterior, prior = {"z": GaussianHead(d)}, {"z": GaussianPrior(d)}
    return Model(c, image_shape, num_classes, nets=nets, posterior=posterior, prior=prior, objective=objective,
                 auxiliaries={"discriminator": critic})  # fmt: skip
