"""Latent traversals: one row per latent dimension, largest KL first, sweeping it over evenly spaced values
of the prior's std while the other dimensions stay at an encoded image's posterior mean; for JointVAE also
one row per categorical, showing each of its categories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data import to_float
from ..errors import ConfigError
from ..evaluate.latents import Activity, split_activity
from .grids import LabelledRows, stack_rows
from .labels import number

RANGE, STEPS = 3.0, 11  # the default sweep: 11 values from -3 to +3 prior std, 0.6 std apart


@dataclass
class Traversal(LabelledRows):
    """Decoded images (rows, cols, C, H, W) in [0, 1], a name per row (e.g. ``z3 KL 2.41``, ``c0``), the
    columns' values in prior std as headings, and which dimensions the rows are, in words (``rows_note``)."""

    note: str = ""


def split_float(run, split: str, n: int | None = None):
    """The first n images of a split as float (evaluation binarisation: seed 0) and their labels (or None)."""
    x_uint8, y = run.data.split(split)
    x_uint8 = x_uint8[:n] if n is not None else x_uint8
    y = None if y is None else y[: len(x_uint8)]
    return to_float(x_uint8, run.data.binarize, torch.Generator().manual_seed(0)), y


def row_name(activity: Activity, j: int) -> str:
    name = f"z{j} KL {activity.kl[j]:.2f}" if activity.kl is not None else f"z{j}"
    return name + ("" if activity.active[j] else " (inactive)")


def sweep(range_: float = RANGE, steps: int = STEPS) -> torch.Tensor:
    """``steps`` evenly spaced values from -range to +range, in prior std: k_i = -range + 2 range i / (steps - 1).
    Equal steps in z show how fast the image changes along a dimension, out to the prior's tails."""
    if range_ <= 0 or steps < 2:
        raise ConfigError(f"a traversal needs range > 0 and steps >= 2; got range {range_}, steps {steps}")
    return torch.linspace(-range_, range_, steps, dtype=torch.float64).float()


def describe(range_: float = RANGE, steps: int = STEPS, ranked: bool = True) -> str:
    """What a traversal's columns and rows are, for captions and the command's output; ``ranked``: the rows
    were chosen by ``choose_dims`` (auto or all), not given as indices."""
    rows = (
        "dimensions in order of their KL to the prior, largest first (row names give it in nats; models with "
        "point codes: in order of their code's variance over images)"
        if ranked
        else "the dimensions asked for, in that order"
    )
    return (
        f"columns: {steps} evenly spaced values of the dimension from -{number(range_)} to "
        f"+{number(range_)} prior std, {number(2 * range_ / (steps - 1))} std apart (the headings); rows: {rows}"
    )


def choose_dims(dims: str | Sequence[int], activity: Activity, latent_dim: int) -> list[int]:
    """``"auto"``: the active dimensions (``unit_activity``), largest KL first (the top one if none is active);
    ``"all"``: every dimension in that order; or the given indices."""
    if dims == "auto":
        active = [j for j in activity.order if activity.active[j]]
        return active or activity.order[:1]
    if dims == "all":
        return activity.order
    if isinstance(dims, str):
        try:
            dims = [int(part) for part in dims.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"--dims must be auto, all or indices like 0,3,5; got {dims!r}") from None
    bad = [j for j in dims if not 0 <= j < latent_dim]
    if bad or not dims:
        raise ConfigError(f"--dims {bad or dims}: this model's continuous latents are z0..z{latent_dim - 1}")
    return list(dims)


def rows_note(activity: Activity, chosen: list[int]) -> str:
    """Which dimensions a traversal's rows are, against the active ones (``unit_activity``), e.g. ``the rows are
    the 10 active dimensions of largest KL, of 16 active of 32 (variance of the posterior mean over ...)``."""
    d, count, by, n = len(activity.active), activity.count, activity.ranked_by, len(chosen)
    ranked_active, plural = [j for j in activity.order if activity.active[j]], "" if n == 1 else "s"
    if count == 0:
        what = f"the {n} dimension{plural} of largest {by}; none of the {d} is active"
    elif chosen == ranked_active:
        what = (
            f"the one active dimension of {d}"
            if count == 1
            else f"all {count} active dimensions of {d}, largest {by} first"
        )
    elif chosen == ranked_active[:n]:
        what = f"the {n} active dimension{plural} of largest {by}, of {count} active of {d}"
    else:
        shown = sum(bool(activity.active[j]) for j in chosen)
        what = f"the {n} dimension{plural} asked for, {shown} of them active ({count} of {d} are)"
    return f"the rows are {what} ({activity.criterion()})"


@torch.no_grad()
def traverse(
    run,
    dims: str | Sequence[int] = "auto",
    range_: float = RANGE,
    steps: int = STEPS,
    index: int = 0,
    split: str = "test",
    max_rows: int | None = None,
) -> Traversal:
    """Traverse the latents of image ``index`` of ``split``: each chosen dimension j sweeps z_j = m_j + s_j k
    over the evenly spaced k of ``sweep`` ((m, s) the prior's mean and std), the others fixed at the image's
    posterior mean; then one row per categorical (JointVAE) with its categories in turn."""
    model = run.model
    n = len(run.data.split(split)[0])
    if not 0 <= index < n:
        raise ConfigError(f"--index {index} is out of range: the {split} split has {n} images")
    activity = split_activity(run, split)
    chosen = choose_dims(dims, activity, model.spec.continuous)[:max_rows]
    x, y = split_float(run, split, index + 1)  # the evaluation binarisation, as the activity's
    x, y = x.to(model.device), run.as_labels(y) if run.conditional else None
    y0 = None if y is None else y[index : index + 1]
    z0 = model.encode(x[index : index + 1], y0).mean  # (1, code_size)
    mean, std = model.prior.moments()
    values = sweep(range_, steps).to(z0.device)  # (steps,)
    rows, names = [], []
    for j in chosen:
        z = z0.repeat(steps, 1)
        z[:, j] = mean[j] + std[j] * values
        rows.append(model.decode_mean(z, None if y0 is None else y0.expand(steps)))
        names.append(row_name(activity, j))
    codes = model.spec.codes(z0)  # (1, n_discrete)
    for i, size in enumerate(model.spec.discrete):
        each = codes.repeat(size, 1)
        each[:, i] = torch.arange(size)  # category i of this categorical, the others as encoded
        z = model.spec.join(z0[:, : model.spec.continuous].repeat(size, 1), each)
        rows.append(model.decode_mean(z, None if y0 is None else y0.expand(size)))
        names.append(f"c{i} ({size} categories)")
    headings = [number(v) for v in values.tolist()]
    return Traversal(stack_rows(rows).cpu(), names, headings, "prior std:", note=rows_note(activity, chosen))
