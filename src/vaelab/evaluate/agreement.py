"""Choosing among restarts without labels: the run whose discrete codes agree most with the other runs'.

Which partition a discrete latent settles on depends on the seed (JointVAE on mnist-5k: clustering accuracy
0.45-0.71 over ten seeds of one config). The adjusted Rand index (ARI; Hubert & Arabie 1985) of two runs'
codes on the same images measures how alike their partitions are: 1 for the same partition up to renaming,
about 0 for chance. Restarts that find the data's classes resemble one another, while the failures differ
each in its own way, so the run with the highest mean ARI to the others (the medoid) is kept. No label is
read, and no test image: every run encodes the first run's training and validation images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..run import Run, read_eval
from .latents import STORED, encode_split


@dataclass
class Agreement:
    """Pairwise ARI of the runs' discrete codes on ``n_images`` shared images."""

    paths: list[Path]
    ari: np.ndarray  # (R, R), symmetric, 1 on the diagonal
    n_images: int

    @property
    def mean_ari(self) -> np.ndarray:
        """Each run's mean ARI to the other runs, (R,)."""
        r = len(self.paths)
        return (self.ari.sum(1) - np.diag(self.ari)) / (r - 1)

    @property
    def chosen(self) -> int:
        """Index of the medoid: the run that agrees most with the others."""
        return int(np.argmax(self.mean_ari))


def pairwise_ari(codes: list[np.ndarray]) -> np.ndarray:
    """(R, R) adjusted Rand index of every pair of integer partitions (N,) of the same images."""
    from sklearn.metrics import adjusted_rand_score

    r = len(codes)
    ari = np.eye(r)
    for i in range(r):
        for j in range(i + 1, r):  # R(R-1)/2 pairs, each one vectorised contingency table
            ari[i, j] = ari[j, i] = adjusted_rand_score(codes[i], codes[j])
    return ari


def joint_code(discrete: np.ndarray, sizes: list[int]) -> np.ndarray:
    """One integer per image from the argmax categories (N, n_discrete) of categoricals of ``sizes``
    (mixed radix: c_1 + K_1 c_2 + K_1 K_2 c_3 ...), so that several categoricals form one partition."""
    return np.ravel_multi_index(tuple(discrete.T), tuple(sizes), order="F")


def _check_comparable(runs: list[Run]) -> None:
    if len(runs) < 2:
        raise ConfigError("agreement needs at least two runs (restarts of one config with different seeds)")
    folders = [run.path.resolve() for run in runs]
    repeated = next((run.path for run, folder in zip(runs, folders, strict=True) if folders.count(folder) > 1), None)
    if repeated is not None:
        raise ConfigError(f"{repeated} is given twice; agreement compares different restarts")
    for run in runs:
        if not run.model.spec.discrete:
            raise ConfigError(
                f"{run.path} has no discrete latent ({run.config.model.name}); agreement compares the discrete "
                "codes of joint-vae runs"
            )
    first = runs[0]
    for run in runs[1:]:
        if run.config.data.name != first.config.data.name:
            raise ConfigError(f"{run.path} was trained with data.name={run.config.data.name}, {first.path} with "
                              f"{first.config.data.name}: compare runs of the same data")  # fmt: skip
        if run.model.spec.discrete != first.model.spec.discrete:
            raise ConfigError(f"{run.path} has discrete latents {list(run.model.spec.discrete)}, {first.path} "
                              f"{list(first.model.spec.discrete)}: compare runs of the same latent spec")  # fmt: skip


@torch.no_grad()
def code_agreement(runs: list[Run]) -> Agreement:
    """Encode the first run's training and validation images (as stored, x / 255) with every run and compare
    the partitions of their discrete codes pairwise."""
    _check_comparable(runs)
    data = runs[0].data
    x = torch.cat([data.train_x, data.val_x])
    y = None if data.train_y is None else torch.cat([data.train_y, data.val_y])
    codes = []
    for run in runs:
        labels = y if run.conditional else None  # a conditional encoder reads the label
        discrete = encode_split(run.model, x, labels, STORED).discrete
        codes.append(joint_code(discrete, list(run.model.spec.discrete)))
    return Agreement([run.path for run in runs], pairwise_ari(codes), len(x))


def recorded_accuracy(path: Path) -> float | None:
    """The test clustering accuracy of a run's first discrete latent as `vaelab eval` recorded it in
    eval.json, or None when it was not evaluated (or eval.json is unreadable)."""
    try:
        clustering = (read_eval(path) or {}).get("test", {}).get("clustering")
    except OSError:
        return None
    return clustering[0]["accuracy"] if clustering else None
