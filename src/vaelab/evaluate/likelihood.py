"""Likelihood bounds per image, in nats, over a whole split: the ELBO and its terms, and the importance-weighted
NLL estimate (Burda et al. 2016), each with a standard error over images.

Every evaluation of a split sees the same images: one fixed binarisation (seed ``EVAL_SEED``) drawn in
blocks of ``BLOCK`` images, so it does not depend on the batch size a measurement uses.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from tqdm import tqdm

from ..checkpoint import atomic_write_text
from ..data import to_float
from ..data.dataset import SPLITS
from ..errors import ConfigError
from ..models import Model
from ..precision import Choice, autocast, choose_precision
from ..run import EVAL_FILE, Run, read_eval

EVAL_SEED = 0  # fixed binarisation and posterior noise: evaluations of a run are reproducible
BLOCK = 1024  # images binarised per draw of the evaluation binarisation
# Decoder rows (images x samples) per call of log_importance_weights. Measured on the default MLP VAE on a
# 2-core Xeon: 2,000 rows run at 139k rows/s, 4,000 at 92k and 16,000 at 79k, because up to ~2,000 rows the
# logits (rows x 784 floats) stay in the 4 MB L2 cache of each core. The byte budget bounds larger images.
IW_ROWS = 2048
IW_BYTES = 256 * 2**20  # at most ~256 MB of decoder outputs and their temporaries per call
BF16_TOLERANCE = 0.05  # nats: the largest bf16 - fp32 difference of the mean IW-NLL that precision auto accepts
BF16_CHECK_IMAGES = 16  # images on which auto compares the two estimates before it keeps bf16


def loss_name(has_density: bool) -> str:
    """What ``neg_elbo`` (and a validation loss) is: the -ELBO, or for a model without a density (AE, RAE, PCA:
    point codes, no KL) the reconstruction NLL alone, which bounds nothing."""
    return "-ELBO" if has_density else "reconstruction NLL"


def evaluation_batches(
    x_uint8: torch.Tensor,
    y: torch.Tensor | None,
    binarize: str,
    batch_size: int,
    seed: int = EVAL_SEED,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(x, y) float batches of at most ``batch_size`` images in order, with the evaluation binarisation:
    blocks of ``BLOCK`` images drawn from one generator seeded by ``seed``, the same for every batch size."""
    generator = torch.Generator().manual_seed(seed)
    for block in range(0, len(x_uint8), BLOCK):
        x_block = to_float(x_uint8[block : block + BLOCK], binarize, generator)
        for start in range(0, len(x_block), batch_size):
            x = x_block[start : start + batch_size].to(device)
            yb = None if y is None else y[block + start : block + start + len(x)].to(device)
            yield x, yb


@torch.no_grad()
def elbo_per_image(
    model: Model,
    x_uint8: torch.Tensor,
    y: torch.Tensor | None,
    binarize: str,
    batch_size: int = BLOCK,
    seed: int = EVAL_SEED,
) -> dict[str, torch.Tensor]:
    """Per-image reconstruction NLL, KL and -ELBO (each (N,), float64, nats) with one posterior sample
    per image, plus the model's named parts of the KL (e.g. JointVAE's kl_cont and kl_disc)."""
    model.eval()
    noise_gen = torch.Generator(model.device).manual_seed(seed)
    columns: dict[str, list[torch.Tensor]] = {}
    for x, yb in evaluation_batches(x_uint8, y, binarize, batch_size, seed, model.device):
        terms = model.terms(x, yb, noise_gen)
        for name, value in {"recon": terms.recon, "kl": terms.kl, **terms.kl_parts}.items():
            columns.setdefault(name, []).append(value.double().cpu())
    out = {name: torch.cat(values) for name, values in columns.items()}
    return {"neg_elbo": out["recon"] + out["kl"], **out}


def iw_rows(model: Model) -> int:
    """Decoder rows per call: ``IW_ROWS``, fewer if the outputs and ~3 same-sized temporaries (the repeated
    images, the per-pixel log-likelihood) would pass ``IW_BYTES``."""
    pixels = math.prod(model.image_shape)
    return max(1, min(IW_ROWS, IW_BYTES // (4 * 4 * pixels)))


@torch.no_grad()
def iw_nll_per_image(
    model: Model,
    x_uint8: torch.Tensor,
    y: torch.Tensor | None,
    binarize: str,
    k: int = 1000,
    seed: int = EVAL_SEED,
    rows: int | None = None,
    progress: bool | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """The importance-weighted estimate of -log p(x) per image, (N,) float64 nats (Burda et al. 2016, eq. 8):
    -[logsumexp_k log w_k - log k], log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k ~ q(z|x).

    It bounds -log p(x) from above, tighter as k grows (it equals the -ELBO in expectation at k = 1).
    Batched over images and samples: each call of ``model.log_importance_weights`` decodes ``rows`` latents
    (images x samples); an image's k log weights are gathered (float64) before one logsumexp, so memory is
    bounded whatever k is. Reproducible: fixed binarisation and a noise generator seeded by ``seed``.
    ``precision="bf16"`` runs the networks under bf16 autocast; the log weights and the logsumexp stay in
    float32 and float64.
    """
    if not model.has_density:
        raise ConfigError(f"the importance-weighted NLL is not defined for {model.config.name}: it has no density")
    if k < 1:
        raise ConfigError(f"--iw-samples must be at least 1; got {k}")
    model.eval()
    rows = rows or iw_rows(model)
    images = max(1, rows // k)  # images per chunk
    calls = math.ceil(k / max(1, rows // images))  # calls per chunk, sharing the k samples evenly
    sizes = [k // calls + (i < k % calls) for i in range(calls)]
    noise_gen = torch.Generator(model.device).manual_seed(seed)
    show = sys.stderr.isatty() if progress is None else progress
    out = []
    with tqdm(total=len(x_uint8), desc=f"IW-NLL k={k}", unit="img", disable=not show, leave=False) as bar:
        for x, yb in evaluation_batches(x_uint8, y, binarize, images, seed, model.device):
            with autocast(precision, model.device):
                log_w = torch.cat([model.log_importance_weights(x, yb, s, noise_gen).double() for s in sizes])  # (k, B)
            out.append((math.log(k) - torch.logsumexp(log_w, dim=0)).cpu())
            bar.update(len(x))
    return torch.cat(out)


def iw_precision(
    model: Model, requested: str, x: torch.Tensor, y: torch.Tensor | None, binarize: str, k: int
) -> Choice:
    """fp32 or bf16 for the IW-NLL of images ``x`` under ``model`` with k samples. ``auto``: a probe of the model's
    layers at the shapes of one call of ``log_importance_weights``; where it picks bf16, ``checked_bf16``."""
    rows = iw_rows(model)
    images = max(1, rows // k)
    probe_x = torch.rand(images, *model.image_shape, device=model.device)
    probe_y = torch.zeros(images, dtype=torch.long, device=model.device) if model.n_conditions else None
    noise = torch.Generator(model.device)
    choice = choose_precision(
        requested, model.device, model,
        lambda: model.log_importance_weights(probe_x, probe_y, min(k, rows // images), noise),
    )  # fmt: skip
    if requested == "auto" and choice.precision == "bf16":
        return checked_bf16(model, x, y, binarize, k, choice)
    return choice


def checked_bf16(
    model: Model, x: torch.Tensor, y: torch.Tensor | None, binarize: str, k: int, choice: Choice
) -> Choice:
    """``auto``'s accuracy check of a bf16 choice: the IW-NLL of the first ``BF16_CHECK_IMAGES`` images in bf16 and
    in fp32 (the same images and draws); bf16 stays only where the two means differ by at most
    ``BF16_TOLERANCE`` nats, else fp32, with the reason."""
    n = min(len(x), BF16_CHECK_IMAGES)
    x, y = x[:n], None if y is None else y[:n]
    mean = {p: iw_nll_per_image(model, x, y, binarize, k, progress=False, precision=p).mean().item()
            for p in ("bf16", "fp32")}  # fmt: skip
    difference = mean["bf16"] - mean["fp32"]
    if abs(difference) <= BF16_TOLERANCE:
        return Choice("bf16", f"{choice.reason}; on the first {n} images bf16's estimate is {difference:+.3f} "
                              f"nats from fp32's")  # fmt: skip
    return Choice("fp32", f"fp32 (auto: on the first {n} images bf16's estimate is {difference:+.3f} nats from "
                          f"fp32's, beyond the {BF16_TOLERANCE} accepted)")  # fmt: skip


def summarise(values: torch.Tensor) -> dict[str, float]:
    """Mean and its standard error (std / sqrt(n); None for a single image, where it is undefined: eval.json
    holds null, not NaN, which JSON does not have)."""
    n = len(values)
    stderr = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else None
    return {"mean": values.mean().item(), "stderr": stderr}


def plus_minus(stderr: float | None) -> str:
    """A standard error as shown: 2 decimals, or "-" where it is undefined (one image)."""
    return "-" if stderr is None else f"{stderr:.2f}"


def split_images(run: Run, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(uint8 images, labels) of a split, with one-line errors for a bad or empty split."""
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    x, y = run.data.split(split)
    if len(x) == 0:
        raise ConfigError(f"the {split} split of {run.data.name} is empty; choose another with --split")
    return x, y


def evaluate_run(
    run: Run,
    split: str = "test",
    batch_size: int = BLOCK,
    iw_samples: int = 0,
    progress: bool | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """-ELBO, reconstruction and KL per image in nats on ``split`` of the run's dataset (in fp32); with
    ``iw_samples`` = k > 0 also the k-sample importance-weighted NLL (``iw_nll``: mean, stderr over images, k,
    seconds, images x samples per second, the precision used: ``precision`` fp32, bf16 or auto), for models
    that have log importance weights."""
    x, y = split_images(run, split)
    model, binarize = run.model, run.data.binarize
    start = time.perf_counter()
    per_image = elbo_per_image(model, x, y, binarize, batch_size)
    results = {
        "split": split,
        "n_images": len(x),
        "likelihood": run.config.model.likelihood,
        "units": "nats per image",
        "has_density": model.has_density,  # False (AE, PCA): neg_elbo is the reconstruction NLL alone
        **{name: summarise(values) for name, values in per_image.items()},
        "seconds": time.perf_counter() - start,
    }
    if iw_samples > 0 and model.has_density:
        choice = iw_precision(model, precision, x, y, binarize, iw_samples)
        start = time.perf_counter()
        nll = iw_nll_per_image(model, x, y, binarize, iw_samples, progress=progress, precision=choice.precision)
        seconds = time.perf_counter() - start
        results["iw_nll"] = {
            **summarise(nll),
            "k": iw_samples,
            "precision": choice.precision,
            "precision_reason": choice.reason,
            "seconds": seconds,
            "images_x_samples_per_s": len(x) * iw_samples / seconds,
        }
    elif iw_samples > 0:
        results["iw_nll"] = None  # not defined for this model (no posterior density)
    return results


def write_eval(run: Run, results: dict[str, Any]) -> None:
    """Merge ``results`` into the section of its split in the run's eval.json, atomically; keys written
    by other evaluations are kept."""
    current = read_eval(run.path) or {}  # a damaged eval.json holds nothing worth keeping: it is rewritten whole
    current.setdefault(results["split"], {}).update(results)
    atomic_write_text(run.path / EVAL_FILE, json.dumps(current, indent=2) + "\n")
