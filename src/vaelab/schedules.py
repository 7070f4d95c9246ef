"""Schedules: pure functions of the optimisation step (no counters hidden in models)."""

from __future__ import annotations

import math


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


def learning_rate(step: int, lr: float, schedule: str, warmup_steps: int, total_steps: int) -> float:
    """The learning rate of optimisation step ``step`` (0-based): a linear warm-up to ``lr`` over the first
    ``warmup_steps`` steps, lr (step + 1) / warmup_steps (Goyal et al. 2017); then ``constant`` lr, or ``cosine``
    decay to 0 at ``total_steps``: lr (1 + cos(pi t)) / 2, t = (step - warmup) / (total - warmup), capped at 1
    (Loshchilov & Hutter 2017)."""
    if step < warmup_steps:
        return linear_ramp(step + 1, 0.0, lr, warmup_steps)
    if schedule == "constant":
        return lr
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return lr * 0.5 * (1.0 + math.cos(math.pi * t))


def unfinished_warmups(warmups: dict[str, int], total_steps: int) -> list[str]:
    """One line for each warm-up of ``warmups`` (its setting -> its steps) that a run of ``total_steps`` steps
    does not finish: the value it ramps (the KL weight, the learning rate) stops at total_steps / steps of its
    full value."""
    return [
        f"note: {name} ({steps}) is longer than this run ({total_steps} steps): its ramp stops at "
        f"{total_steps / steps:.2f} of the full value; lower it or train longer"
        for name, steps in warmups.items()
        if steps > total_steps
    ]


def ema_decay(step: int, decay: float) -> float:
    """The averaging weight of the moving average after step ``step`` (1-based): min(decay, (1 + step) / (10 +
    step)), so that the average follows the first steps' fast-moving weights instead of their random start
    (TensorFlow's ExponentialMovingAverage with num_updates; Polyak & Juditsky 1992)."""
    return min(decay, (1 + step) / (10 + step))
