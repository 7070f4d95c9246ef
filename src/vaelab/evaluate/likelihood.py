"""ELBO and its terms per image, in nats, over a whole split, with standard errors."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import torch

from ..checkpoint import atomic_write_text
from ..data import to_float
from ..errors import ConfigError
from ..models import Autoencoder
from ..run import EVAL_FILE, Run

EVAL_SEED = 0  # fixed binarisation and posterior noise: evaluations of a run are reproducible


@torch.no_grad()
def elbo_per_image(
    model: Autoencoder,
    x_uint8: torch.Tensor,
    y: torch.Tensor | None,
    binarize: str,
    batch_size: int = 1024,
    seed: int = EVAL_SEED,
) -> dict[str, torch.Tensor]:
    """Per-image reconstruction NLL, KL and -ELBO (each (N,), float64, nats) with one posterior sample
    per image. Grey-level data under ``binarize="dynamic"`` gets one fixed binarisation (by ``seed``)."""
    model.eval()
    data_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(model.device).manual_seed(seed)
    recon, kl = [], []
    for start in range(0, len(x_uint8), batch_size):
        x = to_float(x_uint8[start : start + batch_size], binarize, data_gen).to(model.device)
        yb = None if y is None else y[start : start + batch_size].to(model.device)
        terms = model.terms(x, yb, noise_gen)
        recon.append(terms.recon.double().cpu())
        kl.append(terms.kl.double().cpu())
    recon_t, kl_t = torch.cat(recon), torch.cat(kl)
    return {"neg_elbo": recon_t + kl_t, "recon": recon_t, "kl": kl_t}


def summarise(values: torch.Tensor) -> dict[str, float]:
    """Mean and its standard error (std / sqrt(n))."""
    n = len(values)
    stderr = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": values.mean().item(), "stderr": stderr}


SPLITS = ("train", "val", "test")


def evaluate_run(run: Run, split: str = "test", batch_size: int = 1024) -> dict[str, Any]:
    """-ELBO, reconstruction and KL per image in nats on ``split`` of the run's dataset."""
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    x, y = run.data.split(split)
    if len(x) == 0:
        raise ConfigError(f"the {split} split of {run.data.name} is empty; choose another with --split")
    start = time.perf_counter()
    per_image = elbo_per_image(run.model, x, y, run.data.binarize, batch_size)
    return {
        "split": split,
        "n_images": len(x),
        "likelihood": run.config.model.likelihood,
        "units": "nats per image",
        **{name: summarise(values) for name, values in per_image.items()},
        "seconds": time.perf_counter() - start,
    }


def write_eval(run: Run, results: dict[str, Any]) -> None:
    """Merge ``results`` into the section of its split in the run's eval.json, atomically; keys written
    by other evaluations are kept."""
    path = run.path / EVAL_FILE
    try:
        current = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        current = {}  # a damaged eval.json holds nothing worth keeping: it is rewritten whole
    current.setdefault(results["split"], {}).update(results)
    atomic_write_text(path, json.dumps(current, indent=2) + "\n")
