"""What the latent space holds: KL per dimension, active units, linear and k-NN probes, clustering of
discrete codes.

Two kinds of input, one rule: what belongs to the likelihood (KL per dimension, active units) is measured on
the likelihood's data, the evaluation binarisation of ``likelihood.evaluation_batches``; what belongs to the
representation (probes, clustering) is measured on the images as stored, x / 255, so that it does not depend
on one random binarisation and every representation (codes, Fisher vectors, raw pixels) sees the same input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models import Model
from ..run import Run
from .likelihood import BLOCK, EVAL_SEED, evaluation_batches, split_images

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016, section 5.2: a unit is active if Cov_x(E_q[z_j]) > 0.01
COLLAPSE_FRACTION = 0.125  # warn when fewer than this fraction of the units are active (the default VAE uses 7 of 32)
KNN_K = 5
# L-BFGS iterations of the logistic regression, bounded so that a probe of 784-dim features on 54,000 images takes
# ~20 s, not minutes: 32-dim codes converge in ~100, and raw Fashion-MNIST pixels reach 0.842 at 50 and 0.844 at 100
PROBE_MAX_ITER = 100
# scikit-learn's BLAS threads for the probes: on the 2-core test machine shared with one other job, a
# 30-iteration logistic regression on 54,000 x 784 pixels took 22 s with two OpenBLAS threads and 2.5 s with one
PROBE_THREADS = 1
STORED = "none"  # binarize mode that reads the stored images as x / 255: the representation's input


@dataclass
class Latents:
    """One encoder pass over a split: the evaluation codes (posterior means; JointVAE: [mu, one-hot argmax]),
    the Gaussian part's means and mean KL per dimension (None for point codes), the argmax category of
    each discrete latent (None without one), and a quantised code's indices with its codebook's size (None
    without one)."""

    codes: np.ndarray  # (N, D_code) float32
    continuous_means: np.ndarray  # (N, D) float64
    kl_per_dim: np.ndarray | None  # (D,) nats, mean over images
    discrete: np.ndarray | None  # (N, n_discrete) int64
    code_indices: np.ndarray | None = None  # (N, M) int64, a VQ code's indices into its codebook
    codebook_size: int | None = None


@torch.no_grad()
def encode_split(
    model: Model, x_uint8: torch.Tensor, y: torch.Tensor | None, binarize: str, batch_size: int = BLOCK
) -> Latents:
    """Encode all images of a split in batches (one pass) and collect what the diagnostics need."""
    model.eval()
    codes, means, kls, discrete, indices, size = [], [], [], [], [], None
    for x, yb in evaluation_batches(x_uint8, y, binarize, batch_size, EVAL_SEED, model.device):
        posterior = model.encode(x, yb)
        codes.append(posterior.mean.float().cpu())
        means.append(posterior.continuous.mean.double().cpu())
        kl = model.closed_form_kls(posterior)[0]
        if kl is not None:
            kls.append(kl.double().sum(0).cpu())
        if model.spec.discrete:
            discrete.append(posterior.categorical.codes.cpu())
        quantised = posterior.code_indices()
        if quantised is not None:
            indices.append(quantised[0].cpu())
            size = quantised[1]
    n = len(x_uint8)
    return Latents(
        codes=torch.cat(codes).numpy(),
        continuous_means=torch.cat(means).numpy(),
        kl_per_dim=(torch.stack(kls).sum(0) / n).numpy() if kls else None,
        discrete=torch.cat(discrete).numpy() if discrete else None,
        code_indices=torch.cat(indices).numpy() if indices else None,
        codebook_size=size,
    )


@dataclass
class Activity:
    """How much a run uses each continuous latent dimension over the images of a split (``unit_activity``)."""

    variance: np.ndarray  # (D,) A_u, the variance over the images of the posterior mean
    active: np.ndarray  # (D,) bool, A_u > ACTIVE_THRESHOLD
    kl: np.ndarray | None  # (D,) mean KL to the prior in nats (None for point codes)
    n_images: int
    split: str

    @property
    def count(self) -> int:
        return int(self.active.sum())

    @property
    def ranked_by(self) -> str:
        return "KL" if self.kl is not None else "variance of the mean"

    @property
    def order(self) -> list[int]:
        """The dimensions, largest KL first (largest A_u for point codes): the order of traversals and sliders."""
        key = self.kl if self.kl is not None else self.variance
        return [int(j) for j in np.argsort(-key, kind="stable")]

    def criterion(self) -> str:
        """The definition in words, for captions: ``variance of the posterior mean over the 10000 test images >
        0.01, Burda et al. 2016``."""
        return (f"variance of the posterior mean over the {self.n_images} {self.split} images > {ACTIVE_THRESHOLD}, "
                "Burda et al. 2016")  # fmt: skip

    def summary(self) -> str:
        """E.g. ``15 of 16 dimensions active (variance of the posterior mean over ...)``."""
        return f"{self.count} of {len(self.active)} dimensions active ({self.criterion()})"


def unit_activity(latents: Latents, split: str) -> Activity:
    """The one definition of an active unit, which eval, traversals, the report and the explorer all use: unit u is
    active if A_u = Cov_x(E_{q(z|x)}[z_u]) > 0.01 (Burda et al. 2016, section 5.2), the variance over the images of
    a split (the evaluation binarisation: ``encode_split``) of its posterior mean."""
    variance = np.asarray(latents.continuous_means, dtype=np.float64).var(axis=0)  # (D,)
    return Activity(variance, variance > ACTIVE_THRESHOLD, latents.kl_per_dim, len(latents.codes), split)


def split_activity(run: Run, split: str = "test") -> Activity:
    """``unit_activity`` over all the images of a run's split, encoded as ``vaelab eval`` encodes them."""
    x, y = split_images(run, split)
    return unit_activity(encode_split(run.model, x, y, run.data.binarize), split)


def codebook_usage(indices: np.ndarray, size: int) -> dict[str, Any]:
    """How a split uses a codebook of ``size`` vectors, from its code indices (N, M): the codes used at least
    once, and the perplexity exp(H(p)) of the codes' frequencies p over all images and positions (size when
    all are used equally, 1 when one takes all)."""
    p = np.bincount(indices.ravel(), minlength=size) / indices.size
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    return {"size": int(size), "used": int((p > 0).sum()), "perplexity": float(np.exp(entropy))}


def probe_problem(train_labels: np.ndarray) -> str | None:
    """Why the probes cannot be fitted on these training labels (too few images or classes), or None."""
    classes = len(np.unique(train_labels))
    if classes < 2 or len(train_labels) < KNN_K:
        return (
            f"the training split has {len(train_labels)} images of {classes} class(es); the probes need {KNN_K} "
            "images of 2 classes or more (train on more images, or lower data.val_fraction and data.test_fraction)"
        )
    return None


def probe_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    """Test accuracy of a linear probe (multinomial logistic regression, L2, C=1, on features standardised with
    the training mean and std, at most ``PROBE_MAX_ITER`` L-BFGS steps) and of a k-NN classifier (k=5, Euclidean,
    on the features as they are: the representation's own geometry; standardising would blow up the noise of
    near-constant dimensions such as border pixels), both fitted on the training features; with their seconds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from .disentanglement import quiet_fit

    with threadpool_limits(limits=PROBE_THREADS):
        scaler = StandardScaler().fit(train_features)
        train = scaler.transform(train_features).astype(np.float32)
        test = scaler.transform(test_features).astype(np.float32)
        start = time.perf_counter()
        linear = quiet_fit(LogisticRegression(max_iter=PROBE_MAX_ITER, random_state=seed), train, train_labels)
        linear_seconds = time.perf_counter() - start
        start = time.perf_counter()
        raw_train, raw_test = (np.asarray(f, dtype=np.float32) for f in (train_features, test_features))
        knn = KNeighborsClassifier(n_neighbors=KNN_K, algorithm="brute", n_jobs=1).fit(raw_train, train_labels)
        knn_accuracy = float((knn.predict(raw_test) == test_labels).mean())
        return {
            "linear": float((linear.predict(test) == test_labels).mean()),
            "knn": knn_accuracy,
            "linear_seconds": linear_seconds,
            "knn_seconds": time.perf_counter() - start,
            "n_train": len(train),
            "n_test": len(test),
            "features": int(train.shape[1]),
        }


def means_covariance(means: np.ndarray) -> np.ndarray:
    """The covariance (D, D) over the images (1/N) of the posterior means (N, D); its diagonal is each unit's
    activity A_u."""
    return np.cov(means, rowvar=False, bias=True).reshape(means.shape[1], means.shape[1])


def abs_correlation(covariance: np.ndarray) -> np.ndarray:
    """|correlation| (D, D) from a covariance matrix (a unit that never varies gets 0s)."""
    std = np.sqrt(np.clip(np.diag(covariance), 1e-12, None))
    return np.abs(covariance / np.outer(std, std))


def active_correlation(covariance: np.ndarray) -> dict[str, Any]:
    """How correlated the active units' posterior means are (DIP-VAE holds them to uncorrelated, Kumar et al.
    2018): the mean and the largest |correlation| over pairs of active units (A_u > ACTIVE_THRESHOLD); None with
    fewer than two active units. Scale-free, so a faint active unit counts as much as a strong one."""
    active = np.diag(covariance) > ACTIVE_THRESHOLD
    if active.sum() < 2:
        return {"mean_abs": None, "max_abs": None, "active_units": int(active.sum())}
    off = abs_correlation(covariance[np.ix_(active, active)])[~np.eye(int(active.sum()), dtype=bool)]
    return {"mean_abs": float(off.mean()), "max_abs": float(off.max()), "active_units": int(active.sum())}


def hungarian_accuracy(codes: np.ndarray, labels: np.ndarray) -> float:
    """Clustering accuracy: the fraction of images whose cluster, mapped one-to-one to a label by the
    assignment that maximises the matches (Hungarian algorithm, Kuhn 1955), is their label. Clusters left
    without a label (more clusters than labels) count as wrong."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    counts = contingency_matrix(np.ravel(codes), np.ravel(labels))  # (clusters, labels)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def clustering_scores(codes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Hungarian clustering accuracy and normalised mutual information (arithmetic mean normalisation) of
    integer cluster codes (N,) against labels (N,)."""
    from sklearn.metrics import normalized_mutual_info_score

    return {
        "accuracy": hungarian_accuracy(codes, labels),
        "nmi": float(normalized_mutual_info_score(labels, codes)),
        "clusters_used": int(len(np.unique(codes))),
    }


def evaluate_latents(run: Run, split: str = "test", probes: bool = True) -> dict[str, Any]:
    """The latent diagnostics of a run on ``split``: KL per dimension and active units (on the evaluation
    binarisation), probes fitted on the training split's codes and clustering scores of each discrete latent
    (on the stored images). Returns the eval.json keys."""
    model, binarize = run.model, run.data.binarize
    x, y = split_images(run, split)
    latents = encode_split(model, x, y, binarize)  # the likelihood's data
    stored = latents if binarize != "dynamic" else encode_split(model, x, y, STORED)  # the images as stored
    activity = unit_activity(latents, split)
    dims, n_active = len(activity.active), activity.count
    results: dict[str, Any] = {
        "split": split,
        "latent": {
            "dims": dims,
            "active_units": n_active,
            "active_threshold": ACTIVE_THRESHOLD,
            "mean_variance_per_dim": activity.variance.tolist(),
            "kl_per_dim": None if latents.kl_per_dim is None else latents.kl_per_dim.tolist(),
            "collapse_warning": n_active < COLLAPSE_FRACTION * dims,
            "active_correlation": active_correlation(means_covariance(latents.continuous_means)),
        },
    }
    if latents.code_indices is not None:
        results["codebook"] = codebook_usage(latents.code_indices, latents.codebook_size)
    if probes and y is not None:
        train_x, train_y = split_images(run, "train")
        problem = probe_problem(train_y.numpy())
        if problem:
            results["probes"] = {"skipped": problem}
        else:
            train_codes = encode_split(model, train_x, train_y, STORED).codes
            results["probes"] = probe_accuracy(train_codes, train_y.numpy(), stored.codes, y.numpy())
    if stored.discrete is not None and y is not None:
        results["clustering"] = [
            {"categories": int(size), **clustering_scores(stored.discrete[:, i], y.numpy())}
            for i, size in enumerate(model.spec.discrete)
        ]
    return results
