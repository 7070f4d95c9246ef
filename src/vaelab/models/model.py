"""A model composed of parts: an encoder and a posterior head give q(z|x), a prior gives p(z), a decoder and a
likelihood give p(x|z), and an objective says what training minimises. Every registered model is one
(models/*.py say which parts), and a user's own encoder and decoder fit in the same way (``Nets``).

Terms are per image, in nats: summed over pixels and latent dimensions, averaged over the batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nets import EncoderBody, Nets, build_decoder, build_encoder_body, feature_width
from ..parts.kl import closed_form_kl, kl_units
from ..parts.likelihoods import make_likelihood
from ..parts.noise import Generator
from ..parts.objective import ImageTerms, LossTerms, Objective
from ..parts.posteriors import Draw, PosteriorHeads, Product
from ..parts.priors import Prior, ProductPrior
from .config import ModelConfig


class Model(nn.Module):
    """encoder -> head -> posterior q(z|x); prior p(z); decoder -> likelihood p(x|z); objective.

    ``posterior`` and ``prior`` name the same factors in the same order (continuous ones first); together they
    define ``spec``, the latent spec every consumer reads. ``fit``: a closed-form fit on all training images
    (PCA), which then replaces gradient training. ``auxiliaries``: networks the objective trains beside the model
    (a FactorVAE's discriminator), saved with its weights."""

    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int | None = None, *,
                 posterior: dict[str, nn.Module], prior: dict[str, Prior], objective: Objective,
                 nets: Nets | None = None, fit: Callable[[Model, torch.Tensor], None] | None = None,
                 auxiliaries: dict[str, nn.Module] | None = None):  # fmt: skip
        super().__init__()
        self.config, self.image_shape, self.num_classes = config, tuple(image_shape), num_classes
        if config.conditional and not num_classes:
            raise ConfigError("model.conditional=true needs a labelled dataset; this one has no labels")
        self.n_conditions = num_classes if config.conditional else 0
        self.likelihood = make_likelihood(config.likelihood, config.gaussian_std, config.pixel_context, image_shape[0])
        self.posterior, self.prior = PosteriorHeads(posterior), ProductPrior(prior)
        self.objective, self._fit = objective, fit
        self.spec = self.posterior.spec
        if list(self.prior) != list(self.posterior) or self.prior.spec != self.spec:
            raise ValueError(f"the prior's factors {dict(self.prior)} do not match the posterior's {self.spec}")
        if nets is None:
            if config.net == "custom":
                raise ConfigError("this model was trained on networks of your own (model.net=custom): load it "
                                  "from Python with them: load_run(path, nets=Nets(encoder, decoder))")  # fmt: skip
            net_args = (config.hidden, config.channels)  # built in this order: the weights' draws follow it
            self.encoder, width = build_encoder_body(
                config.net, self.image_shape, *net_args, self.n_conditions, config.activation, config.residual
            )
            self.encoder_head = nn.Linear(width, self.posterior.n_params)
            code = self.spec.code_size + self.n_conditions
            self.decoder = build_decoder(
                config.net, code, *net_args, self.image_shape, config.activation, config.residual
            )
        else:
            if self.n_conditions:
                raise ConfigError("your own networks take no label: drop model.conditional")
            width = feature_width(nets.encoder, self.image_shape)
            self.encoder = EncoderBody(nets.encoder, [])
            self.encoder_head = nets.head or nn.Linear(width, self.posterior.n_params)
            self.decoder = nets.decoder
        for factor in self.prior.values():
            factor.attach(self)
        self.auxiliaries = nn.ModuleDict(auxiliaries or {})

    # -- the parts' questions, for every consumer ------------------------------------------------------------
    @property
    def has_density(self) -> bool:
        """Whether q(z|x) has a density: then the KL and the importance-weighted NLL are defined."""
        return self.posterior.has_density

    @property
    def closed_form(self) -> bool:
        """Fitted once on all training images (``fit_closed_form``) instead of by gradient steps."""
        return self._fit is not None

    def fit_closed_form(self, x: torch.Tensor) -> Model:
        self._fit(self, x)
        return self

    def parameter_groups(self) -> list[dict]:
        """The optimiser's parameter groups: the model's parameters, then each auxiliary network that states
        ``optimizer_settings`` of its own (lr, betas) in a group of its own, marked ``fixed_lr`` (train.lr does
        not change it)."""
        own = [m for m in self.auxiliaries.values() if getattr(m, "optimizer_settings", None)]
        theirs = {id(w) for m in own for w in m.parameters()}
        groups = [{"params": [w for w in self.parameters() if id(w) not in theirs]}]
        return groups + [{"params": list(m.parameters()), **m.optimizer_settings, "fixed_lr": True} for m in own]

    @property
    def device(self) -> torch.device:
        return next(itertools.chain(self.parameters(), self.buffers())).device  # a prior always holds a buffer

    def one_hot(self, y: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """The one-hot label (B, classes) of a conditional model (None otherwise), with clear errors."""
        if not self.n_conditions:
            return None
        if y is None:
            raise ConfigError("this model is conditional: pass labels y (e.g. vaelab sample RUN --label 3)")
        if y.min() < 0 or y.max() >= self.n_conditions:
            raise ConfigError(f"label out of range: this model knows labels 0..{self.n_conditions - 1}")
        return F.one_hot(y.long(), self.n_conditions).to(dtype)

    # -- encode, decode --------------------------------------------------------------------------------------
    def encoder_params(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior's raw parameters (B, n_params), in float32 (also under bf16 autocast, so that the
        posterior, the KL and the loss are computed in float32)."""
        return self.encoder_head(self.encoder(x, self.one_hot(y, x.dtype))).float()

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, step: int = 0) -> Product:
        """q(z|x) for images x (B, C, H, W) in [0, 1] (its temperature schedules at optimisation ``step``)."""
        return self.posterior(self.encoder_params(x, y), step)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder outputs (B, C, H, W), float32: the likelihood's parameters for decoder inputs z (B, code_size)."""
        condition = self.one_hot(y, z.dtype)
        return self.decoder(z if condition is None else torch.cat([z, condition], dim=-1)).float()

    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's mean image in [0, 1], (B, C, H, W)."""
        return self.likelihood.mean(self.decode(z, y))

    # -- terms and objective ---------------------------------------------------------------------------------
    def kl_units(self, posterior: Product, draw: Draw) -> dict[str, torch.Tensor]:
        """KL(q_f || p_f) per image and unit (B, U) of each factor with a density (for a factor without a
        closed form, the log ratio at the draw)."""
        parts = posterior.split(draw.z)
        return {name: kl_units(q, self.prior[name], parts[name], draw.log_q[name])
                for name, q in posterior.factors.items() if q.has_density}  # fmt: skip

    def closed_form_kls(self, posterior: Product) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The closed-form KL to the prior per continuous dimension (B, D) and per categorical (B, n), for the
        diagnostics (traversals, latent statistics, eval); each None where the model has no such factor, no
        density or no closed form."""
        kls = {q.discrete: closed_form_kl(q, self.prior[name]) if q.has_density else None  # the first of each kind
               for name, q in reversed(posterior.factors.items())}  # fmt: skip
        return kls.get(False), kls.get(True)

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, generator: Generator = None) -> ImageTerms:
        """recon = -log p(x|z) with one z ~ q(z|x) per image and the KL, each (B,): -ELBO = recon + KL
        (Kingma & Welling 2014, eq. 10); ``kl_parts`` per factor, or per layer of a hierarchy, when there are
        several."""
        posterior = self.encode(x, y)
        draw = posterior.draw(generator)
        recon = self.likelihood.nll(self.decode(draw.z, y), x)
        kls = posterior.kl_parts(self.kl_units(posterior, draw))
        kl = sum(kls.values()) if kls else torch.zeros_like(recon)
        return ImageTerms(recon, kl, kls if len(kls) > 1 else {})

    def loss(
        self, x: torch.Tensor, y: torch.Tensor | None = None, step: int = 0, generator: Generator = None
    ) -> LossTerms:
        """The training objective at optimisation step ``step``, its noise drawn from ``generator``."""
        return self.objective(self, x, y, step, generator)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None, step: int, generator: Generator
    ) -> dict[str, torch.Tensor]:
        """The objective's named terms: the module call that DistributedDataParallel and torch.compile wrap."""
        return self.loss(x, y, step, generator).named()

    def sample_log_terms(self, x: torch.Tensor, y: torch.Tensor | None, k: int, generator: Generator = None):
        """(log p(x|z_k), log p(z_k), log q(z_k|x)), each (k, B), for k draws per image; and q and the draws."""
        if not self.has_density:
            raise ConfigError(f"{self.config.name} has no posterior density: its codes are points")
        posterior = self.encode(x, y)
        draw = posterior.draw(generator, k)  # z: (k, B, code_size)
        decoded = self.decode(draw.z.flatten(0, 1), None if y is None else y.repeat(k))  # (k*B, C, H, W)
        log_px_z = -self.likelihood.nll_draws(decoded, x, k).view(k, len(x))
        return log_px_z, self.prior.log_prob(draw.z), sum(draw.log_q.values()), posterior, draw

    def log_importance_weights(
        self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, generator: Generator = None
    ) -> torch.Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for k posterior draws per image, (k, B) (Burda et
        al. 2016): logsumexp over k minus log k bounds log p(x) from below."""
        log_px_z, log_pz, log_qz, _, _ = self.sample_log_terms(x, y, k, generator)
        return log_px_z + log_pz - log_qz

    # -- pictures --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, y: torch.Tensor | None = None, generator: Generator = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]: the likelihood means of draws from the prior (its continuous spread
        scaled by ``temperature``)."""
        return self.decode_mean(self.prior.sample(n, generator, temperature), y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior mean of each image: (B, C, H, W) in [0, 1]."""
        return self.decode_mean(self.encode(x, y).mean, y)


LEGACY_NAMES = {  # weights saved before models were compositions of parts: old name -> today's
    "code_mean": "prior.z.mean",  # the AE's running moments of its codes, now its fitted prior
    "code_var": "prior.z.var",
    "mean_": "encoder.features.mean",  # PCA's tensors, now its projection and its prior
    "components_": "encoder.features.components",
    "explained_variance_": "prior.z.var",
}


def upgrade_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of a run folder trained before models were compositions, under today's names (the weights of
    every other model kept their names); PCA's prior mean, then implicit, is 0."""
    upgraded = {LEGACY_NAMES.get(name, name): t for name, t in tensors.items()}
    if "explained_variance_" in tensors:
        upgraded["prior.z.mean"] = torch.zeros_like(tensors["explained_variance_"])
    return upgraded
