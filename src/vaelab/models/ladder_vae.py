"""The Ladder VAE (Sønderby et al. 2016): stochastic layers z_1 .. z_L with a top-down posterior that shares the
prior's top-down path, in NVAE's residual form (Vahdat & Kautz 2020; parts/ladder.py). The decoder reads every
layer, [z_1, ..., z_L]; the KL is reported per layer (``kl_layer1`` at the bottom), each in closed form given the
draw of the layers above."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..parts import Objective
from ..parts.ladder import LadderHead, LadderPrior
from ..settings import setting
from .model import Model
from .registry import register
from .vae import VAEConfig


@dataclass
class LadderVAEConfig(VAEConfig):
    name: str = "ladder-vae"
    upper: list[int] = setting([16], "widths of the stochastic layers above z_1 (latent_dim), upwards")
    ladder_hidden: int = setting(256, "width of the networks between layers, bottom-up and top-down")

    def validate(self) -> None:
        super().validate()
        if not self.upper or min(self.upper) < 1 or self.ladder_hidden < 1:
            raise ConfigError(f"model.upper must list one or more layer widths >= 1 (e.g. [16]) and "
                              f"model.ladder_hidden be >= 1; got {self.upper} and {self.ladder_hidden}")  # fmt: skip


@register("ladder-vae", LadderVAEConfig, "Ladder VAE: stochastic layers with top-down inference (Sønderby 2016)")
def ladder_vae(config: LadderVAEConfig, image_shape, num_classes=None, nets=None) -> Model:
    prior = LadderPrior([config.latent_dim, *config.upper], config.ladder_hidden)
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": LadderHead(prior, config.ladder_hidden)},
                 prior={"z": prior}, objective=Objective({"z": config.kl_weight()}))  # fmt: skip
