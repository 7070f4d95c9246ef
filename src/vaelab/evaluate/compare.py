"""``vaelab compare``: several models and representations fitted on the same split of one dataset, measured the
same way, in one table (compare.md, compare.csv) and one bar chart (compare.png).

Rows: every registered model named (trained by ``vaelab.trainer.train`` into ``OUT/runs/<name>``, with the same
seed, data, latent size and epochs), ``fisher`` (Fisher vectors of local patches, a non-neural representation)
and, always, ``pixels`` (the raw pixels: the control row for the probes). Every row sees the same images: the
likelihood numbers (-ELBO, IW-NLL) use the evaluation binarisation, everything else the stored images x / 255
(the rule of ``latents``).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import atomic_write_bytes, atomic_write_text
from ..config import load_config
from ..data import ImageData, load_dataset, to_float
from ..errors import ConfigError
from ..loop import log_to_stderr
from ..models import registered_models
from ..training import train
from .fisher import FisherVectorEncoder
from .latents import STORED, encode_split, probe_accuracy, probe_problem
from .likelihood import BLOCK, EVAL_SEED, evaluate_run, evaluation_batches, write_eval

REPRESENTATIONS = ("fisher",)  # rows that are not registered models
COLUMNS = [  # (key, header, format)
    ("model", "model", "{}"),
    ("dims", "dims", "{}"),
    ("recon_mse", "recon MSE", "{:.4f}"),
    ("neg_elbo", "test -ELBO", "{:.2f}"),
    ("iw_nll", "IW-NLL", "{:.2f}"),
    ("linear_probe", "linear probe", "{:.4f}"),
    ("knn", "kNN (k=5)", "{:.4f}"),
    ("fit_seconds", "fit s", "{:.1f}"),
    ("encode_per_s", "encode img/s", "{:,.0f}"),
]


@dataclass
class Comparison:
    """The rows of a comparison and what made them."""

    rows: list[dict[str, Any]]
    data: str
    n_train: int
    n_test: int
    iw_samples: int
    command: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def check_models(names: list[str]) -> list[str]:
    """The requested rows, with a one-line error naming an unknown one."""
    known = [entry.name for entry in registered_models()] + list(REPRESENTATIONS)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ConfigError(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


@torch.no_grad()
def recon_mse(model, x_uint8: torch.Tensor, y: torch.Tensor | None) -> float:
    """Mean squared error per pixel between the stored images x / 255 and their reconstructions (the
    likelihood's mean image of the posterior mean)."""
    total = 0.0
    for x, yb in evaluation_batches(x_uint8, y, STORED, BLOCK, EVAL_SEED, model.device):
        total += (model.reconstruct(x, yb) - x).pow(2).sum().item()
    return total / x_uint8.numel()


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def model_row(run, iw_samples: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Train-side figures from the run's metrics, test-side ones measured here; also writes the run's eval.json."""
    data, model = run.data, run.model
    (test_x, test_y), (train_x, train_y) = data.split("test"), data.split("train")
    has_density = model.has_density
    log(f"  {run.config.model.name}: evaluating on {len(test_x)} test images" + (
        f" (IW-NLL with k={iw_samples})" if has_density and iw_samples else ""))  # fmt: skip
    results = evaluate_run(run, "test", iw_samples=iw_samples if has_density else 0, progress=False)
    encode_split(model, test_x[:BLOCK], None if test_y is None else test_y[:BLOCK], STORED)  # warm-up
    test_latents, encode_seconds = _timed(lambda: encode_split(model, test_x, test_y, STORED))
    row: dict[str, Any] = {
        "model": run.config.model.name,
        "dims": test_latents.codes.shape[1],
        "recon_mse": recon_mse(model, test_x, test_y),
        "neg_elbo": results["neg_elbo"]["mean"] if has_density else None,
        "iw_nll": (results.get("iw_nll") or {}).get("mean"),
        "fit_seconds": sum(m.get("seconds", 0.0) for m in run.metrics),
        "encode_per_s": len(test_x) / encode_seconds,
        "run": str(run.path),
    }
    if test_y is not None and not probe_problem(train_y.numpy()):
        train_codes = encode_split(model, train_x, train_y, STORED).codes
        probes = probe_accuracy(train_codes, train_y.numpy(), test_latents.codes, test_y.numpy())
        row |= {"linear_probe": probes["linear"], "knn": probes["knn"]}
        results["probes"] = probes
    write_eval(run, results)
    return row


def fisher_row(data: ImageData, log: Callable[[str], None], **options) -> dict[str, Any]:
    """Fisher vectors fitted on the training images, probed like the models' codes."""
    (train_x, train_y), (test_x, test_y) = data.split("train"), data.split("test")
    train, test = to_float(train_x, STORED), to_float(test_x, STORED)
    log(f"  fisher: fitting descriptors and a GMM on {len(train)} training images")
    encoder, fit_seconds = _timed(lambda: FisherVectorEncoder(**options).fit(train))
    encoder.transform(test[:BLOCK])  # warm-up
    test_fv, encode_seconds = _timed(lambda: encoder.transform(test))
    row = {
        "model": "fisher",
        "dims": encoder.dims,
        "fit_seconds": fit_seconds,
        "encode_per_s": len(test) / encode_seconds,
    }
    if test_y is not None:
        probes = probe_accuracy(encoder.transform(train), train_y.numpy(), test_fv, test_y.numpy())
        row |= {"linear_probe": probes["linear"], "knn": probes["knn"]}
    return row


def pixels_row(data: ImageData) -> dict[str, Any]:
    """The control: probes on the raw (evaluation) pixels."""
    (train_x, train_y), (test_x, test_y) = data.split("train"), data.split("test")
    test = to_float(test_x, STORED).flatten(1).numpy()
    row = {"model": "pixels", "dims": test.shape[1], "fit_seconds": 0.0}
    if test_y is not None:
        train = to_float(train_x, STORED).flatten(1).numpy()
        probes = probe_accuracy(train, train_y.numpy(), test, test_y.numpy())
        row |= {"linear_probe": probes["linear"], "knn": probes["knn"]}
    return row


def compare_models(
    data: str,
    models: list[str],
    out_dir: str | Path,
    latent_dim: int = 16,
    epochs: int = 10,
    iw_samples: int = 1000,
    data_dir: str | None = None,
    seed: int = 0,
    overrides: list[str] | None = None,
    command: str = "",
) -> Comparison:
    """Fit each of ``models`` on the same split of ``data`` and measure them; writes OUT/compare.{md,csv,png}.

    Registered models train with the default config plus ``model.latent_dim``, ``train.epochs``, ``seed`` and
    ``overrides`` (e.g. ``train.batch_size=256``), their run folders under OUT/runs/."""
    log = log_to_stderr
    models = check_models(models)
    out_dir = Path(out_dir)
    start = time.perf_counter()
    base = [f"data.name={data}", f"seed={seed}", f"model.latent_dim={latent_dim}", f"train.epochs={epochs}"]
    base += [f"data.data_dir={data_dir}"] * (data_dir is not None)
    base += ["train.progress=never", f"train.out_dir={out_dir / 'runs'}"]
    config = load_config(None, base + list(overrides or []))  # validates the shared keys before any training
    d = config.data
    dataset = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                           seed=config.seed, binarize=d.binarize, limit=d.limit)  # fmt: skip
    rows = []
    for name in models:
        if name == "fisher":
            rows.append(fisher_row(dataset, log, seed=seed))
            continue
        log(f"compare: training {name} ({epochs} epochs, latent_dim {latent_dim}) on {dataset.name}")
        run = train(None, base + [f"model.name={name}", f"train.name={name}"] + list(overrides or []))
        rows.append(model_row(run, iw_samples, log))
    log("compare: probes on raw pixels (the control row)")
    rows.append(pixels_row(dataset))
    comparison = Comparison(
        rows=rows,
        data=dataset.name,
        n_train=len(dataset.train_x),
        n_test=len(dataset.test_x),
        iw_samples=iw_samples,
        command=command,
        seconds=time.perf_counter() - start,
        notes=[f"{dataset.binarize} binarisation; models trained {epochs} epochs at latent_dim {latent_dim}"],
    )
    write_comparison(comparison, out_dir)
    return comparison


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(header for _, header, _ in COLUMNS) + " |"]
    lines.append("|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(COLUMNS))) + "|")
    lines += ["| " + " | ".join(_cell(row, key, fmt) for key, _, fmt in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_comparison(comparison: Comparison, out_dir: Path) -> None:
    """compare.md (table, command, time, column meanings), compare.csv and compare.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([key for key, _, _ in COLUMNS])
    for row in comparison.rows:
        writer.writerow(["" if row.get(key) is None else row[key] for key, _, _ in COLUMNS])
    atomic_write_text(out_dir / "compare.csv", buffer.getvalue())
    minutes, seconds = divmod(round(comparison.seconds), 60)
    text = [
        f"# vaelab compare: {comparison.data}",
        "",
        f"{comparison.n_train} training images, {comparison.n_test} test images; "
        + "; ".join(comparison.notes)
        + f". Made on {datetime.now():%Y-%m-%d} in {minutes} min {seconds} s with:",
        "",
        "```",
        comparison.command or "vaelab compare",
        "```",
        "",
        markdown_table(comparison.rows),
        COLUMN_NOTES.format(k=comparison.iw_samples),
    ]
    atomic_write_text(out_dir / "compare.md", "\n".join(text))
    atomic_write_bytes(out_dir / "compare.png", bar_chart(comparison))


COLUMN_NOTES = """\
- **recon MSE**: squared error per pixel between the test images (x / 255) and their reconstructions (the decoded
  posterior mean of the encoded image).
- **test -ELBO**, **IW-NLL**: nats per image on the test split; the IW-NLL is the importance-weighted estimate
  with k={k} samples (an upper bound on -log p(x), tighter than the -ELBO). Only models with a density have them.
- **linear probe**, **kNN (k=5)**: test accuracy of a logistic regression (on standardised features) and of
  5-nearest-neighbours (Euclidean, on the features as they are) fitted on the codes (posterior means of the images
  x / 255) of the training split. `pixels` is the raw-pixel control. The -ELBO and IW-NLL use the fixed evaluation
  binarisation; everything else the images x / 255.
- **fit s**: seconds of fitting (the sum of the training epochs' times; PCA: one closed-form fit; fisher: patch PCA
  and GMM); **encode img/s**: test images encoded per second (batches of 1024, this machine's 2 cores).
"""


def bar_chart(comparison: Comparison) -> bytes:
    """PNG bytes: probe accuracies per row (left), -ELBO and IW-NLL of the density models (right)."""
    from ..viz.plotting import new_figure

    rows = comparison.rows
    names = [row["model"] for row in rows]
    fig = new_figure(11, 4, dpi=120)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    positions = np.arange(len(rows))
    for offset, key, label in ((-0.2, "linear_probe", "linear probe"), (0.2, "knn", "kNN (k=5)")):
        values = [row.get(key) or 0.0 for row in rows]
        bars = left.bar(positions + offset, values, width=0.4, label=label)
        left.bar_label(bars, labels=[f"{v:.3f}" if v else "" for v in values], fontsize=7, padding=2)
    left.set_xticks(positions, names)
    left.set_ylabel("test accuracy")
    left.set_ylim(0, 1.05)
    left.legend(loc="lower right", fontsize=8)
    left.set_title(f"probes on {comparison.data}")
    density = [row for row in rows if row.get("neg_elbo") is not None]
    if density:
        positions = np.arange(len(density))
        for offset, key, label in ((-0.2, "neg_elbo", "-ELBO"), (0.2, "iw_nll", f"IW-NLL (k={comparison.iw_samples})")):
            values = [row.get(key) or 0.0 for row in density]
            bars = right.bar(positions + offset, values, width=0.4, label=label)
            right.bar_label(bars, labels=[f"{v:.1f}" if v else "" for v in values], fontsize=7, padding=2)
        right.set_xticks(positions, [row["model"] for row in density])
        right.set_ylabel("nats per image (lower is better)")
        right.legend(loc="lower right", fontsize=8)
    else:
        right.text(0.5, 0.5, "no model with a density", ha="center", va="center")
        right.set_axis_off()
    right.set_title("test NLL bounds")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
