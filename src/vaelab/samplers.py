"""Post-hoc sampling: a Gaussian mixture fitted to the posterior means of a run's training images, the ex-post
density of Ghosh et al. (2020) and the first stage of Dai & Wipf's (2019) argument: where the aggregate posterior
is far from the prior (AEs, RAEs, VAEs with inactive units), drawing from a density of the codes themselves gives
samples closer to the data. Fitted once per run, kept in RUN/samplers/gmm.safetensors."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save

from .checkpoint import atomic_write_bytes
from .evaluate.latents import STORED, encode_split
from .parts.noise import Generator

GMM_FILE = "samplers/gmm.safetensors"
COMPONENTS = 10  # Ghosh et al.'s choice for MNIST-like data


def fitted_gmm(run) -> dict[str, torch.Tensor]:
    """weights (K,), means (K, D) and Cholesky factors (K, D, D) of a full-covariance mixture of K Gaussians fitted
    (scikit-learn's EM, seed 0) to the continuous posterior means of the training images; read from the run
    folder when fitted before."""
    path = run.path / GMM_FILE
    if path.is_file():
        return load_file(path)
    from sklearn.mixture import GaussianMixture

    x, y = run.data.split("train")
    codes = encode_split(run.model, x, y if run.conditional else None, STORED).continuous_means  # (N, D)
    gmm = GaussianMixture(min(COMPONENTS, len(codes)), covariance_type="full", reg_covar=1e-5, random_state=0)
    gmm.fit(codes)
    covariances = torch.from_numpy(gmm.covariances_)
    fitted = {"weights": torch.from_numpy(gmm.weights_).float(), "means": torch.from_numpy(gmm.means_).float(),
              "scale_tril": torch.linalg.cholesky(covariances).float().contiguous()}  # fmt: skip
    atomic_write_bytes(path, save(fitted))
    return fitted


@torch.no_grad()
def gmm_latents(run, n: int, generator: Generator, temperature: float = 1.0) -> torch.Tensor:
    """n decoder inputs (n, code_size): the continuous part from the fitted mixture, z = m_k + T L_k eps, the
    categorical codes (JointVAE) from the model's prior."""
    model = run.model
    gmm = {k: v.to(model.device) for k, v in fitted_gmm(run).items()}
    k = torch.multinomial(gmm["weights"], n, replacement=True, generator=generator)  # (n,)
    eps = torch.randn(n, model.spec.continuous, 1, generator=generator, device=model.device)
    continuous = gmm["means"][k] + temperature * (gmm["scale_tril"][k] @ eps).squeeze(-1)  # (n, D)
    codes = model.spec.split(model.prior.sample(n, generator))[1]
    return torch.cat([continuous, *codes], dim=-1)
