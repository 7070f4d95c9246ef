"""Evaluation of trained runs: likelihood bounds, latent diagnostics, a Fréchet distance, Fisher vectors and
comparisons of models. See docs/evaluation.md."""

from .likelihood import elbo_per_image, evaluate_run, iw_nll_per_image, write_eval
from .suite import run_evaluation

__all__ = ["elbo_per_image", "evaluate_run", "iw_nll_per_image", "run_evaluation", "write_eval"]
