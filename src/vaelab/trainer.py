"""The training loop: in-memory batches by index, Adam, per-epoch validation, crash-safe checkpoints, resume.

Determinism: the data order of epoch e is a permutation drawn from a generator seeded by (seed, e);
dynamic binarisation draws from its own generator and the reparameterisation noise from torch's
global RNG, and both states are saved in every checkpoint. So resuming from the checkpoint of epoch
e replays epochs e+1.. exactly as an uninterrupted run would (same thread count, same machine).
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import (
    BEST_FILE,
    CHECKPOINT_DIR,
    TRAINER_FILE,
    WEIGHTS_FILE,
    atomic_write_bytes,
    atomic_write_text,
    list_checkpoints,
    load_latest_checkpoint,
    load_matching_state,
    remove_stale_temporaries,
    save_checkpoint,
)
from .checkpoint import weights_bytes as make_weights_bytes
from .config import Config, apply_overrides, config_from_dict, load_config
from .data import ImageData, load_dataset, to_float
from .errors import ConfigError, RunError, TrainingError
from .guards import FAILURE_FILE, NonFiniteGuard, gradient_problem, loss_problem, nonfinite_latent_dims
from .models import Autoencoder, build_model
from .run import CONFIG_FILE, IMAGES_DIR, METRICS_FILE, Run, load_run, read_run_config
from .viz import EpochRecorders, image_grid, reconstruction_grid, save_png, write_report
from .viz.pictures import picture_split

EVAL_BATCH = 1024
VAL_NOISE_SEED = 1234  # fixed noise for validation, so val losses compare across epochs


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed_everything(seed: int) -> None:
    """One seed drives Python's, NumPy's and torch's RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int) -> int:
    """Use ``threads`` torch threads (all cores this process may run on when 0), and flush denormal
    floats to zero: as a VAE trains, tiny gradients and Adam moments turn denormal and, without this,
    slow every CPU epoch after the second by 1.6x (measured: 3.2 s -> 5.3 s per Fashion-MNIST epoch)."""
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    torch.set_flush_denormal(True)
    return n


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam on its fused kernel (one pass over all parameters) where the device supports it."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


def model_metadata(data: ImageData) -> dict[str, Any]:
    """What loading a run needs besides its config: the image shape and the labels."""
    return {
        "image_shape": list(data.image_shape),
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "dataset": data.name,
    }


def new_run_dir(config: Config) -> Path:
    """Create the run folder with its config.yaml in one step (a temp folder renamed into place), so a
    crash never leaves a run folder without its config."""
    name = config.train.name or f"{config.model.name}-{config.data.name}-{datetime.now():%Y%m%d-%H%M%S}"
    name = name.replace("/", "_").replace(":", "_")
    root = Path(config.train.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    atomic_write_text(tmp / CONFIG_FILE, config.to_yaml())
    path, n = root / name, 1
    while True:
        try:
            tmp.rename(path)  # fails if path exists (as a non-empty folder): then try the next name
            return path
        except OSError:
            n += 1
            path = root / f"{name}-{n}"


class Trainer:
    """Trains ``model`` on ``data`` into ``run_dir``; ``fit()`` runs the remaining epochs."""

    def __init__(self, config: Config, data: ImageData, model: Autoencoder, run_dir: Path):
        self.config, self.data, self.model, self.run_dir = config, data, model, run_dir
        self.optimizer = make_optimizer(model, config.train.lr)
        self.binarize_generator = torch.Generator().manual_seed(config.seed + 1)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimisation steps completed
        self.history: list[dict[str, float]] = []
        self.best_val = math.inf
        self.epochs_since_best = 0
        self.metadata = model_metadata(data)
        self.val_x = to_float(data.val_x, data.binarize, torch.Generator().manual_seed(0))
        self.on_epoch_end: list[Callable[[Trainer, dict[str, float]], None]] = []  # called after each save
        cfg = config.train
        self.guard = NonFiniteGuard(run_dir, cfg.on_nonfinite, cfg.max_skips, cfg.lr)
        self.skipped = 0  # batches skipped as non-finite in the current epoch
        self.improved = False  # whether the last epoch set a new best validation loss
        self.write_files = True  # False: train in memory (no checkpoints, weights, metrics; vaelab.sklearn)
        self.log: Callable[[str], None] = log  # where epoch lines go

    # -- state -------------------------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "binarize_rng": self.binarize_generator.get_state(),
            "history": self.history,
            "best_val": self.best_val,
            "epochs_since_best": self.epochs_since_best,
        }

    def restore(self) -> None:
        """Load the newest loadable checkpoint of ``run_dir`` (and clear what interrupted writes left)."""
        remove_stale_temporaries(self.run_dir)
        if not list_checkpoints(self.run_dir):
            if (self.run_dir / WEIGHTS_FILE).exists() or (self.run_dir / METRICS_FILE).exists():
                raise RunError(
                    f"{self.run_dir} has trained weights but no {CHECKPOINT_DIR}/ to resume from; "
                    "start a new run (its weights stay usable with eval, sample, ...)"
                )
            log(f"{self.run_dir} has no checkpoint yet (stopped in its first epoch): starting from the beginning")
            return
        folder, weights, state, skipped = load_latest_checkpoint(self.run_dir)
        for message in skipped:
            log(message)
        load_matching_state(self.model, weights, folder / WEIGHTS_FILE, self.run_dir / CONFIG_FILE)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise RunError(f"{folder / TRAINER_FILE} does not fit this model's optimizer ({err})") from None
        torch.set_rng_state(state["torch_rng"])
        self.binarize_generator.set_state(state["binarize_rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.history = list(state["history"])
        self.best_val, self.epochs_since_best = state["best_val"], state["epochs_since_best"]
        self.write_metrics()  # drop rows of epochs after the checkpoint
        log(f"resuming {self.run_dir} from {folder.name} (step {self.step})")

    # -- loop --------------------------------------------------------------------------------------------
    def batches(self, epoch: int):
        """(indices, x, y) batches of one epoch in its seeded order; uint8 -> float happens per batch."""
        x_all, y_all = self.data.train_x, self.data.train_y
        order = epoch_permutation(len(x_all), self.config.seed, epoch)
        for idx in order.split(self.config.train.batch_size):
            x = to_float(x_all[idx], self.data.binarize, self.binarize_generator)
            yield idx, x, (None if y_all is None else y_all[idx])

    def train_epoch(self, epoch: int, max_steps: int | None = None) -> dict[str, float]:
        """One pass over the training data (or its first ``max_steps`` batches); returns the mean loss
        terms per image."""
        self.model.train()
        n_batches = math.ceil(len(self.data.train_x) / self.config.train.batch_size)
        sums, names, seen, self.skipped = None, [], 0, 0
        bar = tqdm(total=min(n_batches, max_steps or n_batches), desc=f"epoch {epoch}/{self.config.train.epochs}",
                   leave=False, disable=not self.show_progress(), unit="batch")  # fmt: skip
        for i, (idx, x, y) in enumerate(self.batches(epoch)):
            if i == max_steps:
                break
            terms = self.model.loss(x, y, self.step)
            named = terms.named()
            self.optimizer.zero_grad(set_to_none=True)
            problem = loss_problem(named)
            if problem is None:
                terms.total.backward()
                problem = gradient_problem(self.model, self.config.train.grad_clip)
            if problem is not None:
                problem.latent_dims = nonfinite_latent_dims(self.model, x, y)
                self.guard.handle(problem, step=self.step + 1, epoch=epoch, batch=i, indices=idx,
                                  last_good_epoch=self.epoch)  # fmt: skip
                self.skipped += 1
                bar.update()
                continue
            self.guard.passed()
            self.optimizer.step()
            self.step += 1
            values = torch.stack([v.detach() for v in named.values()]) * len(x)  # one tensor for all terms
            sums = values if sums is None else sums.add_(values)
            names, seen = list(named), seen + len(x)
            if i % 25 == 0 and not bar.disable:
                bar.set_postfix(
                    {n: f"{v:.2f}" for n, v in zip(names, (sums / seen).tolist(), strict=True)}, refresh=False
                )
            bar.update()
        bar.close()
        if sums is None:
            raise TrainingError(f"every batch of epoch {epoch} was skipped as non-finite; see {FAILURE_FILE}")
        return dict(zip(names, (sums / seen).tolist(), strict=True))

    @torch.no_grad()
    def fit_closed_form(self) -> dict[str, float]:
        """Fit a model that has a closed-form solution (e.g. PCA) on all training images at once; returns
        its mean training loss terms per image."""
        x = to_float(self.data.train_x, self.data.binarize, self.binarize_generator)
        self.model.fit_closed_form(x, self.data.train_y)
        self.model.eval()
        recon = kl = 0.0
        for start in range(0, len(x), EVAL_BATCH):
            t = self.model.terms(x[start : start + EVAL_BATCH])
            recon, kl = recon + t.recon.sum().item(), kl + t.kl.sum().item()
        return {"loss": (recon + kl) / len(x), "recon": recon / len(x), "kl": kl / len(x)}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean -ELBO terms per image on the validation split, with fixed noise."""
        if len(self.val_x) == 0:
            return {}
        self.model.eval()
        generator = torch.Generator().manual_seed(VAL_NOISE_SEED)
        y_all = self.data.val_y
        recon = kl = 0.0
        for start in range(0, len(self.val_x), EVAL_BATCH):
            y = None if y_all is None else y_all[start : start + EVAL_BATCH]
            t = self.model.terms(self.val_x[start : start + EVAL_BATCH], y, generator)
            recon, kl = recon + t.recon.sum().item(), kl + t.kl.sum().item()
        n = len(self.val_x)
        return {"loss": (recon + kl) / n, "recon": recon / n, "kl": kl / n}

    def show_progress(self) -> bool:
        mode = self.config.train.progress
        return mode == "always" or (mode == "auto" and sys.stderr.isatty())

    def fit(self) -> None:
        """Train the remaining epochs, checkpointing after each; stop early if configured."""
        cfg = self.config.train
        while self.epoch < cfg.epochs:
            epoch = self.epoch + 1
            start = time.perf_counter()
            train_terms = self.fit_closed_form() if self.model.closed_form else self.train_epoch(epoch)
            seconds = time.perf_counter() - start
            val_terms = self.validate()
            self.epoch = epoch
            row = {"epoch": epoch, "step": self.step}
            row |= {f"train_{k}": v for k, v in train_terms.items()}
            row |= {f"val_{k}": v for k, v in val_terms.items()}
            row |= {"seconds": seconds, "samples_per_s": len(self.data.train_x) / seconds, "lr": cfg.lr}
            row |= {"batch_size": cfg.batch_size, "skipped": self.skipped}
            self.history.append(row)
            self.update_early_stopping(val_terms.get("loss", train_terms["loss"]))
            self.save()
            self.log(self.epoch_line(row))
            for callback in self.on_epoch_end:
                callback(self, row)
            if self.model.closed_form:
                break  # one fit is the whole training
            if cfg.early_stopping and self.epochs_since_best >= cfg.early_stopping:
                self.log(f"early stopping: no better val loss for {cfg.early_stopping} epochs")
                break

    def update_early_stopping(self, val_loss: float) -> None:
        self.improved = val_loss < self.best_val
        if self.improved:
            self.best_val, self.epochs_since_best = val_loss, 0
        else:
            self.epochs_since_best += 1

    def epoch_line(self, row: dict[str, float]) -> str:
        val = f" | val -ELBO {row['val_loss']:.2f}" if "val_loss" in row else ""
        return (
            f"epoch {row['epoch']:>3}/{self.config.train.epochs}  train loss {row['train_loss']:.2f} "
            f"(recon {row['train_recon']:.2f}, kl {row['train_kl']:.2f}){val} | "
            f"{row['seconds']:.1f} s, {row['samples_per_s']:.0f} img/s"
        )

    # -- files -------------------------------------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint folder first, then the run's model.safetensors and metrics.csv, each atomically."""
        if not self.write_files:
            return
        weights = make_weights_bytes(self.model, self.metadata)
        save_checkpoint(self.run_dir, self.epoch, weights, self.trainer_state(), self.config.train.keep)
        if self.improved:
            atomic_write_bytes(self.run_dir / CHECKPOINT_DIR / BEST_FILE, weights)
        atomic_write_bytes(self.run_dir / WEIGHTS_FILE, weights)
        self.write_metrics()

    def write_metrics(self) -> None:
        if not self.history:
            return
        columns = list(dict.fromkeys(k for row in self.history for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.run_dir / METRICS_FILE, buffer.getvalue())


def write_preview_images(run: Run, n: int = 64) -> dict[str, Path]:
    """Prior samples and test reconstructions of a trained run, in its images/ folder."""
    data = run.data
    x_all, y_all = data.split(picture_split(run))  # test, or val / train when the test split is empty
    x = to_float(x_all[:32], data.binarize, torch.Generator().manual_seed(0))
    y = None if y_all is None else y_all[:32]
    per_class = 8
    labels = run.sampling_labels(per_class, None, grid_by_label=True) if run.conditional else None
    samples = run.sample(n if labels is None else len(labels), y=labels)
    return {
        "samples": save_png(
            image_grid(samples, per_class if labels is not None else None), run.images_dir / "samples.png", scale=2
        ),
        "reconstructions": save_png(
            reconstruction_grid(x, run.reconstruct(x, y if run.conditional else None)),
            run.images_dir / "reconstructions.png",
            scale=2,
        ),
    }


RESUMABLE_SECTIONS = ("train.",)


def resolve_config(config: Config | str | Path | None, overrides: list[str], resume: str | Path | None) -> Config:
    """The config of a new run (a Config or YAML path plus overrides) or of a resumed one (its saved
    config; only train.* may change, e.g. train.epochs to train longer)."""
    if resume is not None:
        if config is not None:
            raise ConfigError("--resume reads the config saved in the run folder; do not pass --config too")
        frozen = [o for o in overrides if not o.startswith(RESUMABLE_SECTIONS)]
        if frozen:
            raise ConfigError(f"on resume only train.* keys may change (e.g. train.epochs=30); got {frozen}")
        config = read_run_config(Path(resume))
    if isinstance(config, Config):
        return config_from_dict(apply_overrides(config.to_dict(), overrides)) if overrides else config
    return load_config(config, overrides)


def train(
    config: Config | str | Path | None = None,
    overrides: list[str] | None = None,
    resume: str | Path | None = None,
) -> Run:
    """Train a model and return its Run. ``config`` is a Config or a YAML path (defaults if None);
    ``overrides`` are ``key.sub=value`` strings; ``resume`` is a run folder to continue."""
    config = resolve_config(config, list(overrides or []), resume)
    recorders = EpochRecorders(config)  # frames, latent stats, TensorBoard (its package is checked here, early)
    threads = set_threads(config.train.threads)
    seed_everything(config.seed)
    d = config.data
    data = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                        seed=config.seed, binarize=d.binarize, limit=d.limit)  # fmt: skip
    model = build_model(config.model, data.image_shape, data.num_classes)
    run_dir = new_run_dir(config) if resume is None else Path(resume)
    trainer = Trainer(config, data, model, run_dir)
    if resume is not None:
        trainer.restore()
    atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
    (run_dir / IMAGES_DIR).mkdir(exist_ok=True)
    log(
        f"training {config.model.name} ({sum(p.numel() for p in model.parameters()):,} parameters) on "
        f"{data.name}: {len(data.train_x)} train / {len(data.val_x)} val images of "
        f"{'x'.join(map(str, data.image_shape))}, {threads} threads -> {run_dir}"
    )
    trainer.on_epoch_end.append(recorders)
    trainer.fit()
    recorders.finish(trainer)  # the GIFs from the per-epoch frames
    run = load_run(run_dir)
    write_preview_images(run)
    if config.train.report:
        write_report(run)
    return run
