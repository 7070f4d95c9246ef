"""The interface every neural model shares: encode, decode, per-image loss terms, sample, reconstruct.

Loss terms are per image, in nats: summed over pixels and latent dimensions, averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..distributions import make_likelihood
from ..errors import ConfigError
from ..nets import build_decoder, build_encoder_body


@dataclass
class ImageTerms:
    """Per-image terms, each (B,), in nats: -ELBO = recon + kl."""

    recon: torch.Tensor
    kl: torch.Tensor
    kl_parts: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. JointVAE's kl_cont, kl_disc

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.recon + self.kl


@dataclass
class LossTerms:
    """Batch means of the terms; ``total`` is what the optimiser minimises."""

    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def named(self) -> dict[str, torch.Tensor]:
        return {"loss": self.total, "recon": self.recon, "kl": self.kl, **self.extras}


class Autoencoder(nn.Module):
    """Encoder -> latent -> decoder with a likelihood; subclasses define the posterior and the prior."""

    registry_name = "base"
    closed_form = False  # True: trained by one call of fit_closed_form(x, y) instead of gradient steps

    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int | None = None):
        super().__init__()
        self.config = config
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.latent_dim = config.latent_dim
        self.likelihood = make_likelihood(config.likelihood, config.gaussian_std)
        if config.conditional and not num_classes:
            raise ConfigError("model.conditional=true needs a labelled dataset; this one has no labels")
        self.n_conditions = num_classes if config.conditional else 0
        net_args = (config.hidden, config.channels)
        self.encoder, width = build_encoder_body(config.net, self.image_shape, *net_args, self.n_conditions)
        self.encoder_head = nn.Linear(width, self.encoder_outputs())
        self.decoder = build_decoder(config.net, self.code_size() + self.n_conditions, *net_args, self.image_shape)

    def encoder_outputs(self) -> int:
        """Width of the encoder's output layer (the posterior's parameters)."""
        return self.latent_dim

    def code_size(self) -> int:
        """Width of the decoder's latent input."""
        return self.latent_dim

    def one_hot(self, y: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """The one-hot label (B, classes) of a conditional model (None otherwise), with clear errors."""
        if not self.n_conditions:
            return None
        if y is None:
            raise ConfigError("this model is conditional: pass labels y (e.g. vaelab sample RUN --label 3)")
        if y.min() < 0 or y.max() >= self.n_conditions:
            raise ConfigError(f"label out of range: this model knows labels 0..{self.n_conditions - 1}")
        return F.one_hot(y.long(), self.n_conditions).to(dtype)

    def encoder_params(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior's raw parameters (B, encoder_outputs()) for images x, in float32 (also under bf16
        autocast, so that the posterior, the KL and the loss are computed in float32)."""
        return self.encoder_head(self.encoder(x, self.one_hot(y, x.dtype))).float()

    def fit_closed_form(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Set the parameters from all training images x (N, C, H, W) at once (closed-form models only)."""
        raise NotImplementedError(f"{type(self).__name__} is trained by gradient steps")

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """Posterior q(z|x) for images x (B, C, H, W) in [0, 1]; has ``.mean`` and ``.rsample()``."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder outputs (B, C, H, W), float32: Bernoulli logits or pre-sigmoid Gaussian means."""
        condition = self.one_hot(y, z.dtype)
        return self.decoder(z if condition is None else torch.cat([z, condition], dim=-1)).float()

    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's mean image in [0, 1], (B, C, H, W)."""
        return self.likelihood.mean(self.decode(z, y))

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, generator=None) -> ImageTerms:
        """Single-sample per-image reconstruction NLL and KL, each (B,)."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, step: int = 0, generator=None) -> LossTerms:
        """The training objective at optimisation step ``step``, its noise drawn from ``generator`` (torch's
        global RNG when None); the base objective is the -ELBO."""
        t = self.terms(x, y, generator)
        recon, kl = t.recon.mean(), t.kl.mean()
        return LossTerms(recon + kl, recon, kl)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]: the likelihood means of latents drawn from the prior."""
        return self.decode_mean(self.prior_sample(n, generator), y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior mean of each image: (B, C, H, W) in [0, 1]."""
        return self.decode_mean(self.encode(x, y).mean, y)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
