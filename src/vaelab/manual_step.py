"""The training step of MLP VAEs written out by hand: forward pass and gradients without autograd.

Why by hand: the default model's step is 17 small matmuls (batch 128, widths 784-512-512-32); on a 2-core CPU
everything else (the operations autograd dispatches around them, Adam, the binarisation) took a third to a
half of the step (docs/performance.md). This step's forward and backward dispatch 96 operations, without a
graph, where autograd's dispatch 148.
``train.step=auto`` uses it for the models it covers (``uncovered`` says why not otherwise); tests check its
loss and gradients against autograd's. Module and tensor hooks would not run, so a model with hooks is not covered.

Network (nets.mlp_encoder_body, nets.mlp_decoder): h = relu(h W^T + b) per hidden layer; the encoder head
gives mu and a raw logvar, clamped to [LOGVAR_MIN, LOGVAR_MAX]; z = mu + exp(logvar / 2) eps; the decoder's
ReLU stack ends in Bernoulli logits l. Per image (batch means, B images):

    recon = sum_p softplus(l_p) - x_p l_p,    kl_j = (mu_j^2 + e^logvar_j - 1 - logvar_j) / 2,
    total = model.objective(recon, kl, step)  (the -ELBO, beta-VAE, capacity; warm-up, free bits)

Gradients, with w_r = d total / d recon and w_j = d total / d kl_j taken from the objective by autograd
on its D + 1 scalar inputs:

    d/dl = w_r (sigmoid(l) - x) / B
    d/dmu_j = dz_j + w_j mu_j / B,    d/dlogvar_j = dz_j eps_j std_j / 2 + w_j (e^logvar_j - 1) / (2B)
    Linear y = a W^T + b:  dW = dy^T a,  db = sum_b dy,  da = dy W  (times a > 0 when a is a ReLU output)

In bf16 the matmuls and ReLUs run in bfloat16 as under autocast, and the posterior, the KL, the loss and
d/dl in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .distributions import LOGVAR_MAX, LOGVAR_MIN, BernoulliLikelihood, Generator, randn_like_rows

NETWORK_METHODS = ("loss", "encode", "decode", "encoder_params", "encoder_outputs", "code_size")  # what VAE.loss runs


def uncovered(model: nn.Module) -> str | None:
    """Why the manual step cannot train ``model`` (None if it can): it covers unconditional MLP VAEs with a
    Bernoulli likelihood, their float32 parameters all in the Linear layers and trained, no hooks, and any
    objective of the reconstruction term and the per-dimension KL (``VAE.objective`` and its overrides)."""
    from .models.vae import VAE

    name = getattr(getattr(model, "config", None), "name", type(model).__name__)
    changed = [m for m in NETWORK_METHODS if getattr(type(model), m, None) is not getattr(VAE, m)]
    if not isinstance(model, VAE) or "loss" in changed:
        return f"model {name} has an objective of its own"
    if changed:
        return f"model {name} defines its own {changed[0]}"
    if model.config.net != "mlp":
        return f"model.net={model.config.net}"
    if not isinstance(model.likelihood, BernoulliLikelihood):
        return f"model.likelihood={model.config.likelihood}"
    if model.n_conditions:
        return "model.conditional=true"
    if not _plain_mlp(model):
        return "its network is not made of Flatten, Linear (with bias) and ReLU layers"
    params = list(model.parameters())
    linear = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in (m.weight, m.bias)}
    if any(id(p) not in linear or p.dtype != torch.float32 or not p.requires_grad for p in params):
        return "it has parameters outside its Linear layers, frozen or not float32"
    if any(p._backward_hooks for p in params) or any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks for m in model.modules()
    ):
        return "it has hooks"
    return None


def _plain_mlp(model: nn.Module) -> bool:
    """Whether the encoder is Flatten, then (Linear, ReLU) pairs, and the decoder (Linear, ReLU) pairs, then
    Linear and Unflatten: the networks nets.mlp_encoder_body and nets.mlp_decoder build."""
    dense, decoder = [type(m) for m in model.encoder.dense], [type(m) for m in model.decoder]
    return (
        isinstance(model.encoder.features, nn.Flatten)
        and dense == [nn.Linear, nn.ReLU] * (len(dense) // 2)
        and decoder == [nn.Linear, nn.ReLU] * (len(decoder) // 2 - 1) + [nn.Linear, nn.Unflatten]
        and all(m.bias is not None for m in model.modules() if isinstance(m, nn.Linear))
    )


class ManualStep:
    """Computes a VAE's training objective and writes its gradients into the parameters' ``.grad``; called
    like ``Objective`` (``step(x, y, step, noise)`` -> named loss terms, detached)."""

    def __init__(self, model: nn.Module, precision: str):
        reason = uncovered(model)
        if reason is not None:
            raise ValueError(f"the manual step does not cover this model: {reason}")
        self.model = model
        self.encoder = [m for m in model.encoder.dense if isinstance(m, nn.Linear)] + [model.encoder_head]
        self.decoder = [m for m in model.decoder if isinstance(m, nn.Linear)]
        self.params = [p for layer in self.encoder + self.decoder for p in (layer.weight, layer.bias)]
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.low = [torch.empty_like(p, dtype=self.dtype) for p in self.params] if precision == "bf16" else None

    def weights(self) -> list[torch.Tensor]:
        """The parameters in the compute dtype (one foreach copy per step in bf16)."""
        if self.low is None:
            return [p.detach() for p in self.params]
        torch._foreach_copy_(self.low, [p.detach() for p in self.params])
        return self.low

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, step: int, noise: Generator) -> dict[str, torch.Tensor]:
        weights = self.weights()
        n_enc = len(self.encoder)
        enc, dec = weights[: 2 * n_enc], weights[2 * n_enc :]
        batch = len(x)
        target = x.flatten(1)

        # forward, keeping each Linear's input
        enc_in, h = [], target.to(self.dtype)
        for i in range(0, len(enc) - 2, 2):
            enc_in.append(h)
            h = torch.addmm(enc[i + 1], h, enc[i].t()).relu_()
        enc_in.append(h)
        mu, raw = torch.addmm(enc[-1], h, enc[-2].t()).float().chunk(2, dim=-1)
        logvar = raw.clamp(LOGVAR_MIN, LOGVAR_MAX)
        std = torch.exp(0.5 * logvar)
        eps = randn_like_rows(tuple(mu.shape), mu, noise)
        z = torch.addcmul(mu, std, eps)
        dec_in, g = [], z.to(self.dtype)
        for i in range(0, len(dec) - 2, 2):
            dec_in.append(g)
            g = torch.addmm(dec[i + 1], g, dec[i].t()).relu_()
        dec_in.append(g)
        logits = torch.addmm(dec[-1], g, dec[-2].t()).float()

        var = std * std
        recon = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / batch
        kl_per_dim = (mu * mu + var - logvar).mean(0).sub_(1).mul_(0.5)
        total, extras, w_recon, w_kl = self.objective_weights(recon, kl_per_dim, step)

        # backward
        grads: list[torch.Tensor | None] = [None] * len(weights)
        d = torch.sigmoid(logits).sub_(target).mul_(w_recon / batch).to(self.dtype)
        dz = self.linear_backward(d, dec_in, dec, grads, 2 * n_enc, first_needs_input=True).float()
        scale = w_kl / batch
        dmu = torch.addcmul(dz, mu, scale)
        dlogvar = (dz * eps * std + scale * (var - 1)).mul_(0.5).mul_(logvar == raw)  # clamp: no gradient outside
        d = torch.cat([dmu, dlogvar], dim=-1).to(self.dtype)
        self.linear_backward(d, enc_in, enc, grads, 0, first_needs_input=False)
        for p, grad in zip(self.params, grads, strict=True):
            p.grad = grad if grad.dtype == p.dtype else grad.to(p.dtype)
        return {"loss": total, "recon": recon, "kl": kl_per_dim.sum(), **extras}

    @staticmethod
    def linear_backward(
        d: torch.Tensor, inputs: list[torch.Tensor], weights: list[torch.Tensor], grads: list[torch.Tensor | None],
        offset: int, first_needs_input: bool,
    ) -> torch.Tensor | None:  # fmt: skip
        """Back through a ReLU stack of Linear layers from the gradient ``d`` of its output: writes dW, db
        into ``grads[offset:]`` and returns the gradient of the stack's input (None if not needed)."""
        for layer in reversed(range(len(inputs))):
            a, w = inputs[layer], weights[2 * layer]
            grads[offset + 2 * layer] = d.t().mm(a)
            grads[offset + 2 * layer + 1] = d.sum(0)
            if layer == 0 and not first_needs_input:
                return None
            d = d.mm(w)
            if layer > 0:
                d = torch.ops.aten.threshold_backward(d, a, 0)
        return d

    def objective_weights(
        self, recon: torch.Tensor, kl_per_dim: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """(total, extras, d total / d recon, d total / d kl_per_dim) of the model's objective at ``step``."""
        r = recon.detach().requires_grad_()
        k = kl_per_dim.detach().requires_grad_()
        with torch.enable_grad():
            total, extras = self.model.objective(r, k, step)
            w_recon, w_kl = torch.autograd.grad(total, (r, k), allow_unused=True, materialize_grads=True)
        return total.detach(), {n: v.detach() for n, v in extras.items()}, w_recon, w_kl
