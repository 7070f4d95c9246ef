"""Per-epoch statistics of the posterior, kept in ``latent_stats.csv`` in the run folder: for each epoch and
continuous dimension j the mean KL(q(z_j|x) || N(0, 1)) in nats (``kl_zj``) and the mean posterior std
(``sigma_zj``), and each categorical's mean KL to its uniform prior (``kl_cI``), over a fixed set of
validation images. Models with point codes (AE, PCA) have no such statistics and no file."""

from __future__ import annotations

from pathlib import Path

import torch

from ..run import read_number_csv, write_number_csv

LATENT_STATS_FILE = "latent_stats.csv"


@torch.no_grad()
def posterior_stats(model, x: torch.Tensor, y: torch.Tensor | None) -> dict[str, float] | None:
    """Mean KL per dimension (nats) and mean posterior std per dimension of images x, and the mean KL of each
    categorical; None for point posteriors."""
    posterior = model.encode(x, y)
    kl, kl_codes = model.closed_form_kls(posterior)
    if kl is None:
        return None
    sigma = posterior.continuous.std.mean(0)  # (D,)
    row = {f"kl_z{j}": v for j, v in enumerate(kl.mean(0).tolist())}
    row |= {f"sigma_z{j}": v for j, v in enumerate(sigma.tolist())}
    if kl_codes is not None:
        row |= {f"kl_c{i}": v for i, v in enumerate(kl_codes.mean(0).tolist())}
    return row


def read_latent_stats(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of latent_stats.csv (one per epoch, ``epoch`` first), or [] if there is none."""
    remedy = "delete it to go on without the KL and sigma curves (training writes it again from its next epoch)"
    return read_number_csv(Path(run_dir) / LATENT_STATS_FILE, remedy)


def write_latent_stats(run_dir: str | Path, rows: list[dict[str, float]]) -> None:
    """Write the rows (atomically) as latent_stats.csv."""
    if rows:
        write_number_csv(Path(run_dir) / LATENT_STATS_FILE, rows)


def stat_matrix(rows: list[dict[str, float]], prefix: str) -> tuple[list[int], list[str], list[list[float]]]:
    """(epochs, column names, values[epoch][column]) of the columns starting with ``prefix`` (e.g. "kl_z")."""
    names = [k for k in (rows[0] if rows else {}) if k.startswith(prefix)]
    return [int(r["epoch"]) for r in rows], names, [[r.get(k, float("nan")) for k in names] for r in rows]
