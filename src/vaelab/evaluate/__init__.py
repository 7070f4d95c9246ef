"""Evaluation of trained runs: likelihood bounds now; latent diagnostics and comparisons build on it."""

from .likelihood import elbo_per_image, evaluate_run, write_eval

__all__ = ["elbo_per_image", "evaluate_run", "write_eval"]
