"""Fisher Vectors (Perronnin & Dance 2007; improved: Perronnin, Sánchez & Mensink 2010) as an image
representation: the classic non-neural baseline for what an encoder's codes are worth.

Pipeline: dense local descriptors (overlapping ``patch`` x ``patch`` windows every ``stride`` pixels, centred
and reduced by PCA to ``pca_dims``, plus the window's normalised position: spatial augmentation, Sánchez et al.
2012) -> a diagonal GMM with ``modes`` components fitted on a sample of training descriptors -> per image,
the normalised gradients of the descriptors' mean log-likelihood with respect to the mixture weights, means and
variances (2KD + K numbers) -> power normalisation sign(v)|v|^alpha and L2 normalisation.

The Fisher vector is scikit-image's (``skimage.feature.fisher_vector``, same formulas, same layout and signs)
but computed here for all images at once: skimage's function takes one image per call, calling
``GaussianMixture.predict_proba`` and a dozen NumPy ops per image. Measured on 10,000 Fashion-MNIST images (64
descriptors of 26 dims, 16 modes, 2 cores): skimage's loop 12.2 s, this batched version 0.7 s. The tests check
that both agree to 1e-5. The GMM is scikit-learn's GaussianMixture (what skimage's ``learn_gmm`` wraps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def fisher_vectors(
    descriptors: np.ndarray | torch.Tensor,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    improved: bool = True,
    alpha: float = 0.5,
) -> np.ndarray:
    """Fisher vectors (N, K + 2KD) of N images' descriptors (N, P, D) under a diagonal GMM with ``weights``
    (K,), ``means`` (K, D) and ``variances`` (K, D), in float64. With gamma (N, P, K) the posteriors and
    S0 = mean_p gamma, S1 = mean_p gamma x, S2 = mean_p gamma x^2:
      d_pi = (S0 - w) / sqrt(w)
      d_mu = (S1 - S0 mu) / (sqrt(w) sigma)
      d_sigma = -(S2 - 2 S1 mu + S0 mu^2 - S0 sigma^2) / (sqrt(2 w) sigma^2)
    (skimage's signs), concatenated [d_pi, d_mu (K*D, row-major), d_sigma]; ``improved``: sign(v)|v|^alpha,
    then divided by the L2 norm."""
    x = torch.as_tensor(descriptors, dtype=torch.float64)  # (N, P, D)
    w, mu, var = (torch.as_tensor(a, dtype=torch.float64) for a in (weights, means, variances))
    n, p, d = x.shape
    precision = 1 / var  # (K, D)
    # log N(x; mu_k, var_k) = -0.5 [D log 2pi + sum log var + sum x^2 / var - 2 sum x mu / var + sum mu^2 / var]
    x2 = x * x  # (N, P, D)
    log_prob = -0.5 * (
        d * LOG_2PI + var.log().sum(1) + (mu * mu * precision).sum(1) + x2 @ precision.T - 2 * x @ (mu * precision).T
    )  # (N, P, K)
    gamma = torch.softmax(log_prob + w.log(), dim=-1)  # (N, P, K)
    s0 = gamma.mean(1)  # (N, K)
    gamma_t = gamma.transpose(1, 2)  # (N, K, P)
    s1 = gamma_t @ x / p  # (N, K, D)
    s2 = gamma_t @ x2 / p  # (N, K, D)
    sqrt_w = w.sqrt()
    d_pi = (s0 - w) / sqrt_w
    d_mu = (s1 - s0[..., None] * mu) / (sqrt_w[:, None] * var.sqrt())
    d_sigma = (-s2 - s0[..., None] * (mu * mu) + s0[..., None] * var + 2 * s1 * mu) / (
        math.sqrt(2) * sqrt_w[:, None] * var
    )
    fv = torch.cat([d_pi, d_mu.flatten(1), d_sigma.flatten(1)], dim=1)  # (N, K + 2KD)
    if improved:
        fv = fv.sign() * fv.abs().pow(alpha)
        fv = fv / fv.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return fv.numpy()


def dense_patches(x: torch.Tensor, patch: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping windows of float images x (N, C, H, W): (N, P, C*patch*patch), and the window centres
    scaled to [0, 1] (P, 2) as (row, column)."""
    _, _, h, w = x.shape
    windows = F.unfold(x, patch, stride=stride).transpose(1, 2).contiguous()  # (N, P, C*patch*patch)
    rows = torch.arange(0, h - patch + 1, stride, dtype=torch.float64) + (patch - 1) / 2
    cols = torch.arange(0, w - patch + 1, stride, dtype=torch.float64) + (patch - 1) / 2
    grid = torch.cartesian_prod(rows / max(h - 1, 1), cols / max(w - 1, 1))  # (P, 2), unfold's order
    return windows, grid


@dataclass
class FisherVectorEncoder:
    """Images -> improved Fisher vectors, scikit-learn style: ``fit(x)`` learns the descriptor PCA and the
    GMM from training images, ``transform(x)`` returns (N, 2KD + K) float32 features.

    x are float images (N, C, H, W) in [0, 1]. The patch is clipped to the image (8x8 digits get 4x4 windows
    every 2 pixels). Fitting uses at most ``max_descriptors`` descriptors drawn at random (seeded)."""

    patch: int = 7
    stride: int = 3
    pca_dims: int = 24
    modes: int = 16
    spatial: bool = True
    alpha: float = 0.5
    max_descriptors: int = 200_000
    gmm_iter: int = 100
    seed: int = 0

    def _window(self, height: int, width: int) -> tuple[int, int]:
        """(patch, stride): the configured ones, or half the image and a quarter of it on small images."""
        patch = min(self.patch, max(2, min(height, width) // 2))
        return patch, self.stride if patch == self.patch else max(1, patch // 2)

    def descriptors(self, x: torch.Tensor) -> torch.Tensor:
        """PCA-reduced local descriptors, with positions if ``spatial``: (N, P, pca_dims [+ 2]) float64."""
        windows, grid = dense_patches(x, *self.window_)
        n, p, f = windows.shape
        reduced = ((windows.reshape(n * p, f).double() - self.patch_mean_) @ self.components_).view(n, p, -1)
        if not self.spatial:
            return reduced
        return torch.cat([reduced, grid.expand(len(x), *grid.shape)], dim=-1)

    def fit(self, x: torch.Tensor) -> FisherVectorEncoder:
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        self.window_ = self._window(*x.shape[-2:])
        windows, _ = dense_patches(x, *self.window_)  # (N, P, F)
        n, p, f = windows.shape
        generator = torch.Generator().manual_seed(self.seed)
        take = torch.randperm(n * p, generator=generator)[: self.max_descriptors]
        sample = windows.reshape(n * p, f)[take].double()  # (M, F)
        self.patch_mean_ = sample.mean(0)
        centred = sample - self.patch_mean_
        dims = min(self.pca_dims, f)
        _, eigvecs = torch.linalg.eigh(centred.T @ centred)  # ascending
        self.components_ = eigvecs[:, -dims:].flip(1)  # (F, dims)
        descriptors = self.descriptors(x).reshape(n * p, -1)[take].numpy()
        with threadpool_limits(limits=1):  # many small BLAS calls: robust on a busy machine, as the probes
            gmm = GaussianMixture(
                self.modes, covariance_type="diag", reg_covar=1e-4, max_iter=self.gmm_iter, random_state=self.seed
            ).fit(descriptors)
        self.weights_, self.means_, self.variances_ = gmm.weights_, gmm.means_, gmm.covariances_
        return self

    def transform(self, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise RuntimeError("FisherVectorEncoder.transform called before fit")
        out = [
            fisher_vectors(
                self.descriptors(x[i : i + batch_size]), self.weights_, self.means_, self.variances_, True, self.alpha
            )
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out).astype(np.float32)

    @property
    def dims(self) -> int:
        d = self.means_.shape[1]
        return self.modes * (2 * d + 1)
