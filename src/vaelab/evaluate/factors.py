"""A run against its dataset's ground-truth factors: the disentanglement metrics of its representation and, for
models with a discrete latent (JointVAE), how well each categorical latent matches each categorical factor.

The representation is what the encoder gives for the images as stored (x / 255): the posterior means, followed
for JointVAE by the argmax category of each discrete latent (one integer column each).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..data.sources import factor_source
from ..errors import ConfigError
from ..run import Run
from .disentanglement import CHUNK, all_metrics, discrete_entropy, mutual_information, sample_codes
from .latents import STORED, clustering_scores, encode_split

PROTOCOL_POINTS = 10_000  # disentanglement_lib's training points per metric (evaluation points: half)


def run_representation(run: Run) -> Callable[[np.ndarray], np.ndarray]:
    """images uint8 (n, C, H, W) -> codes (n, D [+ n_discrete]) of the run's encoder, float64."""
    if run.config.model.conditional:
        raise ConfigError(
            f"{run.path} is a conditional model: its encoder is given the label, so its code cannot be scored "
            "against the factors; evaluate an unconditional model"
        )

    def represent(images: np.ndarray) -> np.ndarray:
        latents = encode_split(run.model, torch.from_numpy(images), None, STORED)
        means = latents.continuous_means
        parts = [means] if latents.discrete is None else [means, latents.discrete]
        return np.concatenate(parts, axis=1).astype(np.float64)

    return represent


def evaluate_disentanglement(
    run: Run, points: int = PROTOCOL_POINTS, seed: int = 0, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The eval.json key ``disentanglement``: every metric of ``disentanglement.all_metrics`` on the run's
    dataset's factors, with ``points`` training points (the protocols' 10,000 by default), and for each discrete
    latent its match to each categorical factor. DataError when the dataset has no ground-truth factors."""
    data = factor_source(run.config.data.name)
    represent = run_representation(run)
    table = None
    if _images_requested(points) > len(data.images):
        start = time.perf_counter()
        data = CodeTable(data, represent)
        represent = data.represent
        table = {"images": len(data.codes), "seconds": time.perf_counter() - start}
    results: dict[str, Any] = {
        "dataset": data.name,
        "factors": dict(zip(data.factor_names, map(int, data.factor_sizes), strict=True)),
        "representation": "posterior means" + (", argmax of each categorical" if run.model.spec.discrete else ""),
        "points": points,
        "seed": seed,
        "code_table": table,  # every grid image encoded once (None: the metrics' samples encoded as drawn)
        **all_metrics(data, represent, points, seed, log),
    }
    if run.model.spec.discrete:
        results["discrete"] = discrete_vs_factors(run, data, represent, points, seed)
    return {"disentanglement": results}


def _images_requested(points: int) -> int:
    """Images the metrics encode with ``points`` training points: beta-VAE 2 x 64 per point and FactorVAE 64 per
    vote (training and evaluation), plus the variance estimate, MIG, SAP, DCI and the discrete check."""
    per_point = 1.5 * (2 * 64 + 64)
    return int(points * per_point + points * 6)


class CodeTable:
    """A factor dataset seen through its codes: every grid image encoded once, observations are grid indices
    and representing them is a lookup. The posterior mean is a function of the image, so the metrics do not
    change; only the time does, when they would encode more images than the grid holds (the beta-VAE and
    FactorVAE protocols ask for ~2.9 million on 737,280 ``shapes`` images)."""

    def __init__(self, data, represent: Callable[[np.ndarray], np.ndarray]):
        self.name, self.factor_names, self.factor_sizes = data.name, data.factor_names, data.factor_sizes
        self.categorical, self.sample_factors = data.categorical, data.sample_factors
        n = len(data.images)
        self.codes = np.concatenate([represent(data.images[i : i + CHUNK]) for i in range(0, n, CHUNK)])  # (N, D)

    def observations(self, factors: np.ndarray) -> np.ndarray:
        """The grid indices (n,) of factor indices (n, K)."""
        return np.ravel_multi_index(tuple(np.asarray(factors).T), self.factor_sizes)

    def represent(self, index: np.ndarray) -> np.ndarray:
        return self.codes[index]


def discrete_vs_factors(run: Run, data, represent, points: int, seed: int) -> list[dict[str, Any]]:
    """For each categorical latent and categorical factor, on ``points`` samples: the mutual information
    I(c; v) in nats, its fraction of H(v), and the Hungarian clustering accuracy and NMI of c against v."""
    factors, codes = sample_codes(data, represent, points, np.random.default_rng(seed))
    sizes = run.model.spec.discrete
    categories = codes[:, codes.shape[1] - len(sizes) :].astype(np.int64)  # (n, n_discrete)
    out = []
    for k in (k for k, cat in enumerate(data.categorical) if cat):
        mi = mutual_information(categories, factors[:, k : k + 1])[:, 0]
        entropy = float(discrete_entropy(factors[:, k : k + 1])[0])
        for i, size in enumerate(sizes):
            out.append({
                "latent": i,
                "categories": size,
                "factor": data.factor_names[k],
                "factor_values": int(data.factor_sizes[k]),
                "mutual_information": float(mi[i]),
                "factor_entropy": entropy,
                "fraction_of_entropy": float(mi[i] / entropy),
                **clustering_scores(categories[:, i], factors[:, k]),
                "n": points,
            })  # fmt: skip
    return out
