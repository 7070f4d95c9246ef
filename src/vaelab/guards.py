"""Numerical guards for training: find a non-finite loss or gradient, name its source, and stop or skip.

On a problem the guard writes ``failure.json`` (step, epoch, batch, the batch's dataset indices, the
non-finite terms and latent dimensions) next to the run's files; with ``train.on_nonfinite=stop`` it
raises a TrainingError, with ``skip`` it drops the batch and raises only after ``train.max_skips``
skipped batches in a row. Checkpoints are never touched here: the last good one stays.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .checkpoint import atomic_write_text
from .errors import TrainingError

FAILURE_FILE = "failure.json"


@dataclass
class Problem:
    """What was non-finite in one batch."""

    where: str  # "loss" or "gradient"
    terms: list[str]  # the non-finite loss terms, or the parameters with non-finite gradients
    latent_dims: list[int] = field(default_factory=list)  # posterior-mean dimensions that were non-finite

    def describe(self) -> str:
        names = " and ".join(self.terms[:4]) + (f" (+{len(self.terms) - 4} more)" if len(self.terms) > 4 else "")
        kind = "term" if self.where == "loss" else "gradient"
        text = f"non-finite {names} {kind}{'s' if len(self.terms) > 1 else ''}"
        return text + (f" (latent dimensions {self.latent_dims})" if self.latent_dims else "")


def loss_problem(named: dict[str, torch.Tensor]) -> Problem | None:
    """None if the loss is finite, else which of its terms are not (one sync per step)."""
    if torch.isfinite(named["loss"]):
        return None
    bad = [k for k, v in named.items() if k != "loss" and not torch.isfinite(v)]
    return Problem("loss", bad or ["loss"])


def gradient_problem(model: torch.nn.Module, clip: float) -> tuple[Problem | None, bool]:
    """Clip the global gradient L2 norm to ``clip`` (when > 0) and check that it is finite: (the problem, naming
    the parameters whose gradients are not finite, or None; whether the norm was above ``clip``)."""
    params = [p for p in model.parameters() if p.grad is not None]
    grads = [p.grad for p in params]
    if clip > 0:  # one pass over the gradients, the norm read once for the test and the scale
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item()
        finite = math.isfinite(norm)
    else:  # only finiteness: AMP's check, one multithreaded pass (2.4x faster than the norms; x 1.0 is exact)
        found = torch.zeros(1, device=grads[0].device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones(1, device=grads[0].device))
        finite = found.item() == 0
    if not finite:
        names = {id(p): n for n, p in model.named_parameters()}
        return Problem("gradient", [names[id(p)] for p in params if not torch.isfinite(p.grad).all()] or ["?"]), False
    clipped = clip > 0 and norm > clip
    if clipped:
        torch._foreach_mul_(grads, clip / (norm + 1e-6))
    return None, clipped


@torch.no_grad()
def nonfinite_latent_dims(model, x: torch.Tensor, y: torch.Tensor | None) -> list[int]:
    """Dimensions of the posterior mean that are non-finite for some image of the batch."""
    try:
        mean = model.encode(x, y).mean
    except Exception:  # diagnosis must never hide the original problem
        return []
    return torch.nonzero(~torch.isfinite(mean).all(0)).flatten().tolist()


class NonFiniteGuard:
    """Applies ``train.on_nonfinite`` (stop | skip) and ``train.max_skips``, writing failure.json."""

    def __init__(self, run_dir: Path | None, policy: str, max_skips: int, lr: float):
        self.run_dir, self.policy, self.max_skips, self.lr = run_dir, policy, max_skips, lr
        self.in_a_row = 0

    def passed(self) -> None:
        self.in_a_row = 0

    def handle(self, problem: Problem, *, step: int, epoch: int, batch: int, indices: torch.Tensor,
               last_good_epoch: int) -> None:  # fmt: skip
        """Record the problem; raise TrainingError to stop, or return to skip the batch."""
        self.in_a_row += 1
        record = {
            "step": step,
            "epoch": epoch,
            "batch": batch,
            "batch_indices": indices.tolist(),
            **asdict(problem),
            "policy": self.policy,
            "skipped_in_a_row": self.in_a_row,
        }
        if self.run_dir is not None:  # None: a process other than rank 0 of a multi-process run
            atomic_write_text(self.run_dir / FAILURE_FILE, json.dumps(record, indent=1) + "\n")
        if self.policy == "skip" and self.in_a_row < self.max_skips:
            return
        kept = f"the last good checkpoint (epoch {last_good_epoch}) is kept" if last_good_epoch else "no epoch finished"
        why = f" ({self.in_a_row} batches in a row)" if self.policy == "skip" else ""
        raise TrainingError(
            f"{problem.describe()} at step {step} (epoch {epoch}, batch {batch}){why}; {kept} in {self.run_dir}; "
            f"details in {FAILURE_FILE}. Check the data for NaN, lower train.lr (now {self.lr}), set train.grad_clip, "
            "or train.on_nonfinite=skip"
        )
