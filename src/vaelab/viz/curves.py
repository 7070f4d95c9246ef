"""Training curves from metrics.csv (-ELBO, reconstruction and KL per epoch, train and val) and, from
latent_stats.csv, the KL of each latent dimension over the epochs as a heatmap and the posterior's mean std."""

from __future__ import annotations

import numpy as np

from ..evaluate.likelihood import loss_name
from .latent_stats import stat_matrix
from .plotting import figure_to_array, new_figure


def whole_epochs(ax) -> None:
    """Ticks of the x axis on whole numbers only (epochs), however few there are."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _line(ax, epochs, values, label, few: bool, **style):
    if values and not all(v != v for v in values):  # skip absent columns (all NaN)
        ax.plot(epochs, values, label=label, marker="o" if few else None, markersize=3, **style)


def training_curves(metrics: list[dict[str, float]], has_density: bool = True) -> np.ndarray:
    """Three panels over epochs, in nats per image: -ELBO (train recon + KL, and val; the training objective
    too when it differs, e.g. beta-VAE; without ``has_density`` the reconstruction NLL), reconstruction, KL
    (with JointVAE's parts and a capacity target if logged). A uint8 RGB array."""
    if not metrics:
        raise ValueError("no metrics: the run has not finished an epoch")
    epochs = [int(r["epoch"]) for r in metrics]
    col = lambda key: [r.get(key, float("nan")) for r in metrics]  # noqa: E731
    few = len(epochs) < 30
    figure = new_figure(11, 3.4)
    axes = figure.subplots(1, 3)
    train_elbo = [r["train_recon"] + r["train_kl"] for r in metrics]
    name = loss_name(has_density)
    _line(axes[0], epochs, train_elbo, f"train {name}", few)
    _line(axes[0], epochs, col("val_loss"), f"val {name}", few)
    if any(abs(r["train_loss"] - e) > 1e-3 * max(1.0, abs(e)) for r, e in zip(metrics, train_elbo, strict=True)):
        _line(axes[0], epochs, col("train_loss"), "train objective", few, linestyle="--")
    _line(axes[1], epochs, col("train_recon"), "train", few)
    _line(axes[1], epochs, col("val_recon"), "val", few)
    _line(axes[2], epochs, col("train_kl"), "train", few)
    _line(axes[2], epochs, col("val_kl"), "val", few)
    for key, label in (("train_kl_cont", "train, continuous"), ("train_kl_disc", "train, discrete")):
        if key in metrics[0]:
            _line(axes[2], epochs, col(key), label, few, linestyle=":")
    if "train_capacity" in metrics[0]:
        _line(axes[2], epochs, col("train_capacity"), "capacity C", few, linestyle="--", color="grey")
    titles = ("-ELBO = recon + KL" if has_density else name, "reconstruction -log p(x|z)", "KL(q(z|x) || p(z))")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        whole_epochs(ax)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("nats per image")
    figure.tight_layout()
    return figure_to_array(figure)


def kl_heatmap(stats: list[dict[str, float]]) -> np.ndarray:
    """KL per latent dimension (rows, largest final KL on top; JointVAE's categoricals below) over epochs
    (columns), in nats per image, from latent_stats.csv rows. A uint8 RGB array."""
    return figure_to_array(kl_heatmap_figure(stats))


def kl_heatmap_figure(stats: list[dict[str, float]]):
    """The matplotlib Figure of ``kl_heatmap``, its epoch ticks on whole epochs."""
    if not stats:
        raise ValueError("no latent statistics (models with point codes, such as AE and PCA, have none)")
    epochs, names, values = stat_matrix(stats, "kl_z")
    _, disc_names, disc_values = stat_matrix(stats, "kl_c")
    kl = np.array(values).T  # (D, epochs)
    order = np.argsort(-kl[:, -1], kind="stable")
    matrix = np.vstack([kl[order], np.array(disc_values).T.reshape(len(disc_names), len(epochs))])
    labels = [names[j][3:] for j in order] + [n[3:] for n in disc_names]
    figure = new_figure(7.5, 1.4 + 0.16 * len(labels))
    ax = figure.add_subplot()
    extent = (epochs[0] - 0.5, epochs[-1] + 0.5, len(labels) - 0.5, -0.5)
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest", extent=extent)
    ax.set_yticks(range(len(labels)), labels, fontsize=7 if len(labels) > 20 else 8)
    whole_epochs(ax)
    ax.set_xlabel("epoch")
    ax.set_title("KL per latent dimension (nats per image, validation images)", fontsize=10)
    figure.colorbar(image, ax=ax, label="nats", fraction=0.04, pad=0.02)
    figure.tight_layout()
    return figure


def mean_sigma(stats: list[dict[str, float]]) -> tuple[list[int], list[float]]:
    """(epochs, the posterior std averaged over dimensions and images) from latent_stats.csv rows."""
    epochs, _, values = stat_matrix(stats, "sigma_z")
    return epochs, [float(np.mean(v)) for v in values]


def sigma_curves(runs: dict[str, list[dict[str, float]]], log_scale: bool = True) -> np.ndarray:
    """The mean posterior std per epoch of several runs (name -> latent_stats rows) in one plot; the prior's
    std (1) as a dashed line. A uint8 RGB array."""
    figure = new_figure(6, 3.6)
    ax = figure.add_subplot()
    for name, stats in runs.items():
        epochs, sigma = mean_sigma(stats)
        ax.plot(epochs, sigma, label=name, marker="o" if len(epochs) < 30 else None, markersize=3)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="prior std")
    if log_scale:
        ax.set_yscale("log")
    whole_epochs(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean posterior std")
    ax.set_title("posterior std, averaged over latent dimensions and validation images", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure_to_array(figure)
