"""pythae 0.1.2's versions of vaelab's families on vaelab's protocol: the pythae columns of docs/models.md's tables.

What it measures, for pythae's VAE, IWAE, MIWAE, PIWAE, CIWAE, VAMP, VAE_LinNF (planar flows), VAE_IAF, BetaTCVAE,
INFOVAE_MMD, its post-hoc GaussianMixtureSampler and TwoStageVAESampler fitted on its VAE, and, on the squared-error
protocol below, its WAE_MMD, RAE_L2, RAE_GP and VQVAE (which reconstruct by squared error alone), and its FactorVAE
as its AdversarialTrainer steps it (which splits each batch in two halves: the ELBO on one, the permuted codes from
the other):

- the protocol of bench/families.py: Fashion-MNIST from vaelab's data code (the 54k/6k/10k split of configs/*-mlp.yaml
  at seed ``--seed``, 0 by default), dynamic binarisation (a fresh Bernoulli draw of every image in every batch,
  vaelab's ``to_float``), the data order of vaelab's loop (``epoch_permutation``), MLP encoder 784-512-512 (ReLU) ->
  32-d Gaussian, decoder 32-512-512-784 Bernoulli (pythae's decoders return sigmoid probabilities: ours keeps the
  logits beside them), Adam lr 1e-3, batch 128, ``--epochs`` epochs, torch seed ``--seed`` (a run at seed N draws
  what vaelab's ``--override seed=N`` draws, from other code); each family's settings (k, m, beta, components, flows)
  read from vaelab's configs/<family>-mlp.yaml. pythae's models are driven by a small loop here (their ``forward``
  returns the loss); PIWAE as pythae's CoupledOptimizerTrainer steps it (an Adam for the encoder, one for the decoder);
- on the test split: -ELBO (one draw per image, the KL in closed form where vaelab has one, else the log ratio at the
  draw) and the importance-weighted NLL, k = ``--iw-samples``, by vaelab's estimator (float64 logsumexp of
  log p(x|z) + log p(z) - log q(z|x), each with its normalising constants) on vaelab's fixed evaluation binarisation
  (``evaluation_batches``), with each pythae model's own prior and flow densities; cross-checked against pythae's own
  ``get_nll`` on the first ``--nll-check`` test images;
- the Fréchet distance of 10k samples (prior samples of every model, and samples of the two post-hoc samplers) to the
  10k test images, in the features of vaelab's cached classifier (vaelab.evaluate.fid), as vaelab computes it;
- seconds per training epoch (median over epochs), and seconds per training step against vaelab's own model of the
  same family (its configs/*-mlp.yaml), timed in interleaved rounds in this process (best of ``--rounds`` rounds of
  ``--steps`` steps each), a ratio that holds on a loaded machine; vaelab's networks in fp32 (the families
  protocol), or in bf16 with ``--vaelab-precision bf16`` (what ``precision: auto`` takes on a CPU with native
  bf16; ``--ratios-only`` times the steps alone, bench/families.py ``--override train.precision=bf16`` trains
  vaelab's side so).

The squared-error protocol (SQUARED_ERROR_FAMILIES): the same data, order, binarisation and optimisation; pythae's
models with ``reconstruction_loss="mse"`` (the summed squared error of the decoder's sigmoid image), vaelab's with
MSE_OVERRIDES (a Gaussian likelihood of std 1/sqrt(2): its NLL is that squared error plus a constant, so the same
gradients); point codes of vaelab's width (the encoder's head gives the code alone; VQ-VAE's 16 x 8 code grid as
pythae's (B, 8, 4, 4) embedding); on the test split the reconstruction NLL under vaelab's Gaussian likelihood (the
number vaelab's bench/families.py run with MSE_OVERRIDES reports), codebook usage (VQ-VAE), and the Fréchet distance
of WAE's prior samples and of samples through pythae's GaussianMixtureSampler on the RAEs' codes (pythae has no
sampler for VQVAE short of training its PixelCNN). Run vaelab's side with
    .venv/bin/python bench/families.py --no-step-ratios --models wae,rae,rae-gp,vq-vae \
        --override model.likelihood=gaussian --override model.gaussian_std=0.7071067811865476

Writes bench/results/pythae-families-<UTC time>.json after each family (an interrupted run keeps what it measured)
and prints a markdown table.

pythae is never a dependency of vaelab: it runs in a scratch venv that also holds vaelab (editable, without deps):
    python3 -m venv /work/pythae-venv
    /work/pythae-venv/bin/pip install torch==2.13.0          # the CPU wheel; pythae must not replace it
    /work/pythae-venv/bin/pip install pythae==0.1.2
    /work/pythae-venv/bin/pip install --no-deps -e .         # vaelab, from the repository root
    /work/pythae-venv/bin/pip install pyyaml safetensors typer
Run (from the repository root):
    /work/pythae-venv/bin/python bench/peers/pythae_families.py --epochs 5 --iw-samples 1000
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: common.py
from pythae.data.datasets import DatasetOutput  # noqa: E402
from pythae.models import (  # noqa: E402
    CIWAE,
    INFOVAE_MMD,
    IWAE,
    MIWAE,
    PIWAE,
    RAE_GP,
    RAE_L2,
    VAE,
    VAE_IAF,
    VAMP,
    VQVAE,
    WAE_MMD,
    BetaTCVAE,
    BetaTCVAEConfig,
    CIWAEConfig,
    FactorVAE,
    FactorVAEConfig,
    INFOVAE_MMD_Config,
    IWAEConfig,
    MIWAEConfig,
    PIWAEConfig,
    RAE_GP_Config,
    RAE_L2_Config,
    VAE_IAF_Config,
    VAE_LinNF,
    VAE_LinNF_Config,
    VAEConfig,
    VAMPConfig,
    VQVAEConfig,
    WAE_MMD_Config,
)
from pythae.models.base.base_utils import ModelOutput  # noqa: E402
from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder  # noqa: E402

from common import write_result  # noqa: E402
from families import PROTOCOL, config_path  # noqa: E402
from vaelab.config import load_config  # noqa: E402
from vaelab.data import ImageData, load_dataset, to_float  # noqa: E402
from vaelab.data.batches import epoch_permutation  # noqa: E402
from vaelab.evaluate.fid import feature_classifier, feature_distance  # noqa: E402
from vaelab.evaluate.latents import codebook_usage  # noqa: E402
from vaelab.evaluate.likelihood import BLOCK, EVAL_SEED, IW_ROWS, evaluation_batches, summarise  # noqa: E402
from vaelab.loop import Loop, log_nothing, set_threads  # noqa: E402
from vaelab.models import build_model  # noqa: E402
from vaelab.parts.density_ratio import TCDiscriminator  # noqa: E402
from vaelab.parts.likelihoods import gaussian_nll  # noqa: E402

SEED = 0
BATCH = 128
LR = 1e-3
IMAGE_SHAPE = (1, 28, 28)
PIXELS = 784
HIDDEN = 512
LATENT = 32
LOG_2PI = math.log(2 * math.pi)
FAMILIES = "vae,iwae,miwae,piwae,ciwae,vamp-vae,planar-vae,iaf-vae,beta-tcvae,info-vae,factor-vae,wae,rae,rae-gp,vq-vae"
SAMPLERS = ("gmm", "two-stage")  # fitted on pythae's VAE (the first family, which must be trained to fit them)
GMM_COMPONENTS = 10
TWO_STAGE_STEPS, TWO_STAGE_BATCH = 3000, 256  # the budget of vaelab's second stage (samplers.py)
SQUARED_ERROR_FAMILIES = ("wae", "rae", "rae-gp", "vq-vae")  # pythae's versions reconstruct by squared error only
GAUSSIAN_STD = math.sqrt(0.5)  # -log N(x; m, 1/2 I) = ||x - m||^2 + const: pythae's summed squared error
MSE_OVERRIDES = ["model.likelihood=gaussian", f"model.gaussian_std={GAUSSIAN_STD!r}"]


class Encoder(BaseEncoder):
    """784-512-512 (ReLU) then one linear head, vaelab's MLP encoder body and head layer for layer: to (mu, logvar)
    of a 32-d Gaussian (vaelab bounds logvar to [-20, 10]; pythae's default encoders do not, nor does this), or,
    with ``code_shape``, to a point code of that shape (WAE, RAE: (32,); VQ-VAE: (8, 4, 4), 16 positions of 8)."""

    def __init__(self, code_shape: tuple[int, ...] | None = None):
        BaseEncoder.__init__(self)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                                  nn.ReLU())  # fmt: skip
        self.code_shape = code_shape
        self.head = nn.Linear(HIDDEN, 2 * LATENT if code_shape is None else math.prod(code_shape))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        out = self.head(self.body(x))
        if self.code_shape is not None:
            return ModelOutput(embedding=out.view(len(out), *self.code_shape))
        mu, logvar = out.chunk(2, dim=-1)  # (B, D) each
        return ModelOutput(embedding=mu, log_covariance=logvar)


class Decoder(BaseDecoder):
    """(code, flattened) -512-512 (ReLU) -784 logits, vaelab's MLP decoder; pythae's losses take probabilities, so
    ``forward`` returns sigmoid(logits); the evaluation reads ``logits`` directly."""

    def __init__(self, code_size: int = LATENT):
        BaseDecoder.__init__(self)
        self.logits = nn.Sequential(nn.Flatten(), nn.Linear(code_size, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                                    nn.ReLU(), nn.Linear(HIDDEN, PIXELS), nn.Unflatten(1, IMAGE_SHAPE))  # fmt: skip

    def forward(self, z: torch.Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=torch.sigmoid(self.logits(z)))  # (B, 1, 28, 28)


class Discriminator(BaseDiscriminator):
    """vaelab's TC discriminator (parts/density_ratio.py), its network and Adam settings, as pythae's FactorVAE
    takes one (pythae's default: five layers of 1,000)."""

    def __init__(self, critic: TCDiscriminator):
        BaseDiscriminator.__init__(self)
        self.layers, self.adam = critic.net, critic.optimizer_settings

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)  # (B, 2): pythae's FactorVAE indexes the logits directly


def pythae_spec(name: str) -> tuple[type, type, dict]:
    """pythae's model class, config class and settings for vaelab's family ``name``, read from its config."""
    m = load_config(config_path(name), PROTOCOL).model
    specs = {
        "vae": (VAE, VAEConfig, {}),
        "iwae": (IWAE, IWAEConfig, lambda: {"number_samples": m.k}),
        "miwae": (MIWAE, MIWAEConfig, lambda: {"number_samples": m.k, "number_gradient_estimates": m.m}),
        "piwae": (PIWAE, PIWAEConfig, lambda: {"number_samples": m.k, "number_gradient_estimates": m.m}),
        "ciwae": (CIWAE, CIWAEConfig, lambda: {"number_samples": m.k, "beta": m.beta}),
        "vamp-vae": (VAMP, VAMPConfig, lambda: {"number_components": m.components}),
        "planar-vae": (VAE_LinNF, VAE_LinNF_Config, lambda: {"flows": ["Planar"] * m.flows}),
        # pythae's IAF: affine MADE steps without the encoder context; one hidden layer of vaelab's width
        "iaf-vae": (
            VAE_IAF,
            VAE_IAF_Config,
            lambda: {"n_made_blocks": m.flows, "n_hidden_in_made": 1, "hidden_size": m.flow_hidden},
        ),  # fmt: skip
        "beta-tcvae": (
            BetaTCVAE,
            BetaTCVAEConfig,
            lambda: {"alpha": m.alpha, "beta": m.beta, "gamma": m.gamma, "use_mss": m.estimator == "mss"},
        ),
        "info-vae": (INFOVAE_MMD, INFOVAE_MMD_Config, lambda: info_vae_settings(m)),
        "factor-vae": (FactorVAE, FactorVAEConfig, lambda: {"gamma": m.gamma}),
        "wae": (WAE_MMD, WAE_MMD_Config, lambda: mmd_settings(m, "reg_weight")),
        # RAE-L2's decoder decay is pythae's decoder Adam's weight_decay (d/dw of decay * w^2 / 2, vaelab's of
        # decay * w^2); RAE-GP's penalty is pythae's ||d sum(recon) / dx||^2, through the encoder, not vaelab's
        # squared Jacobian of the decoder at the codes
        "rae": (RAE_L2, RAE_L2_Config, lambda: {"embedding_weight": m.beta, "reg_weight": m.decoder_decay}),
        "rae-gp": (RAE_GP, RAE_GP_Config, lambda: {"embedding_weight": m.beta, "reg_weight": m.gradient_penalty}),
        "vq-vae": (
            VQVAE,
            VQVAEConfig,
            lambda: {
                "num_embeddings": m.codebook_size,
                "commitment_loss_factor": m.beta,
                "use_ema": m.ema_decay > 0,
                **({"decay": m.ema_decay} if m.ema_decay > 0 else {}),
            },
        ),  # fmt: skip
    }
    cls, config_cls, settings = specs[name]
    return cls, config_cls, settings() if callable(settings) else settings


def diagonal_mss_weights(self, batch_size: int, dataset_size: int) -> torch.Tensor:
    """log W (B, B) of minibatch stratified sampling as Chen et al. (2018, appendix C.2) define it: 1/N on the
    diagonal (the draw's own image), the stratum weight (N - M) / (N M) on the next image, 1/M elsewhere, M = B - 1.
    pythae's BetaTCVAE._log_importance_weight_matrix (the paper's code) strides by B, which puts 1/N and the
    stratum weight in the first two columns and gives the draw's own image 1/M (rtqichen/beta-tcvae pull request
    #1); ``--diagonal-mss`` puts this in its place."""
    n, m = dataset_size, batch_size - 1
    w = torch.full((batch_size, batch_size), 1 / m)
    rows = torch.arange(batch_size)
    w[rows, rows] = 1 / n
    w[rows, (rows + 1) % batch_size] = (n - m) / (n * m)
    return w.log()


def mmd_settings(m, weight_key: str) -> dict:
    """pythae's MMD kernel for vaelab's: pythae's RBF has one bandwidth b, C = 2 D b^2, vaelab's C = 2 D s for each
    of its scales s (so b = sqrt(s)); for the IMQ kernel both sum over scales of C = 2 D s (pythae: b = 1); the
    MMD's weight under pythae's name ``weight_key``."""
    if m.kernel == "rbf" and len(m.kernel_scales) != 1:
        raise SystemExit(f"pythae's {m.name} RBF kernel has one bandwidth: give configs/{m.name}-mlp.yaml one scale")
    bandwidth = math.sqrt(m.kernel_scales[0]) if m.kernel == "rbf" else 1.0
    return {"kernel_choice": m.kernel, weight_key: m.lambda_mmd, "kernel_bandwidth": bandwidth,
            "scales": list(m.kernel_scales)}  # fmt: skip


def info_vae_settings(m) -> dict:
    """pythae's InfoVAE settings: alpha, and the MMD (mmd_settings) weighted by its ``lbd``."""
    return {"alpha": m.alpha, **mmd_settings(m, "lbd")}


def code_shape(name: str) -> tuple[int, ...] | None:
    """The point code's shape of a squared-error family (VQ-VAE: pythae's (C, H, W) of its positions), else None."""
    if name not in SQUARED_ERROR_FAMILIES:
        return None
    m = load_config(config_path(name), PROTOCOL).model
    if name == "vq-vae":
        side = math.isqrt(m.positions)
        if side * side != m.positions:
            raise SystemExit(f"pythae's VQVAE quantises an H x W grid: configs/vq-vae-mlp.yaml's positions "
                             f"{m.positions} is not a square")  # fmt: skip
        return (m.latent_dim, side, side)
    return (m.latent_dim,)


def build_pythae(name: str) -> nn.Module:
    """pythae's model of family ``name`` on our encoder and decoder, its weights drawn after torch.manual_seed(0)."""
    cls, config_cls, settings = pythae_spec(name)
    shape = code_shape(name)
    torch.manual_seed(SEED)
    loss = "bce" if shape is None else "mse"
    config = config_cls(input_dim=IMAGE_SHAPE, latent_dim=LATENT if shape is None else math.prod(shape),
                        reconstruction_loss=loss, **settings)  # fmt: skip
    model = cls(config, encoder=Encoder(shape), decoder=Decoder(LATENT if shape is None else math.prod(shape)))
    if name == "factor-vae":
        m = load_config(config_path(name), PROTOCOL).model
        critic = TCDiscriminator(LATENT, m.discriminator_hidden, m.discriminator_lr, tuple(m.discriminator_betas))
        model.set_discriminator(Discriminator(critic))
    return model


def optimizers(model: nn.Module) -> list[torch.optim.Optimizer]:
    """pythae's BaseTrainer: one Adam on all parameters; its CoupledOptimizerTrainer (PIWAE, RAE_L2): one on the
    encoder, one on the decoder (torch's default Adam, as pythae builds it; RAE_L2's decoder one with its
    reg_weight as weight decay); its AdversarialTrainer (FactorVAE): one on the encoder and decoder, one on the
    discriminator (with vaelab's discriminator settings)."""
    if model.model_name == "FactorVAE":
        autoencoder = [*model.encoder.parameters(), *model.decoder.parameters()]
        return [torch.optim.Adam(autoencoder, lr=LR),
                torch.optim.Adam(model.discriminator.parameters(), **model.discriminator.adam)]  # fmt: skip
    if model.model_name == "PIWAE":
        return [torch.optim.Adam(part.parameters(), lr=LR) for part in (model.encoder, model.decoder)]
    if model.model_name == "RAE_L2":
        decay = model.model_config.reg_weight
        return [torch.optim.Adam(model.encoder.parameters(), lr=LR),
                torch.optim.Adam(model.decoder.parameters(), lr=LR, weight_decay=decay)]  # fmt: skip
    return [torch.optim.Adam(model.parameters(), lr=LR)]


def train_step(model: nn.Module, opts: list[torch.optim.Optimizer], x: torch.Tensor, dataset_size: int) -> float:
    """One optimisation step on the float batch x (B, 1, 28, 28) of a training set of ``dataset_size`` images (which
    pythae's trainers pass to every model: beta-TCVAE's estimator needs it); returns pythae's loss. PIWAE and RAE_L2 as
    pythae's CoupledOptimizerTrainer._optimizers_step does it: the encoder's gradients are zeroed, the encoder loss
    (PIWAE: MIWAE's; RAE_L2: the loss) back-propagated, the decoder's zeroed, the decoder loss (PIWAE: IWAE of m*k
    draws; RAE_L2: the loss again) back-propagated, both stepped (so the encoder steps on the sum of both losses'
    gradients: pythae's behaviour, kept). FactorVAE as pythae's AdversarialTrainer: the same order with the
    autoencoder's and the discriminator's losses (the discriminator's cross-entropy at the codes reaches the encoder
    too, as there)."""
    out = model(DatasetOutput(data=x), dataset_size=dataset_size)
    if len(opts) == 2:
        first_opt, second_opt = opts
        first, second = ((out.autoencoder_loss, out.discriminator_loss) if model.model_name == "FactorVAE"
                         else (out.encoder_loss, out.decoder_loss))  # fmt: skip
        first_opt.zero_grad()
        first.backward(retain_graph=True)
        second_opt.zero_grad()
        second.backward(retain_graph=True)
        first_opt.step()
        second_opt.step()
        loss = first.detach() + second.detach()
    else:
        (opt,) = opts
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        loss = out.loss.detach()
    value = loss.item()
    if value != value:
        raise ArithmeticError("NaN detected in train loss")  # pythae's trainers stop here too
    return value


def batches(data: ImageData, generator: torch.Generator, epoch: int, steps: int | None = None):
    """vaelab's loop's batches of one epoch: its seeded order, a last partial batch kept, each batch binarised
    afresh (vaelab's to_float) from ``generator``."""
    order = epoch_permutation(len(data.train_x), SEED, epoch).split(BATCH)
    for idx in order[:steps]:
        yield to_float(data.train_x[idx], "dynamic", generator)


def train(model: nn.Module, data: ImageData, epochs: int, log, max_steps: int | None = None) -> dict:
    """Train ``epochs`` epochs; the mean training loss and the seconds of each epoch."""
    opts, generator = optimizers(model), torch.Generator().manual_seed(SEED + 1)
    losses, seconds = [], []
    for epoch in range(1, epochs + 1):
        model.train()
        start, total, n = time.perf_counter(), 0.0, 0
        for x in batches(data, generator, epoch, max_steps):
            total += train_step(model, opts, x, len(data.train_x)) * len(x)
            n += len(x)
        seconds.append(time.perf_counter() - start)
        losses.append(total / n)
        log(f"  epoch {epoch}/{epochs}: pythae loss {losses[-1]:.2f}, {seconds[-1]:.1f} s")
    return {"train_loss": losses, "epoch_seconds": seconds}


# -- densities of pythae's models, with every normalising constant -------------------------------------------------
def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def vamp_components(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The means and log-variances (K, D) of pythae's VampPrior: its encoder on its pseudo-inputs (a linear layer on
    the identity, through hardtanh(0, 1)), as VAMP._log_p_z computes them."""
    k = model.number_components
    pseudo = model.pseudo_inputs(model.idle_input.to(model.encoder.head.weight.device)).reshape(k, *IMAGE_SHAPE)
    out = model.encoder(pseudo)
    return out.embedding, out.log_covariance


class Densities:
    """log q(z|x) at its own draws, log p(z), log p(x|z) and prior samples of one trained pythae model; the VampPrior's
    components are encoded once (the model is fixed during evaluation)."""

    def __init__(self, model: nn.Module):
        self.model, self.name = model.eval(), model.model_name
        self.vamp = None
        if self.name == "VAMP":
            with torch.no_grad():
                self.vamp = tuple(t.double() for t in vamp_components(model))

    def draw(self, x: torch.Tensor, k: int, generator: torch.Generator):
        """(z_K (k, B, D), log q(z_K|x) (k, B), mu, logvar) for k draws per image, pushed through the model's flows."""
        out = self.model.encoder(x)
        mu, logvar = out.embedding, out.log_covariance  # (B, D)
        z0 = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), generator=generator)  # (k, B, D)
        log_q = gaussian_log_prob(z0, mu, logvar)
        flat = z0.flatten(0, 1)
        if self.name == "VAE_LinNF":
            log_det = torch.zeros(len(flat))
            for layer in self.model.net:
                step = layer(flat)
                flat, log_det = step.out, log_det + step.log_abs_det_jac
            log_q = log_q - log_det.view(k, -1)
        elif self.name == "VAE_IAF":
            step = self.model.iaf_flow.inverse(flat)
            flat, log_q = step.out, log_q - step.log_abs_det_jac.view(k, -1)
        return flat.view_as(z0), log_q, mu, logvar

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z (..., D): N(0, I), or pythae's VampPrior (1/K sum_k N(z; mu_k, var_k)), in float64."""
        if self.vamp is None:
            return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
        mu, logvar = self.vamp  # (K, D)
        flat = z.reshape(-1, z.shape[-1]).double()  # (N, D)
        inv = torch.exp(-logvar)
        quad = flat.pow(2) @ inv.T - 2 * flat @ (mu * inv).T + (mu.pow(2) * inv).sum(-1)  # (N, K)
        log_n = -0.5 * (z.shape[-1] * LOG_2PI + logvar.sum(-1) + quad)
        return (torch.logsumexp(log_n, -1) - math.log(len(mu))).view(z.shape[:-1]).to(z.dtype)

    def log_likelihood(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) (k, B): Bernoulli with the decoder's logits, for z (k, B, D) and x (B, 1, 28, 28)."""
        k, b = z.shape[:2]
        logits = self.model.decoder.logits(z.flatten(0, 1)).flatten(1)  # (k*B, 784)
        target = x.flatten(1).repeat(k, 1)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1).view(k, b)

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """log w = log p(x|z) + log p(z) - log q(z|x), (k, B)."""
        z, log_q, _, _ = self.draw(x, k, generator)
        return self.log_likelihood(z, x) + self.log_prior(z) - log_q

    def neg_elbo(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """-ELBO per image (B,) with one draw: the KL in closed form for a Gaussian posterior and N(0, I) prior (as
        vaelab), else log q - log p at the draw."""
        z, log_q, mu, logvar = self.draw(x, 1, generator)
        recon = -self.log_likelihood(z, x)[0]
        if self.vamp is None and self.name not in ("VAE_LinNF", "VAE_IAF"):
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)
        else:
            kl = (log_q - self.log_prior(z))[0]
        return recon + kl

    def prior_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws of the prior (n, D)."""
        if self.vamp is None:
            return torch.randn(n, LATENT, generator=generator)
        mu, logvar = (t.float() for t in self.vamp)
        c = torch.randint(len(mu), (n,), generator=generator)
        return mu[c] + torch.exp(0.5 * logvar[c]) * torch.randn(n, LATENT, generator=generator)


@torch.no_grad()
def decode_mean(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The decoder's sigmoid images of codes z, BLOCK codes at a time."""
    return torch.cat([torch.sigmoid(model.decoder.logits(z[i : i + BLOCK])) for i in range(0, len(z), BLOCK)])


@torch.no_grad()
def evaluate(dens: Densities, test_x: torch.Tensor, k: int, n_images: int) -> dict:
    """-ELBO on all test images and the k-sample IW-NLL on the first ``n_images``, on vaelab's fixed evaluation
    binarisation, batched as vaelab's iw_nll_per_image (2,048 decoder rows per call)."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    elbo = torch.cat([dens.neg_elbo(x, generator).double() for x, _ in evaluation_batches(test_x, None, "dynamic",
                                                                                           BLOCK)])  # fmt: skip
    elbo_seconds = time.perf_counter() - start
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    per_call = max(1, IW_ROWS // k)  # images per call
    nll, seen = [], 0
    for x, _ in evaluation_batches(test_x, None, "dynamic", per_call):  # the full split's binarisation, then cut
        x = x[: n_images - seen]
        if not len(x):
            break
        log_w = dens.log_weights(x, k, generator).double()  # (k, B): at most max(k, IW_ROWS) decoder rows
        nll.append(math.log(k) - torch.logsumexp(log_w, dim=0))
        seen += len(x)
    nll = torch.cat(nll)
    return {"neg_elbo": summarise(elbo), "iw_nll": summarise(nll), "per_image_nll": nll,
            "elbo_seconds": elbo_seconds, "iw_seconds": time.perf_counter() - start}  # fmt: skip


@torch.no_grad()
def pythae_nll_check(model: nn.Module, test_x: torch.Tensor, ours: torch.Tensor, n: int, k: int) -> dict:
    """pythae's own get_nll (k samples, batches of 100) on the first n fixed-binarised test images, beside ours on
    the same images (get_nll returns the mean log-likelihood; its Bernoulli term is the clamped BCE of sigmoids)."""
    x = next(evaluation_batches(test_x, None, "dynamic", n))[0]
    torch.manual_seed(EVAL_SEED)
    start = time.perf_counter()
    theirs = -float(model.get_nll(x, n_samples=k, batch_size=100))
    return {"images": n, "k": k, "pythae_get_nll": theirs, "ours_same_images": ours[:n].mean().item(),
            "seconds": time.perf_counter() - start}  # fmt: skip


@torch.no_grad()
def evaluate_point_codes(model: nn.Module, test_x: torch.Tensor) -> dict:
    """A squared-error family on the test split's fixed evaluation binarisation: the reconstruction NLL per image
    under vaelab's Gaussian likelihood of std GAUSSIAN_STD (the decoder's sigmoid image as its mean), and for
    VQVAE the codebook vectors the test images use and the perplexity of their use."""
    model.eval()
    nll, indices = [], []
    for x, _ in evaluation_batches(test_x, None, "dynamic", BLOCK):
        code = model.encoder(x).embedding
        if model.model_name == "VQVAE":
            quantised = model.quantizer(code.permute(0, 2, 3, 1))
            code = quantised.quantized_vector
            indices.append(quantised.quantized_indices.flatten())
        nll.append(gaussian_nll(torch.sigmoid(model.decoder.logits(code)), x, GAUSSIAN_STD).double())
    out = {"recon_nll": summarise(torch.cat(nll))}
    if indices:
        usage = codebook_usage(torch.cat(indices).numpy(), model.quantizer.num_embeddings)
        out |= {"codes_used": usage["used"], "perplexity": usage["perplexity"]}
    return out


def frechet(net, real_features: np.ndarray, images: torch.Tensor) -> float:
    return feature_distance(real_features, net.features(images.float()))


# -- speed against vaelab, interleaved ---------------------------------------------------------------------------
def step_ratio(name: str, data: ImageData, rounds: int, steps: int, precision: str = "fp32") -> dict:
    """Best seconds per training step of pythae's model and of vaelab's (configs/<name>-mlp.yaml, its networks in
    ``precision``) over ``rounds`` interleaved rounds of ``steps`` steps each, after 5 warm-up steps of each;
    fresh models, the same batch size."""
    squared_error = MSE_OVERRIDES if name in SQUARED_ERROR_FAMILIES else []
    protocol = [*PROTOCOL, f"train.precision={precision}"]
    config = load_config(config_path(name), ["train.progress=never", *protocol, *squared_error])
    torch.manual_seed(SEED)
    loop = Loop(config, data, build_model(config.model, data.image_shape), log=log_nothing)
    loop.train_epoch(1, max_steps=5)  # warm-up
    model = build_pythae(name).train()
    opts, generator = optimizers(model), torch.Generator().manual_seed(SEED + 1)
    for x in batches(data, generator, 1, 5):  # warm-up
        train_step(model, opts, x, len(data.train_x))
    best = {"pythae": math.inf, "vaelab": math.inf}
    for r in range(rounds):
        start = time.perf_counter()
        loop.train_epoch(2 + r, max_steps=steps)
        best["vaelab"] = min(best["vaelab"], (time.perf_counter() - start) / steps)
        start = time.perf_counter()
        for x in batches(data, generator, 2 + r, steps):
            train_step(model, opts, x, len(data.train_x))
        best["pythae"] = min(best["pythae"], (time.perf_counter() - start) / steps)
    return {"step_ratio_pythae_over_vaelab": best["pythae"] / best["vaelab"], "pythae_step_seconds": best["pythae"],
            "vaelab_step_seconds": best["vaelab"], "vaelab_precision": loop.choice.precision, "rounds": rounds,
            "steps": steps}  # fmt: skip


# -- the post-hoc samplers, on pythae's VAE (and the GMM on its RAEs) ----------------------------------------------
def fit_sampler(kind: str, vae: nn.Module, data: ImageData, tmp: str, steps: int = TWO_STAGE_STEPS):
    """pythae's GaussianMixtureSampler (10 components) or TwoStageVAESampler (its default second VAE: 2 layers of
    1,024, MSE, gamma) fitted on the codes that ``vae`` (any model with a (B, D) code) gives the training images
    x / 255 (vaelab's samplers read the same images), the second stage trained by pythae's BaseTrainer for about
    vaelab's budget (TWO_STAGE_STEPS steps of TWO_STAGE_BATCH, Adam 1e-3)."""
    from pythae.samplers import (
        GaussianMixtureSampler,
        GaussianMixtureSamplerConfig,
        TwoStageVAESampler,
        TwoStageVAESamplerConfig,
    )
    from pythae.trainers import BaseTrainerConfig

    train_images = data.train_x.float().div_(255)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    vae.eval()
    if kind == "gmm":
        sampler = GaussianMixtureSampler(vae, GaussianMixtureSamplerConfig(n_components=GMM_COMPONENTS))
        sampler.fit(train_images)
        return sampler, {"components": GMM_COMPONENTS}
    sampler = TwoStageVAESampler(vae, TwoStageVAESamplerConfig())
    epochs = max(1, round(steps * TWO_STAGE_BATCH / len(train_images)))
    config = BaseTrainerConfig(output_dir=tmp, num_epochs=epochs, learning_rate=1e-3,
                               per_device_train_batch_size=TWO_STAGE_BATCH, no_cuda=True)  # fmt: skip
    with torch.enable_grad():
        sampler.fit(train_images, training_config=config)
    return sampler, {"second_stage_epochs": epochs, "batch": TWO_STAGE_BATCH, "lr": 1e-3, "layers": 2, "width": 1024}


# -- the run ---------------------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, flush=True)


def squared_error_row(model: nn.Module, data: ImageData, tmp: str, net, real_features: np.ndarray) -> dict:
    """The test figures of a trained squared-error family: its reconstruction NLL (evaluate_point_codes) and the
    Fréchet distance of its samples: WAE's from N(0, I), the RAEs' through pythae's GaussianMixtureSampler on their
    codes (vaelab's ``gmm`` sampler, alike: scikit-learn's full-covariance mixture of 10); none for VQVAE."""
    row = evaluate_point_codes(model, data.test_x)
    n = len(data.test_x)
    if model.model_name == "WAE_MMD":
        z = torch.randn(n, LATENT, generator=torch.Generator().manual_seed(SEED))
        images = decode_mean(model, z)  # without gradients
        row |= {"frechet": frechet(net, real_features, images), "frechet_of": "prior samples"}
    elif model.model_name in ("RAE_L2", "RAE_GP"):
        sampler, _ = fit_sampler("gmm", model, data, tmp)
        np.random.seed(SEED)
        torch.manual_seed(SEED)
        with torch.no_grad():
            images = sampler.sample(num_samples=n, batch_size=BLOCK)
        row |= {"frechet": frechet(net, real_features, images), "frechet_of": "GaussianMixtureSampler samples"}
    return row


def main() -> None:
    global SEED  # --seed: every draw of this script reads it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=FAMILIES, help="comma-separated vaelab family names")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="post-hoc samplers on pythae's VAE ('' none)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--iw-images", type=int, default=10_000, help="first N test images for the IW-NLL")
    parser.add_argument("--iw-images-for", default="", help="per family, e.g. miwae=2000,vamp-vae=2000")
    parser.add_argument("--epochs-for", default="", help="per family, e.g. miwae=1 (when time is short)")
    parser.add_argument("--steps-for", default="", help="timed steps per round, per family, e.g. miwae=10")
    parser.add_argument("--nll-check", type=int, default=200, help="test images for pythae's get_nll cross-check")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None, help="steps per epoch (smoke tests only)")
    parser.add_argument("--two-stage-steps", type=int, default=TWO_STAGE_STEPS, help="about; whole epochs")
    parser.add_argument("--ratios-first", action="store_true", help="time every family's steps before training any")
    parser.add_argument("--ratios-only", action="store_true", help="time every family's steps, train nothing")
    parser.add_argument(
        "--vaelab-precision",
        default="fp32",
        choices=["fp32", "bf16", "auto"],
        help="vaelab's networks in the timed steps (its trained rows come from bench/families.py)",
    )
    parser.add_argument("--resume", type=Path, help="a JSON of this script to add to: families done there are kept")
    parser.add_argument("--note", action="append", default=[], help="a line for the JSON's notes (what was cut)")
    parser.add_argument("--diagonal-mss", action="store_true", help="BetaTCVAE's MSS weights on the diagonal")
    parser.add_argument("--seed", type=int, default=SEED, help="the split, weights, data order and noise")
    args = parser.parse_args()
    SEED = args.seed
    if args.diagonal_mss:
        BetaTCVAE._log_importance_weight_matrix = diagonal_mss_weights
        args.note.append("--diagonal-mss: pythae's BetaTCVAE MSS weights replaced by diagonal_mss_weights")
    threads = set_threads(args.threads)  # also flushes denormals, for both libraries alike
    iw_images_for, epochs_for, steps_for = (
        {k: int(v) for k, v in (p.split("=") for p in option.split(",") if p)}
        for option in (args.iw_images_for, args.epochs_for, args.steps_for)
    )
    names = [n for n in args.families.split(",") if n]
    samplers = [s for s in args.samplers.split(",") if s]
    if samplers and "vae" not in names:
        raise SystemExit("--samplers need the vae family (they are fitted on pythae's VAE)")

    config = load_config(config_path("vae"), ["train.progress=never", f"seed={SEED}"])
    d = config.data
    data = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, seed=config.seed, binarize=d.binarize)
    test_x = data.test_x
    net, meta = feature_classifier(data, log)
    real_features = net.features(test_x.float().div_(255))
    figures = {
        "pythae": version("pythae"), "threads": threads, "epochs": args.epochs, "iw_samples": args.iw_samples,
        "batch_size": BATCH, "lr": LR, "seed": SEED, "data": repr(data),
        "frechet_reference": f"{len(test_x)} test images x / 255 vs as many samples, features of {meta.get('cache')}",
        "protocol": "bench/peers/pythae_families.py docstring; vaelab's estimator and evaluation binarisation",
        "notes": [], "families": {},
    }  # fmt: skip
    path = None
    if args.resume:
        import json

        path = args.resume.resolve()
        kept = json.loads(path.read_text())
        figures |= {k: v for k, v in kept.items() if k not in ("bench", "date", "commit", "machine", "cores", "torch")}
        figures.setdefault("notes", [])
    figures["notes"] += args.note
    path = write_result("pythae-families", figures, path)
    rows = figures["families"]

    def timed(name: str) -> dict:
        """The family's interleaved step ratio, measured now unless the JSON has it."""
        if "step_ratio_pythae_over_vaelab" not in rows.get(name, {}):
            cls, _, settings = pythae_spec(name)
            ratio = step_ratio(name, data, args.rounds, steps_for.get(name, args.steps), args.vaelab_precision)
            log(f"{name}: s/step pythae {cls.__name__} {ratio['pythae_step_seconds']:.4f}, vaelab "
                f"{ratio['vaelab_step_seconds']:.4f}: ratio {ratio['step_ratio_pythae_over_vaelab']:.2f}")  # fmt: skip
            rows[name] = {"pythae_model": cls.__name__, "pythae_settings": settings, **rows.get(name, {}), **ratio}
            write_result("pythae-families", figures, path)
        keys = (
            "step_ratio_pythae_over_vaelab",
            "pythae_step_seconds",
            "vaelab_step_seconds",
            "vaelab_precision",
            "rounds",
            "steps",
        )
        return {k: rows[name][k] for k in keys if k in rows[name]}

    if args.ratios_first or args.ratios_only:
        for name in names:
            timed(name)
    if args.ratios_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if "iw_nll" in rows.get(name, {}) or "recon_nll" in rows.get(name, {}):
                continue
            family_start = time.perf_counter()
            cls, _, settings = pythae_spec(name)
            log(f"{name}: pythae {cls.__name__} {settings}")
            ratio = timed(name)
            model = build_pythae(name)
            epochs = epochs_for.get(name, args.epochs)
            trained = train(model, data, epochs, log, args.max_steps)
            if name in SQUARED_ERROR_FAMILIES:
                row = squared_error_row(model, data, tmp, net, real_features)
                rows[name] = {"pythae_model": cls.__name__, "pythae_settings": settings, "epochs": epochs,
                              "reconstruction_loss": "mse", "vaelab_overrides": MSE_OVERRIDES,
                              "seconds_per_epoch": statistics.median(trained["epoch_seconds"]), **row, **ratio,
                              **trained, "family_seconds": time.perf_counter() - family_start}  # fmt: skip
                fd = f", Fréchet {row['frechet']:.2f}" if "frechet" in row else ""
                codes = f", {row['codes_used']} codes used" if "codes_used" in row else ""
                log(f"  test recon NLL (Gaussian, std {GAUSSIAN_STD:.4f}) {row['recon_nll']['mean']:.2f} ± "
                    f"{row['recon_nll']['stderr']:.2f}{codes}{fd}")  # fmt: skip
                path = write_result("pythae-families", figures, path)
                continue
            dens = Densities(model)
            n_iw = min(iw_images_for.get(name, args.iw_images), len(test_x))
            results = evaluate(dens, test_x, args.iw_samples, n_iw)
            check = pythae_nll_check(model, test_x, results["per_image_nll"], args.nll_check, args.iw_samples)
            with torch.no_grad():
                z = dens.prior_sample(len(test_x), torch.Generator().manual_seed(SEED))
                fd = frechet(net, real_features, decode_mean(model, z))
            rows[name] = {
                "pythae_model": cls.__name__, "pythae_settings": settings,
                "neg_elbo": results["neg_elbo"]["mean"], "neg_elbo_stderr": results["neg_elbo"]["stderr"],
                "iw_nll": results["iw_nll"]["mean"], "iw_nll_stderr": results["iw_nll"]["stderr"],
                "n_test_images": n_iw, "neg_elbo_test_images": len(test_x), "epochs": epochs,
                "seconds_per_epoch": statistics.median(trained["epoch_seconds"]),
                "frechet": fd, "frechet_of": "prior samples",
                **ratio, **trained, "get_nll_check": check,
                "iw_seconds": results["iw_seconds"], "family_seconds": time.perf_counter() - family_start,
            }  # fmt: skip
            log(f"  -ELBO {rows[name]['neg_elbo']:.2f}, IW-NLL {rows[name]['iw_nll']:.2f} ± "
                f"{rows[name]['iw_nll_stderr']:.2f} ({n_iw} images, {results['iw_seconds']:.0f} s), pythae get_nll "
                f"{check['pythae_get_nll']:.2f} vs ours {check['ours_same_images']:.2f} on {check['images']}, "
                f"Fréchet {fd:.2f}, {rows[name]['family_seconds']:.0f} s in all")  # fmt: skip
            path = write_result("pythae-families", figures, path)
            if name == "vae":
                vae = model
                for kind in samplers:
                    if f"vae+{kind}" in rows:
                        continue
                    start = time.perf_counter()
                    sampler, settings = fit_sampler(kind, vae, data, tmp, args.two_stage_steps)
                    fit_seconds = time.perf_counter() - start
                    np.random.seed(SEED)
                    torch.manual_seed(SEED)
                    with torch.no_grad():
                        images = sampler.sample(num_samples=len(test_x), batch_size=BLOCK)
                    fd = frechet(net, real_features, images)
                    cls = type(sampler).__name__
                    rows[f"vae+{kind}"] = {"pythae_model": cls, "pythae_settings": settings, "on": "vae",
                                           "frechet": fd, "frechet_of": f"{cls} samples", "fit_seconds": fit_seconds,
                                           "step_ratio_pythae_over_vaelab": None}  # fmt: skip
                    log(f"vae+{kind}: pythae {cls}, Fréchet {fd:.2f}, fitted in {fit_seconds:.0f} s")
                    path = write_result("pythae-families", figures, path)
    print(f"\npythae {figures['pythae']} on vaelab's protocol: Fashion-MNIST test split, {args.epochs} epochs, "
          f"IW-NLL k = {args.iw_samples}, {threads} threads")  # fmt: skip
    print("| family | pythae model | test -ELBO | test IW-NLL (images) | Fréchet distance | s / epoch | "
          "s / step pythae / vaelab |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        if "iw_nll" in r:
            flag = "" if r["epochs"] == args.epochs else f" ({r['epochs']} epoch{'s' * (r['epochs'] > 1)})"
            print(f"| `{name}`{flag} | {r['pythae_model']} | {r['neg_elbo']:.2f} | {r['iw_nll']:.2f} ± "
                  f"{r['iw_nll_stderr']:.2f} ({r['n_test_images']}) | {r['frechet']:.2f} | "
                  f"{r['seconds_per_epoch']:.1f} | {r['step_ratio_pythae_over_vaelab']:.2f} |")  # fmt: skip
        elif "recon_nll" in r:
            fd = f"{r['frechet']:.2f}" if "frechet" in r else ""
            print(f"| `{name}` | {r['pythae_model']} | recon {r['recon_nll']['mean']:.2f} (Gaussian) | no density | "
                  f"{fd} | {r['seconds_per_epoch']:.1f} | {r['step_ratio_pythae_over_vaelab']:.2f} |")  # fmt: skip
        elif "fit_seconds" in r:
            print(f"| `{name}` | {r['pythae_model']} | | | {r['frechet']:.2f} | fit {r['fit_seconds']:.0f} s | |")
        else:
            print(
                f"| `{name}` (not trained) | {r['pythae_model']} | | | | | {r['step_ratio_pythae_over_vaelab']:.2f} |"
            )


if __name__ == "__main__":
    main()
