"""Prior draws with a temperature, and the sample and reconstruction pictures of a run (as uint8 arrays).

Every model samples its continuous latents from a diagonal Gaussian: N(0, I) for the VAE family, the
Gaussian fitted to the training codes for the AE (``code_mean``, ``code_var``) and PCA (0, eigenvalues).
JointVAE adds one-hot codes drawn uniformly. A temperature T scales the Gaussian's spread,
z = mean + T * std * eps, and leaves the discrete codes alone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..data import to_float
from ..errors import ConfigError
from .grids import image_grid, reconstruction_grid

Prior = Literal["model", "standard"]
PRIORS = ("model", "standard")


def prior_moments(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std, each (latent_dim,), of the Gaussian the model draws its continuous latents from."""
    d, device = model.latent_dim, model.device
    if hasattr(model, "code_mean"):  # AE: running moments of its training codes
        return model.code_mean.detach(), model.code_var.detach().clamp_min(0).sqrt()
    if hasattr(model, "explained_variance_"):  # PCA: centred codes with the eigenvalues as variances
        return torch.zeros(d, device=device), model.explained_variance_.detach().clamp_min(0).sqrt()
    return torch.zeros(d, device=device), torch.ones(d, device=device)


@torch.no_grad()
def prior_latents(
    model, n: int, generator: torch.Generator | None = None, temperature: float = 1.0, prior: Prior = "model"
) -> torch.Tensor:
    """n decoder inputs (n, code_size) drawn from the model's prior, its continuous part rescaled:
    z = m + T * s * eps, with (m, s) the model's prior moments (``prior="model"``) or (0, 1) (``"standard"``:
    N(0, I), whatever the model fitted). The same generator state gives the same eps for every option, and
    T = 1 with the model's prior gives exactly ``model.prior_sample``."""
    if prior not in PRIORS:
        raise ConfigError(f"prior must be one of {', '.join(PRIORS)}; got {prior!r}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0; got {temperature}")
    z = model.prior_sample(n, generator)  # (n, code_size)
    if prior == "model" and temperature == 1.0:
        return z
    d = model.latent_dim
    mean, std = prior_moments(model)
    eps = (z[:, :d] - mean) / std.clamp_min(1e-12)  # (n, d) the standard normal draws behind z
    if prior == "standard":
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    return torch.cat([mean + temperature * std * eps, z[:, d:]], dim=1)


@torch.no_grad()
def sample_images(
    run, n: int = 64, seed: int = 0, temperature: float = 1.0, prior: Prior = "model", y: torch.Tensor | None = None
) -> torch.Tensor:
    """n images (n, C, H, W) in [0, 1] decoded from prior draws (labels y for conditional models)."""
    generator = torch.Generator(run.model.device).manual_seed(seed)
    z = prior_latents(run.model, n, generator, temperature, prior)
    return run.decode(z, y)


def sample_grid(
    run,
    n: int = 64,
    seed: int = 0,
    temperature: float = 1.0,
    prior: Prior = "model",
    label: int | None = None,
    grid_by_label: bool = False,
) -> np.ndarray:
    """A grid of prior samples as a uint8 array (rows, cols, C); ``grid_by_label``: one row of n per class."""
    labels = run.sampling_labels(n, label, grid_by_label)
    images = sample_images(run, n if labels is None else len(labels), seed, temperature, prior, labels)
    return image_grid(images, n if grid_by_label else None)


@torch.no_grad()
def posterior_latents(model, x: torch.Tensor, y: torch.Tensor | None, temperature: float = 0.0, generator=None):
    """Decoder inputs for images x: the posterior mean at T = 0, else mean + T * (a posterior draw - mean) on
    the continuous part (discrete codes stay at their argmax; point posteriors have nothing to draw)."""
    posterior = model.encode(x, y)
    z = posterior.mean
    if temperature == 0:
        return z
    d = model.latent_dim
    draw = posterior.rsample(generator)
    return torch.cat([z[:, :d] + temperature * (draw[:, :d] - z[:, :d]), z[:, d:]], dim=1)


@torch.no_grad()
def reconstruction_image(
    run, n: int = 32, split: str = "test", temperature: float = 0.0, seed: int = 0, ncols: int = 16
) -> np.ndarray:
    """The first n images of a split (fixed binarisation) in rows, each row followed by its reconstructions:
    the decoded posterior mean (T = 0) or a posterior draw with its spread scaled by T."""
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0; got {temperature}")
    x_uint8, y = run.data.split(split)
    x = to_float(x_uint8[:n], run.data.binarize, torch.Generator().manual_seed(0)).to(run.model.device)
    y = run.as_labels(y[:n]) if run.conditional else None
    generator = torch.Generator(run.model.device).manual_seed(seed)
    recon = run.model.decode_mean(posterior_latents(run.model, x, y, temperature, generator), y)
    return reconstruction_grid(x.cpu(), recon.cpu(), ncols=ncols)
