"""VAEs with a learned prior: a mixture of K Gaussians, or the VampPrior, the mixture of the posteriors of K
learned pseudo-inputs (Tomczak & Welling 2018). The KL has no closed form: it is the log ratio at the draw."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..parts import GaussianHead, Objective
from ..parts.priors import MixturePrior, VampPrior
from ..settings import setting
from .model import Model
from .registry import register
from .vae import VAEConfig


@dataclass
class MixtureVAEConfig(VAEConfig):
    name: str = "mog-vae"
    refused = ("free_bits",)
    components: int = setting(10, "Gaussians in the prior")

    def validate(self) -> None:
        super().validate()
        if self.components < 1 or self.free_bits:
            raise ConfigError("model.components must be >= 1, and model.free_bits 0 (a mixture prior's KL has no "
                              "per-dimension form)")  # fmt: skip

    def prior(self, image_shape) -> MixturePrior:
        return MixturePrior(self.latent_dim, self.components)


@dataclass
class VampVAEConfig(MixtureVAEConfig):
    name: str = "vamp-vae"
    components: int = setting(500, "pseudo-inputs, whose posteriors make the prior (the paper's 500)")

    def prior(self, image_shape) -> VampPrior:
        if self.conditional:
            raise ConfigError("vamp-vae encodes its pseudo-inputs without labels: drop model.conditional")
        return VampPrior(self.latent_dim, self.components, image_shape)


@register("mog-vae", MixtureVAEConfig, "VAE with a learned mixture-of-Gaussians prior")
@register("vamp-vae", VampVAEConfig, "VAE with a VampPrior: a mixture of posteriors of pseudo-inputs (Tomczak 2018)")
def learned_prior_vae(config: MixtureVAEConfig, image_shape, num_classes=None, nets=None) -> Model:
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": GaussianHead(config.latent_dim)},
                 prior={"z": config.prior(image_shape)}, objective=Objective({"z": config.kl_weight()}))  # fmt: skip
