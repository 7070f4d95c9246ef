"""Schedules: pure functions of the optimisation step (no counters hidden in models)."""

from __future__ import annotations


def linear_ramp(step: int, start: float, end: float, steps: int) -> float:
    """``start`` at step 0, rising (or falling) linearly to ``end`` at ``steps``, then constant."""
    if steps <= 0:
        return end
    return start + (end - start) * min(step, steps) / steps


def kl_warmup(step: int, warmup_steps: int) -> float:
    """The KL weight of a linear warm-up (Bowman et al. 2016; Sønderby et al. 2016): step / warmup_steps,
    capped at 1; 1 throughout when warmup_steps is 0."""
    return linear_ramp(step, 0.0, 1.0, warmup_steps)


def capacity(step: int, c_min: float, c_max: float, c_steps: int) -> float:
    """The target KL in nats of a capacity-annealed objective (Burgess et al. 2018): C rises linearly from
    c_min to c_max over c_steps, then stays at c_max."""
    return linear_ramp(step, c_min, c_max, c_steps)
