"""VAEs with flow posteriors: the Gaussian posterior pushed through planar flows (Rezende & Mohamed 2015) or
inverse autoregressive flow steps that read a context from the encoder (Kingma et al. 2016). The KL has no
closed form: it is the log ratio at the posterior's draw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..parts import GaussianPrior, Objective
from ..parts.flows import FlowHead, FlowSequence, IAFStep, PlanarFlow, PlanarFlows
from ..settings import setting
from .model import Model
from .registry import register
from .vae import VAEConfig


@dataclass
class PlanarVAEConfig(VAEConfig):
    name: str = "planar-vae"
    refused = ("free_bits",)
    flows: int = setting(10, "planar layers")

    def validate(self) -> None:
        super().validate()
        if self.flows < 1 or self.free_bits:
            raise ConfigError("model.flows must be >= 1, and model.free_bits 0 (a flow's KL has no per-dimension form)")

    def head(self) -> FlowHead:
        return FlowHead(self.latent_dim, PlanarFlows(PlanarFlow(self.latent_dim) for _ in range(self.flows)))


@dataclass
class IAFVAEConfig(PlanarVAEConfig):
    name: str = "iaf-vae"
    flows: int = setting(2, "IAF steps, each a MADE, alternating the order of the dimensions")
    flow_hidden: int = setting(320, "width of each MADE")
    flow_context: int = setting(0, "encoder outputs every step reads (the paper's h; 0: none)")
    flow_step: Literal["gated", "affine"] = setting(
        "affine", "affine: z' = exp(s) z + m (the paper's eq. 10); gated: z' = sigma z + (1 - sigma) m (eqs. 11-14)"
    )

    def head(self) -> FlowHead:
        d, hidden, context, gated = self.latent_dim, self.flow_hidden, self.flow_context, self.flow_step == "gated"
        steps = [IAFStep(d, hidden, context, reverse=i % 2 == 1, gated=gated) for i in range(self.flows)]
        return FlowHead(d, FlowSequence(steps), context)


@register("planar-vae", PlanarVAEConfig, "VAE with a planar-flow posterior (Rezende & Mohamed 2015)")
@register("iaf-vae", IAFVAEConfig, "VAE with an inverse autoregressive flow posterior (Kingma et al. 2016)")
def flow_vae(config: PlanarVAEConfig, image_shape, num_classes=None, nets=None) -> Model:
    prior, objective = GaussianPrior(config.latent_dim), Objective({"z": config.kl_weight()})
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": config.head()}, prior={"z": prior},
                 objective=objective)  # fmt: skip
