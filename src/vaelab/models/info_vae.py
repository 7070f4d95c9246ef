"""InfoVAE (Zhao et al. 2019, "InfoVAE: balancing learning and inference in variational autoencoders") and
WAE-MMD (Tolstikhin et al. 2018, "Wasserstein auto-encoders"): the MMD between the batch's codes and as many
prior draws (parts/mmd.py) stands for a divergence between the aggregate posterior q(z) and p(z) = N(0, I);
logged as ``train_mmd``.

InfoVAE: recon + (1 - alpha) KL + (alpha + lambda - 1) MMD, a Gaussian posterior (the paper's objective with
its divergence D the MMD). WAE-MMD: recon + lambda MMD with a deterministic encoder: a point code, no density
(eval reports no IW-NLL), sampled through the N(0, I) prior its codes are held to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import ConfigError
from ..nets import Nets
from ..parts import GaussianHead, GaussianPrior, Objective, PointHead, PriorMMD
from ..parts.mmd import Kernel
from ..settings import setting
from .config import ModelConfig
from .model import Model
from .registry import register
from .vae import VAEConfig

WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # the WAE paper's kernel scales


@dataclass
class KernelKeys:
    """The MMD's kernel keys, shared by InfoVAE and WAE."""

    kernel: Kernel = setting("imq", "the MMD's kernel: rbf exp(-|a - b|^2 / C), imq C / (C + |a - b|^2)")
    kernel_scales: list[float] = setting(
        list(WAE_SCALES), "kernel scales s, C = 2 * latent_dim * s; the kernels are summed"
    )

    def validate(self) -> None:
        super().validate()  # the model config this is mixed into
        if not self.kernel_scales or min(self.kernel_scales) <= 0:
            raise ConfigError(f"model.kernel_scales must list scales > 0, e.g. [1.0]; got {self.kernel_scales}")


@dataclass
class InfoVAEConfig(KernelKeys, VAEConfig):
    name: str = "info-vae"
    kernel: Kernel = "rbf"
    kernel_scales: list[float] = field(default_factory=lambda: [1.0])
    alpha: float = setting(0.0, "the KL's weight is 1 - alpha (at most 1)")
    lambda_mmd: float = setting(10.0, "the MMD's weight is alpha + lambda_mmd - 1")

    def validate(self) -> None:
        super().validate()
        if self.alpha > 1 or self.alpha + self.lambda_mmd < 1:
            raise ConfigError("model.alpha must be <= 1 and model.alpha + model.lambda_mmd >= 1 (the weights "
                              f"1 - alpha of the KL and alpha + lambda - 1 of the MMD); got {self.alpha}, "
                              f"{self.lambda_mmd}")  # fmt: skip

    def head(self) -> GaussianHead:
        return GaussianHead(self.latent_dim)

    def objective(self) -> Objective:
        kl = replace(self.kl_weight(), beta=1 - self.alpha)
        mmd = PriorMMD(self.alpha + self.lambda_mmd - 1, self.kernel, self.kernel_scales)
        return Objective({"z": kl}, regularisers=[mmd])


@dataclass
class WAEConfig(KernelKeys, ModelConfig):
    name: str = "wae"
    lambda_mmd: float = setting(10.0, "the MMD's weight (the paper's lambda on MNIST)")

    def validate(self) -> None:
        super().validate()
        if self.lambda_mmd < 0:
            raise ConfigError(f"model.lambda_mmd must be >= 0; got {self.lambda_mmd}")

    def head(self) -> PointHead:
        return PointHead(self.latent_dim)

    def objective(self) -> Objective:
        return Objective(regularisers=[PriorMMD(self.lambda_mmd, self.kernel, self.kernel_scales)])


@register("info-vae", InfoVAEConfig, "InfoVAE: -ELBO plus an MMD between q(z) and the prior (Zhao et al. 2019)")
@register("wae", WAEConfig, "WAE-MMD: point codes held to N(0, I) by an MMD (Tolstikhin et al. 2018)")
def mmd_model(config: InfoVAEConfig | WAEConfig, image_shape, num_classes=None, nets: Nets | None = None) -> Model:
    prior = GaussianPrior(config.latent_dim)
    return Model(config, image_shape, num_classes, nets=nets, posterior={"z": config.head()}, prior={"z": prior},
                 objective=config.objective())  # fmt: skip
