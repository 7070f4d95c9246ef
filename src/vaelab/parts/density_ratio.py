"""The total correlation by the density-ratio trick (FactorVAE, Kim & Mnih 2018): a discriminator D tells codes
drawn from q(z) from codes drawn from prod_d q(z_d), and TC = KL(q(z) || prod_d q(z_d)) ~= E_q(z)[log D(z) -
log(1 - D(z))], its logit. Per image, in nats.

The discriminator trains beside the model on its own cross-entropy, with optimiser settings of its own
(``optimizer_settings``: a parameter group of the training's optimiser, ``Model.parameter_groups``). Both of its
terms are regularisers of one pass, so one backward pass gives each its gradient: the TC estimate reaches the
encoder only (the discriminator's weights are read detached) and the cross-entropy the discriminator only (the
codes are detached); the logged training loss is the sum of the two objectives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .noise import Generator, rand_like_rows
from .objective import Pass


def permute_dims(z: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Each dimension of the codes z (B, D) shuffled across the batch on its own: draws from the product of the
    batch's marginals, prod_d q(z_d) (Kim & Mnih 2018, algorithm 1, which permutes a second batch's codes; the
    batch's own, as in disentanglement_lib)."""
    order = rand_like_rows(tuple(z.shape), z, generator).argsort(dim=0)  # (B, D): a permutation per dimension
    return z.gather(0, order)


class TCDiscriminator(nn.Module):
    """An MLP (leaky ReLU 0.2, the paper's) from codes (B, D) to two logits: drawn from q(z) (0) or from
    prod_d q(z_d) (1). ``terms`` gives, for a pass, ``tc``: mean_b [logit_0 - logit_1](z_b) = mean_b log(D / (1 -
    D)), and ``discriminator``: its cross-entropy on the batch's codes and their ``permute_dims``, averaged over
    the two sets."""

    def __init__(self, size: int, hidden: list[int], lr: float, betas: tuple[float, float], factor: str = "z"):
        super().__init__()
        widths = [size, *hidden]
        layers = [m for a, b in zip(widths, widths[1:], strict=False) for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 2))
        self.optimizer_settings = {"lr": lr, "betas": tuple(betas)}
        self.factor = factor

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def terms(self, p: Pass) -> dict[str, torch.Tensor]:
        """Both terms of the pass, computed once (``Pass.shared``)."""
        key = f"tc_discriminator:{self.factor}"
        if key not in p.shared:
            z = p.posterior.split(p.z)[self.factor]  # (B, D)
            frozen = {name: w.detach() for name, w in self.named_parameters()}
            logits = functional_call(self, frozen, (z,))  # the encoder's gradient, none to the discriminator
            codes = z.detach()
            both = self(torch.cat([codes, permute_dims(codes, p.generator)]))  # (2B, 2)
            labels = torch.arange(2, device=z.device).repeat_interleave(len(z))  # 0: q(z), 1: permuted
            p.shared[key] = {"tc": (logits[:, 0] - logits[:, 1]).mean(), "discriminator": F.cross_entropy(both, labels)}
        return p.shared[key]


@dataclass(eq=False)
class DiscriminatorTerm:
    """weight * one of a ``TCDiscriminator``'s terms (``name``: tc or discriminator), logged as its name."""

    name: str
    weight: float
    discriminator: TCDiscriminator

    def __call__(self, p: Pass) -> torch.Tensor:
        return self.discriminator.terms(p)[self.name]
