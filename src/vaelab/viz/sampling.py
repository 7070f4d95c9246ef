"""Prior draws with a temperature, and the sample and reconstruction pictures of a run.

Every model draws from its prior (``model.prior``): N(0, I) for the VAE family, the Gaussian fitted to the
training codes for the AE and PCA, uniform one-hot codes for JointVAE's categoricals. A temperature T scales
the continuous spread, z = mean + T * std * eps, and leaves the discrete codes alone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..data import to_float
from ..errors import ConfigError
from ..parts.priors import standard_prior
from ..samplers import POST_HOC
from .grids import LabelledRows, image_grid, stack_rows
from .traverse import split_float

Prior = Literal["model", "standard", "gmm", "two-stage"]
PRIORS = ("model", "standard", "gmm", "two-stage")


@torch.no_grad()
def prior_latents(
    model, n: int, generator: torch.Generator | None = None, temperature: float = 1.0, prior: Prior = "model"
) -> torch.Tensor:
    """n decoder inputs (n, code_size) drawn from the model's prior (``prior="model"``) or from N(0, I) and
    uniform codes (``"standard"``, whatever the model fitted), the continuous spread scaled by the temperature
    T: z = m + T * s * eps. The same generator state gives the same eps for every option."""
    if prior not in PRIORS[:2]:
        raise ConfigError(f"prior must be model or standard; got {prior!r} (the post-hoc ones: sample_images)")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0; got {temperature}")
    source = model.prior if prior == "model" else standard_prior(model.spec).to(model.device)
    return source.sample(n, generator, temperature)


@torch.no_grad()
def sample_images(
    run, n: int = 64, seed: int = 0, temperature: float = 1.0, prior: Prior = "model", y: torch.Tensor | None = None
) -> torch.Tensor:
    """n images (n, C, H, W) in [0, 1] decoded from draws of the prior, or of a density fitted to the training
    codes (``prior="gmm"`` or ``"two-stage"``, samplers.py); labels y for conditional models."""
    if prior not in PRIORS:
        raise ConfigError(f"prior must be one of {', '.join(PRIORS)}; got {prior!r}")
    generator = torch.Generator(run.model.device).manual_seed(seed)
    if prior in POST_HOC:
        return run.decode(POST_HOC[prior](run, n, generator, temperature), y)
    return run.decode(prior_latents(run.model, n, generator, temperature, prior), y)


def sample_grid(
    run, n: int = 64, seed: int = 0, temperature: float = 1.0, prior: Prior = "model", label: int | None = None
) -> np.ndarray:
    """A grid of n prior samples as a uint8 array (rows, cols, C); ``label``: of that class (conditional models)."""
    images = sample_images(run, n, seed, temperature, prior, run.sampling_labels(n, label, False))
    return image_grid(images)


def samples_by_label(run, n: int = 8, seed: int = 0, temperature: float = 1.0, prior: Prior = "model") -> LabelledRows:
    """A conditional model's prior samples, one row of n per class, each row named by its label and class."""
    labels = run.sampling_labels(n, None, True)  # (classes * n,): class 0 n times, then class 1 ...
    images = sample_images(run, len(labels), seed, temperature, prior, labels)
    names = run.class_names or []
    rows = [f"{c} {names[c]}" if c < len(names) and names[c] != str(c) else str(c) for c in range(len(labels) // n)]
    return LabelledRows(images.unflatten(0, (-1, n)), rows)


@torch.no_grad()
def posterior_latents(model, x: torch.Tensor, y: torch.Tensor | None, temperature: float = 0.0, generator=None):
    """Decoder inputs for images x: the posterior mean at T = 0, else mean + T * (a posterior draw - mean) on
    the continuous part (discrete codes stay at their argmax; point posteriors have nothing to draw)."""
    posterior = model.encode(x, y)
    z = posterior.mean
    if temperature == 0:
        return z
    d = model.spec.continuous
    draw = posterior.rsample(generator)
    return torch.cat([z[:, :d] + temperature * (draw[:, :d] - z[:, :d]), z[:, d:]], dim=1)


@torch.no_grad()
def reconstructions(
    run, n: int = 32, split: str = "test", temperature: float = 0.0, seed: int = 0, ncols: int = 16
) -> LabelledRows:
    """The first n images of a split in groups of ``ncols``, each group in named rows: the images as stored
    (grey); with ``data.binarize=dynamic`` the binarised draw that the model encodes and is scored against
    (its target; the evaluation's draw, seed 0); and their reconstructions, the decoded posterior mean (T = 0:
    for a Bernoulli likelihood each pixel's probability of a 1) or a posterior draw with its spread scaled by T.
    With static or no binarisation the stored image is itself the target."""
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0; got {temperature}")
    x, y = split_float(run, split, n)
    if not len(x):
        raise ConfigError(f"the {split} split of this run has no images to reconstruct: choose another --split")
    x, y = x.to(run.model.device), run.as_labels(y) if run.conditional else None
    generator = torch.Generator(run.model.device).manual_seed(seed)
    recon = run.model.decode_mean(posterior_latents(run.model, x, y, temperature, generator), y).cpu()
    if run.data.binarize == "dynamic":
        shown = {"original (grey)": to_float(run.data.split(split)[0][:n], "none"), "target (binarised)": x.cpu()}
    else:  # static: the stored images are binary already; none: the grey image is the target
        shown = {"target (binarised)" if run.data.binarize == "static" else "original = target": x.cpu()}
    shown["reconstruction"] = recon
    rows, names = [], []
    for start in range(0, len(x), ncols):
        for name, images in shown.items():
            rows.append(images[start : start + ncols])
            names.append(name)
    return LabelledRows(stack_rows(rows), names)
