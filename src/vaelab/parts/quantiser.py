"""Vector quantisation (van den Oord et al. 2017, "Neural Discrete Representation Learning", section 3): the
encoder's output z_e (B, M * d) is read as M vectors of d dimensions, each replaced by its nearest of K codebook
vectors e_1..e_K, z_q = e_{k(m)}, k(m) = argmin_j ||z_e,m - e_j||^2. The decoder sees z_q; the gradient at z_q
is passed to z_e unchanged (straight-through, eq. 2's sg). The codebook learns from ||sg[z_e] - e||^2, or from
exponential moving averages of the vectors assigned to each code (appendix A.1), and the encoder commits to its
codes with beta ||z_e - sg[e]||^2 (eq. 3). Per image: summed over the M * d dimensions, averaged over the batch.

``CodePrior`` is the prior the codes are drawn from: an autoregressive model of the M code indices (a MADE,
Germain et al. 2015: masked dense layers so that the logits of position m see only the indices before m),
trained beside the autoencoder on the detached indices, as the paper fits its PixelCNN to the codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .flows import MaskedLinear
from .latent import LatentSpec
from .noise import Generator
from .objective import Pass
from .posteriors import Distribution, categorical_sample
from .priors import Prior


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The index of the nearest codebook vector to each vector of z (..., d), codebook (K, d): (...,) int64,
    argmin_j ||z||^2 - 2 <z, e_j> + ||e_j||^2 (the first on ties)."""
    distances = z.pow(2).sum(-1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(-1)  # (..., K)
    return distances.argmin(-1)


def perplexity(indices: torch.Tensor, size: int) -> torch.Tensor:
    """exp(H(p)) of the codes' frequencies p in a batch of indices (any shape), H in nats: K when every code of
    the K is used equally, 1 when one code takes all."""
    p = torch.bincount(indices.flatten(), minlength=size).double() / indices.numel()  # (K,)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum()).float()


@dataclass
class Quantised(Distribution):
    """The quantised code of a batch: z_e and z_q (B, M * d), the code indices (B, M) into a codebook of
    ``size`` vectors. A point code (no density); its draw is sg[z_q] + z_e - sg[z_e]: exactly z_q, whose
    gradient is passed to z_e unchanged (the codebook learns from its own loss only)."""

    z_e: torch.Tensor
    z_q: torch.Tensor
    indices: torch.Tensor
    size: int
    has_density = False

    def code_indices(self) -> tuple[torch.Tensor, int]:
        return self.indices, self.size

    @property
    def mean(self) -> torch.Tensor:
        return self.z_q

    def rsample(self, generator: Generator = None, k: int | None = None) -> torch.Tensor:
        z = self.z_q.detach() + (self.z_e - self.z_e.detach())  # straight-through: exactly z_q, gradient to z_e
        return z if k is None else z.expand(k, *z.shape)

    def rsample_log_prob(self, generator: Generator = None, k: int | None = None):
        return self.rsample(generator, k), None

    def outputs(self) -> dict[str, torch.Tensor]:
        return {}


class VectorQuantiser(nn.Module):
    """Encoder outputs (B, positions * dim) -> ``Quantised`` against a codebook of ``size`` vectors of ``dim``.
    ``ema_decay`` > 0: the codebook is not a parameter but follows moving averages, in training (appendix A.1):
    N_j <- g N_j + (1 - g) n_j, m_j <- g m_j + (1 - g) sum_{i: k(i) = j} z_e,i, e_j = m_j / N_j, with n_j the
    batch's vectors assigned to code j (N starts at 1 and m at e, so an unused code keeps its vector)."""

    def __init__(self, positions: int, dim: int, size: int, ema_decay: float = 0.0):
        super().__init__()
        self.positions, self.dim, self.size, self.ema_decay = positions, dim, size, ema_decay
        self.spec, self.n_params, self.has_density = LatentSpec(positions * dim), positions * dim, False
        initial = torch.randn(size, dim)  # (K, d); N(0, 1) met early codes of any scale better than U(+-1/K)
        if ema_decay > 0:
            self.register_buffer("codebook", initial)
            self.register_buffer("ema_count", torch.ones(size))
            self.register_buffer("ema_sum", initial.clone())
        else:
            self.codebook = nn.Parameter(initial)

    def forward(self, params: torch.Tensor, step: int = 0) -> Quantised:
        z_e = params.unflatten(-1, (self.positions, self.dim))  # (B, M, d)
        indices = nearest_codes(z_e.detach(), self.codebook.detach())  # (B, M)
        if self.training and self.ema_decay > 0:
            self.ema_update(z_e.detach(), indices)
        z_q = self.codebook[indices]  # (B, M, d)
        return Quantised(params, z_q.flatten(1), indices, self.size)

    @torch.no_grad()
    def ema_update(self, z_e: torch.Tensor, indices: torch.Tensor) -> None:
        """One moving-average step of the codebook from vectors z_e (..., d) assigned to codes ``indices``."""
        one_hot = F.one_hot(indices.flatten(), self.size).to(z_e.dtype)  # (n, K)
        g = self.ema_decay
        self.ema_count.mul_(g).add_(one_hot.sum(0), alpha=1 - g)
        self.ema_sum.mul_(g).add_(one_hot.T @ z_e.reshape(-1, self.dim), alpha=1 - g)
        self.codebook.copy_(self.ema_sum / self.ema_count.clamp_min(1e-5).unsqueeze(-1))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Decoder inputs (..., positions * dim) of code indices (..., positions)."""
        return self.codebook[indices].flatten(-2)


# --- the objective's terms, per image in nats-like squared distances, averaged over the batch ---


def codebook_loss(q: Quantised) -> torch.Tensor:
    """||sg[z_e] - e||^2 summed over the code's dimensions, averaged over the batch: moves the codebook."""
    return (q.z_e.detach() - q.z_q).pow(2).sum(-1).mean()


def commitment_loss(q: Quantised) -> torch.Tensor:
    """||z_e - sg[e]||^2 summed over the code's dimensions, averaged over the batch: the encoder's commitment,
    weighted by beta."""
    return (q.z_e - q.z_q.detach()).pow(2).sum(-1).mean()


@dataclass
class VQTerm:
    """A term of one training pass on the quantised factor ``factor`` of the posterior and its prior,
    ``weight * term(q, prior)``, logged as ``name`` (weight 0: logged only, e.g. the codebook's perplexity)."""

    name: str
    weight: float
    term: Callable[[Quantised, Prior], torch.Tensor]  # (the factor's posterior, its prior) -> scalar
    factor: str = "z"

    def __call__(self, p: Pass) -> torch.Tensor:
        return self.term(p.posterior.factors[self.factor], p.model.prior[self.factor])


def _codebook(q: Quantised, prior: Prior) -> torch.Tensor:
    return codebook_loss(q)


def _commitment(q: Quantised, prior: Prior) -> torch.Tensor:
    return commitment_loss(q)


def _prior_nll(q: Quantised, prior: CodePrior) -> torch.Tensor:
    return prior.nll(q.indices.detach()).mean()


def _perplexity(q: Quantised, prior: Prior) -> torch.Tensor:
    return perplexity(q.indices, q.size)


def _usage(q: Quantised, prior: Prior) -> torch.Tensor:
    return torch.tensor(len(torch.unique(q.indices)) / q.size)


def vq_terms(beta: float, ema: bool, factor: str = "z") -> list[VQTerm]:
    """The codebook loss (left out with an EMA codebook), beta * the commitment loss, the prior's NLL of the
    detached indices, and two statistics logged beside them: the batch's code perplexity and the fraction of
    the codebook it uses (module-level functions, so that a model pickles)."""
    terms = [] if ema else [VQTerm("codebook", 1.0, _codebook, factor)]
    return terms + [
        VQTerm("commitment", beta, _commitment, factor),
        VQTerm("prior_nll", 1.0, _prior_nll, factor),
        VQTerm("code_perplexity", 0.0, _perplexity, factor),
        VQTerm("codes_used", 0.0, _usage, factor),
    ]


# --- the prior over the code indices ---


def made_masks(positions: int, size: int, hidden: int) -> tuple[torch.Tensor, ...]:
    """MADE's masks (Germain et al. 2015, eq. 12-13) for one-hot inputs of ``positions`` categoricals of ``size``:
    input unit degrees 1..M (K units each), hidden degrees cycling 1..M-1, output degrees 1..M; a hidden unit sees
    inputs of degree <= its own, an output hidden units of degree strictly below its own. Returns (input->hidden,
    hidden->output), each (out, in)."""
    d_in = torch.arange(positions).repeat_interleave(size) + 1  # (M*K,)
    d_hidden = torch.arange(hidden) % max(positions - 1, 1) + 1  # (H,)
    first = (d_hidden[:, None] >= d_in[None, :]).float()
    second = (d_in[:, None] > d_hidden[None, :]).float()  # outputs have the inputs' degrees
    return first, second


class CodePrior(Prior):
    """p(k_1..k_M) = prod_m p(k_m | k_<m) over the code indices, a MADE with one hidden layer of ``hidden`` ReLU
    units; its draws are the codebook vectors of the drawn indices (the quantiser attached as the model's
    posterior factor ``factor``). The moments the sliders read are running moments of the training codes, as
    the AE's fitted prior."""

    def __init__(self, positions: int, dim: int, size: int, hidden: int = 256, factor: str = "z",
                 momentum: float = 0.01):  # fmt: skip
        super().__init__(LatentSpec(positions * dim))
        self.positions, self.size, self.factor, self.momentum, self.model = positions, size, factor, momentum, []
        first, second = made_masks(positions, size, hidden)
        self.hidden, self.out = MaskedLinear(first), MaskedLinear(second)
        self.register_buffer("mean", torch.zeros(positions * dim))
        self.register_buffer("var", torch.ones(positions * dim))

    def attach(self, model: nn.Module) -> None:
        self.model = [model]  # a reference, not a submodule: the model owns this prior

    @property
    def quantiser(self) -> VectorQuantiser:
        return self.model[0].posterior[self.factor]

    def logits(self, indices: torch.Tensor) -> torch.Tensor:
        """The logits (B, M, K) of p(k_m | k_<m) for code indices (B, M)."""
        x = F.one_hot(indices, self.size).flatten(1).to(self.mean.dtype)  # (B, M*K)
        return self.out(torch.relu(self.hidden(x))).view(len(indices), self.positions, self.size)

    def nll(self, indices: torch.Tensor) -> torch.Tensor:
        """-log p(k_1..k_M) per image, (B,), in nats."""
        return F.cross_entropy(self.logits(indices).transpose(1, 2), indices, reduction="none").sum(-1)

    @torch.no_grad()
    def sample_indices(self, n: int, generator: Generator = None, temperature: float = 1.0) -> torch.Tensor:
        """n index sequences (n, M), drawn position by position from softmax(logits / temperature)."""
        indices = torch.zeros(n, self.positions, dtype=torch.long, device=self.mean.device)
        for m in range(self.positions):
            logits = self.logits(indices)[:, m] / max(temperature, 1e-6)
            indices[:, m] = categorical_sample(logits, generator)
        return indices

    def sample(self, n: int, generator: Generator = None, temperature: float = 1.0) -> torch.Tensor:
        """n decoder inputs (n, M * d): the codebook vectors of drawn indices."""
        return self.quantiser.lookup(self.sample_indices(n, generator, temperature))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p of the indices of z's nearest codebook vectors, (...,)."""
        q = self.quantiser
        indices = nearest_codes(z.reshape(-1, self.positions, q.dim), q.codebook)
        return -self.nll(indices).view(z.shape[:-1])

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean, self.var.clamp_min(0).sqrt()

    @torch.no_grad()
    def observe(self, z: torch.Tensor) -> None:
        self.mean.lerp_(z.mean(0), self.momentum)
        if len(z) > 1:
            self.var.lerp_(z.var(0, unbiased=False), self.momentum)
