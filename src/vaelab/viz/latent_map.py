"""Where the test images land in latent space: a scatter of posterior means coloured by label (2-D latents
directly, otherwise their PCA or t-SNE projection), and for 2-D latents the manifold grid: the decoded images
of an n x n grid of the prior's quantiles (Kingma & Welling 2014, figure 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError
from .grids import LabelledRows
from .labels import number
from .plotting import class_colours, figure_to_array, new_figure
from .traverse import split_float

Method = Literal["auto", "pca", "tsne"]
MAP_IMAGES = 2000  # test images in a latent map


@dataclass
class LatentPoints:
    """2-D points (N, 2) of N images with their labels (N,) or None, the axis names and what made them."""

    points: np.ndarray
    labels: np.ndarray | None
    axes: tuple[str, str]
    method: str  # "latents" (2-D latents as they are), "pca" or "tsne"
    dims: int  # continuous latent dimensions
    inverse: tuple[np.ndarray, np.ndarray] | None = None  # (origin (D,), basis (2, D)); see ``project``

    def to_map(self, latents: np.ndarray) -> np.ndarray:
        """Map positions (N, 2) of latents (N, D): (latents - origin) @ basis^T (the basis rows are orthonormal)."""
        if self.inverse is None:
            raise ConfigError("a t-SNE map cannot place new points: use the PCA map")
        origin, basis = self.inverse
        return (np.asarray(latents, dtype=np.float64) - origin) @ basis.T


@torch.no_grad()
def continuous_means(model, x: torch.Tensor, y: torch.Tensor | None, batch_size: int = 1024) -> np.ndarray:
    """Posterior means of the continuous latents (N, latent_dim) (JointVAE: its Gaussian part's)."""
    means = []
    for start in range(0, len(x), batch_size):
        yb = None if y is None else y[start : start + batch_size]
        posterior = model.encode(x[start : start + batch_size].to(model.device), yb)
        means.append(posterior.continuous.mean.cpu())
    return torch.cat(means).double().numpy()


TSNE_MIN_IMAGES = 4


def project(means: np.ndarray, method: Method = "auto", seed: int = 0):
    """2-D points from latent means (N, D): the means themselves when D <= 2 (``auto``), else PCA, or t-SNE
    (``tsne``, perplexity 30, PCA initialisation). Returns (points (N, 2), axis names, method, inverse), the
    inverse (origin (D,), basis (2, D)) taking a point p back to latents origin + p @ basis (None for t-SNE)."""
    n, d = means.shape
    if method == "auto" and d <= 2:
        points = means if d == 2 else np.column_stack([means[:, 0], np.zeros(n)])
        return points, ("z0", "z1" if d == 2 else ""), "latents", (np.zeros(d), np.eye(2, d))
    if method == "tsne":
        from sklearn.manifold import TSNE

        if n < TSNE_MIN_IMAGES:
            raise ConfigError(f"a t-SNE map needs {TSNE_MIN_IMAGES} images or more; the split has {n}: use the PCA map")

        perplexity = min(30.0, max(2.0, (n - 1) / 3))
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1)
        return tsne.fit_transform(means), ("t-SNE 1", "t-SNE 2"), "tsne", None
    if method not in ("auto", "pca"):
        raise ConfigError(f"latent map method must be auto, pca or tsne; got {method!r}")
    if n < 2:  # one image (or none) has no spread: its point sits at the origin
        origin = means.mean(0) if n else np.zeros(d)
        return np.zeros((n, 2)), ("PC1 (one image: no variance)", "PC2"), "pca", (origin, np.eye(2, d))
    from sklearn.decomposition import PCA

    with np.errstate(invalid="ignore"):  # codes that do not vary (a collapsed model): sklearn divides 0 by 0
        pca = PCA(min(2, d, n), random_state=seed).fit(means)
    points = pca.transform(means)
    basis = np.vstack([pca.components_, np.zeros((2 - len(pca.components_), d))])  # (2, D)
    if points.shape[1] == 1:
        points = np.column_stack([points[:, 0], np.zeros(n)])
    share = [*np.nan_to_num(pca.explained_variance_ratio_), 0.0]  # no variance: 0% of it on each axis
    return points, (f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%})"), "pca", (pca.mean_, basis)


def latent_points(run, split: str = "test", n: int = MAP_IMAGES, method: Method = "auto") -> LatentPoints:
    """The posterior means of the first n images of ``split``, as 2-D points."""
    x, y = split_float(run, split, n)
    means = continuous_means(run.model, x, run.as_labels(y) if run.conditional else None)
    points, axes, made_by, inverse = project(means, method)
    return LatentPoints(points, None if y is None else y.numpy(), axes, made_by, means.shape[1], inverse)


def draw_latent_map(points: LatentPoints, class_names: list[str] | None = None, title: str = "") -> np.ndarray:
    """A scatter plot of ``points`` coloured by label, with a legend of class names, as a uint8 RGB array."""
    figure = new_figure(6.4, 5.0)
    ax = figure.add_subplot()
    xy = points.points
    size = float(np.clip(6000 / max(len(xy), 1), 3, 12))  # dot area in pt^2: bigger dots when there are few
    if points.labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.6, color="#1f77b4", linewidths=0)
    else:
        classes = np.unique(points.labels)
        colours = class_colours(int(classes.max()) + 1)
        for c in classes:
            keep = points.labels == c
            name = class_names[c] if class_names and c < len(class_names) else str(c)
            ax.scatter(xy[keep, 0], xy[keep, 1], s=size, alpha=0.7, color=colours[c], linewidths=0, label=name)
        markerscale = 3 * (4 / size) ** 0.5
        legend = ax.legend(
            loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=markerscale, frameon=False
        )
        for handle in legend.legend_handles:
            handle.set_alpha(1)
    ax.set_xlabel(points.axes[0])
    ax.set_ylabel(points.axes[1])
    if points.method == "latents":
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or _default_title(points), fontsize=10)
    figure.tight_layout()
    return figure_to_array(figure)


def _default_title(points: LatentPoints) -> str:
    what = {"latents": f"{points.dims}-D latent space", "pca": f"PCA of the {points.dims}-D latent means",
            "tsne": f"t-SNE of the {points.dims}-D latent means"}[points.method]  # fmt: skip
    return f"posterior means of {len(points.points)} images: {what}"


def latent_map(run, split: str = "test", n: int = MAP_IMAGES, method: Method = "auto") -> np.ndarray:
    """The latent map of a run (``latent_points`` drawn by ``draw_latent_map``) as a uint8 RGB array."""
    return draw_latent_map(latent_points(run, split, n, method), run.class_names)


@torch.no_grad()
def manifold_grid(run, n: int = 20) -> LabelledRows:
    """Decode an n x n grid of the 2-D prior's quantiles, z = m + s * Phi^-1((k + 0.5) / n), k = 0..n-1 (columns:
    z0 rising left to right; rows: z1 falling top to bottom), with the values of z0 as column headings and of
    z1 as row names: the axes. JointVAE's categoricals are set to category 0; a conditional model draws label 0."""
    model = run.model
    if model.spec.continuous != 2:
        raise ConfigError(
            f"the manifold grid needs a 2-D latent space; this model has {model.spec.continuous} dimensions "
            "(train one with model.latent_dim=2)"
        )
    if n < 2:
        raise ConfigError(f"the manifold grid needs n >= 2; got {n}")
    q = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n).float().to(model.device)  # (n,)
    mean, std = model.prior.moments()
    across, down = mean[0] + std[0] * q, mean[1] + std[1] * q.flip(0)  # (n,): z0 of each column, z1 of each row
    z = torch.stack([across.repeat(n), down.repeat_interleave(n)], dim=1)  # (n*n, 2), column index fastest
    z = model.spec.join(z, [0] * len(model.spec.discrete))  # (n*n, code_size)
    labels = torch.zeros(len(z), dtype=torch.long, device=z.device) if run.conditional else None
    images = model.decode_mean(z, labels).cpu().unflatten(0, (n, n))  # (n, n, C, H, W)
    rows = [f"z1 {number(v)}" for v in down.tolist()]
    return LabelledRows(images, rows, [number(v) for v in across.tolist()], "z0:", pad=0)


def scatter_frame(
    points: np.ndarray, labels: np.ndarray | None, centre: np.ndarray, half_width: np.ndarray, size: int = 240
) -> np.ndarray:
    """A fast scatter (no matplotlib, a few ms) of 2-D points in the window centre +- half_width, as a uint8
    RGB array (size, size, 3): 2x2 dots coloured by label, grey axes through the centre. Used per epoch."""
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    mid = size // 2
    image[mid, :] = image[:, mid] = 210
    uv = (points - centre) / half_width  # in [-1, 1] inside the window
    inside = (np.abs(uv) <= 1).all(1)
    cols = ((uv[inside, 0] + 1) / 2 * (size - 2)).astype(int)
    rows = ((1 - uv[inside, 1]) / 2 * (size - 2)).astype(int)
    k = 1 if labels is None else int(labels.max()) + 1
    colours = (class_colours(k) * 255).round().astype(np.uint8)
    dot = colours[labels[inside]] if labels is not None else colours[np.zeros(len(rows), dtype=int)]
    for dr in (0, 1):  # 2x2 dots
        for dc in (0, 1):
            image[rows + dr, cols + dc] = dot
    return image
