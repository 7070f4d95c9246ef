"""Regularised autoencoder with a gradient penalty, RAE-GP (Ghosh et al. 2020, "From variational to deterministic
autoencoders"): RAE-L2's point code and code penalty beta ||z||^2 / 2 (models/rae.py), the decoder smoothed by
lambda ||grad_z D(z)||^2 at the codes instead of by weight decay (which ``decoder_decay`` can add back); logged as
``train_gradient_penalty``.

||grad_z D(z)||^2 is read as the squared Frobenius norm of the Jacobian of the decoder's image (the likelihood's
mean) at z, estimated without bias by ||J^T v||^2 with v ~ N(0, I) over the pixels: one backward pass, where the
exact norm takes one per latent dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..parts import GaussianPrior, Objective, Pass, Penalty, PointHead
from ..parts.noise import randn_like_rows
from ..settings import setting
from .model import Model
from .rae import RAEConfig, code_norm, decoder_norm
from .registry import register


@dataclass
class RAEGPConfig(RAEConfig):
    name: str = "rae-gp"
    decoder_decay: float = 0.0  # RAE-L2's penalty, off here: the gradient penalty smooths the decoder instead
    gradient_penalty: float = setting(1e-3, "weight of the decoder's squared Jacobian norm at the codes")
    refused = ("pixel_context",)

    def validate(self) -> None:
        super().validate()
        if self.pixel_context:
            raise ConfigError("model.pixel_context is not available for rae-gp: its penalty differentiates the mean "
                              "image, which a pixel context computes pixel by pixel; set it to 0")  # fmt: skip


def gradient_penalty(p: Pass) -> torch.Tensor:
    """mean_b ||J_b^T v_b||^2, J_b = d mean(D(z_b)) / d z_b (pixels x D), v_b ~ N(0, I): E_v = mean_b ||J_b||_F^2."""
    image = p.model.likelihood.mean(p.decoded).flatten(1)  # (B, pixels)
    v = randn_like_rows(tuple(image.shape), image, p.generator)
    (grad,) = torch.autograd.grad(image, p.z, grad_outputs=v, create_graph=True)  # (B, D): J_b^T v_b
    return grad.pow(2).sum(-1).mean()


@register("rae-gp", RAEGPConfig, "Regularised autoencoder, RAE-GP (Ghosh et al. 2020): a decoder gradient penalty")
def rae_gp(config: RAEGPConfig, image_shape, num_classes=None, nets=None) -> Model:
    terms = [Penalty("code_norm", config.beta, code_norm),
             Penalty("gradient_penalty", config.gradient_penalty, gradient_penalty)]  # fmt: skip
    terms += [Penalty("decoder_norm", config.decoder_decay, decoder_norm)] if config.decoder_decay else []
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": PointHead(config.latent_dim)},
                 prior={"z": GaussianPrior(config.latent_dim, fitted=True, momentum=0.01)},
                 objective=Objective(regularisers=terms))  # fmt: skip
