"""Post-hoc sampling from a density fitted to the posterior means of a run's training images: where the aggregate
posterior is far from the prior (AEs, RAEs, VAEs with inactive units), drawing from a density of the codes
themselves gives samples closer to the data. ``gmm``: a Gaussian mixture, the ex-post density of Ghosh et al.
(2020); ``two-stage``: a second VAE trained on the codes, the two-stage VAE of Dai & Wipf (2019). Each is fitted
once per run and kept in RUN/samplers/."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save
from torch import nn

from .checkpoint import atomic_write_bytes
from .errors import DataError
from .parts.kl import closed_form_kl
from .parts.noise import Generator
from .parts.posteriors import LOG_2PI, DiagonalGaussian
from .parts.priors import GaussianPrior

GMM_FILE = "samplers/gmm.safetensors"
TWO_STAGE_FILE = "samplers/two-stage.safetensors"
COMPONENTS = 10  # Ghosh et al.'s choice for MNIST-like data
TWO_STAGE_HIDDEN, TWO_STAGE_STEPS, TWO_STAGE_BATCH = 256, 3000, 256


def training_codes(run, sampler: str = "post-hoc") -> torch.Tensor:
    """The continuous posterior means of the run's training images, (N, D) float64; a DataError when there are
    too few (under 2) to fit ``sampler`` to."""
    from .evaluate.latents import STORED, encode_split  # here: evaluate/ measures these samplers (a cycle)

    x, y = run.data.split("train")
    if len(x) < 2:
        raise DataError(
            f"the {sampler} sampler is fitted to the training images' codes and needs 2 or more; {run.path} has "
            f"{len(x)}: train on more images (or lower data.val_fraction, data.test_fraction), or use --prior model"
        )
    return torch.from_numpy(encode_split(run.model, x, y if run.conditional else None, STORED).continuous_means)


def fitted_gmm(run) -> dict[str, torch.Tensor]:
    """weights (K,), means (K, D) and Cholesky factors (K, D, D) of a full-covariance mixture of K Gaussians fitted
    (scikit-learn's EM, seed 0) to the continuous posterior means of the training images; read from the run
    folder when fitted before."""
    path = run.path / GMM_FILE
    if path.is_file():
        return load_file(path)
    from sklearn.mixture import GaussianMixture

    codes = training_codes(run, "gmm").numpy()  # (N, D)
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


class SecondStage(nn.Module):
    """The second VAE of Dai & Wipf (2019, section 4) on the standardised codes: u ~ N(0, I_D) decoded to
    N(g(u), gamma I) with a learned gamma, its encoder q(u|z) a diagonal Gaussian; MLPs of width ``hidden``."""

    def __init__(self, size: int, hidden: int = TWO_STAGE_HIDDEN):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * size))  # fmt: skip
        self.decoder = nn.Sequential(nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, size))  # fmt: skip
        self.log_gamma = nn.Parameter(torch.zeros(()))
        self.register_buffer("shift", torch.zeros(size))  # the codes' mean and std: the stage sees z-scores
        self.register_buffer("scale", torch.ones(size))

    def loss(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The mean -ELBO of standardised codes z (B, D), in nats: ||z - g(u)||^2 / (2 gamma) + D/2 log(2 pi gamma)
        + KL(q(u|z) || N(0, I))."""
        q = DiagonalGaussian.from_params(self.encoder(z))
        squared = (z - self.decoder(q.rsample(generator))).pow(2).sum(-1)
        nll = 0.5 * (squared / self.log_gamma.exp() + z.shape[-1] * (LOG_2PI + self.log_gamma))
        return (nll + closed_form_kl(q, GaussianPrior(z.shape[-1])).sum(-1)).mean()

    def codes(self, u: torch.Tensor) -> torch.Tensor:
        return self.decoder(u) * self.scale + self.shift


def fitted_two_stage(run) -> SecondStage:
    """The second stage trained (Adam 1e-3, TWO_STAGE_STEPS steps, seed 0) on the run's training codes, or read
    from the run folder."""
    path = run.path / TWO_STAGE_FILE
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        stage = SecondStage(run.model.spec.continuous)
    if path.is_file():
        stage.load_state_dict(load_file(path))
        return stage.eval()
    codes = training_codes(run, "two-stage").float()
    stage.shift.copy_(codes.mean(0)), stage.scale.copy_(codes.std(0).clamp_min(1e-6))
    codes = (codes - stage.shift) / stage.scale
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(stage.parameters(), lr=1e-3)
    with torch.enable_grad():  # callers may sample under no_grad
        for _ in range(TWO_STAGE_STEPS):
            optimizer.zero_grad()
            batch = codes[torch.randint(len(codes), (TWO_STAGE_BATCH,), generator=generator)]
            stage.loss(batch, generator).backward()
            optimizer.step()
    atomic_write_bytes(path, save({k: v.contiguous() for k, v in stage.state_dict().items()}))
    return stage.eval()


@torch.no_grad()
def two_stage_latents(run, n: int, generator: Generator, temperature: float = 1.0) -> torch.Tensor:
    """n decoder inputs (n, code_size): u ~ N(0, T^2 I) through the second stage's decoder, the categorical codes
    (JointVAE) from the model's prior."""
    model = run.model
    stage = fitted_two_stage(run).to(model.device)
    u = temperature * torch.randn(n, model.spec.continuous, generator=generator, device=model.device)
    codes = model.spec.split(model.prior.sample(n, generator))[1]
    return torch.cat([stage.codes(u), *codes], dim=-1)


POST_HOC = {"gmm": gmm_latents, "two-stage": two_stage_latents}  # sampler name -> (run, n, generator, T) -> z
