"""The training loop: batches by index (in memory) or streamed (npy data), Adam, per-epoch validation,
crash-safe checkpoints, resume; on one process or several (torchrun, DDP), on the CPU or a GPU, fp32 or bf16.

Determinism: the data order of epoch e is a permutation drawn from a generator seeded by (seed, e);
dynamic binarisation and the reparameterisation noise draw from their own generators, whose states are
saved in every checkpoint. So resuming from the checkpoint of epoch e replays epochs e+1.. exactly as an
uninterrupted run would (same thread count, same machine). Several processes draw the order and the
noise of each global batch alike and each keeps its rows, so they take the steps one process would.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import distributed
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
    temporary_dir,
)
from .checkpoint import weights_bytes as make_weights_bytes
from .config import Config, apply_overrides, config_from_dict, load_config
from .data import ImageData, load_dataset, to_float
from .data.batches import Batch, InMemoryBatches
from .data.stream import StreamBatches
from .devices import resolve_device
from .distributed import SINGLE, Context
from .distributions import BatchShard, keep_draws_out_of_compiled_graphs
from .errors import ConfigError, RunError, TrainingError
from .guards import FAILURE_FILE, NonFiniteGuard, Problem, gradient_problem, loss_problem, nonfinite_latent_dims
from .manual_step import ManualStep, uncovered
from .models import Autoencoder, build_model
from .precision import Choice, autocast, choose_precision
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


def set_threads(threads: int, processes: int = 1) -> int:
    """Use ``threads`` torch threads (when 0, the cores this process may run on shared among ``processes``
    processes of this node), and flush denormal floats to zero: as a VAE trains, tiny gradients and Adam
    moments turn denormal and, without this, slow every CPU epoch after the second by 1.6x (measured:
    3.2 s -> 5.3 s per Fashion-MNIST epoch)."""
    n = threads or max(1, len(os.sched_getaffinity(0)) // processes)
    torch.set_num_threads(n)
    torch.set_flush_denormal(True)
    return n


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
    tmp = temporary_dir(root, name)
    atomic_write_text(tmp / CONFIG_FILE, config.to_yaml())
    path, n = root / name, 1
    while True:
        try:
            tmp.rename(path)  # fails if path exists (as a non-empty folder): then try the next name
            return path
        except OSError:
            n += 1
            path = root / f"{name}-{n}"


class Objective(nn.Module):
    """The model's training objective as a module's forward, for DistributedDataParallel and torch.compile."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.model = model

    def forward(self, x, y, step: int, generator) -> dict[str, torch.Tensor]:
        return self.model.loss(x, y, step, generator).named()


class Trainer:
    """Trains ``model`` on ``data`` into ``run_dir``; ``fit()`` runs the remaining epochs. ``context`` is this
    process's place in a multi-process run (rank 0 alone writes files and logs)."""

    def __init__(self, config: Config, data: ImageData, model: Autoencoder, run_dir: Path, context: Context = SINGLE):
        cfg = config.train
        self.context = context
        self.device = resolve_device(cfg.device, context.local_rank)
        self.config, self.data, self.model, self.run_dir = config, data, model.to(self.device), run_dir
        self.optimizer = make_optimizer(model, cfg.lr)
        self.binarize_generator = torch.Generator(self.device).manual_seed(config.seed + 1)
        self.noise_generator = torch.Generator(self.device).manual_seed(config.seed + 2)  # reparameterisation
        self.source = self.batch_source()
        self.choice = distributed.broadcast(self.choose_precision(), context)  # every process as rank 0 chose
        self.objective = distributed.wrap(Objective(model), context, self.device)
        if cfg.compile:
            keep_draws_out_of_compiled_graphs()
            self.objective = torch.compile(self.objective)
        self.manual, self.step_reason = self.choose_step()
        self.noise_draws: dict[tuple[int, int, int], list] = {}  # with compile: the draws of a step, by its rows
        self.epoch = 0  # epochs completed
        self.step = 0  # optimisation steps completed
        self.history: list[dict[str, float]] = []
        self.best_val = math.inf
        self.epochs_since_best = 0
        self.metadata = model_metadata(data)
        self.on_epoch_end: list[Callable[[Trainer, dict[str, float]], None]] = []  # called after each save
        self.guard = NonFiniteGuard(run_dir if context.main else None, cfg.on_nonfinite, cfg.max_skips, cfg.lr)
        self.skipped = 0  # batches skipped as non-finite in the current epoch
        self.write_files = context.main  # False: no checkpoints, weights, metrics (vaelab.sklearn; ranks > 0)
        self.log: Callable[[str], None] = log if context.main else _quiet  # where epoch lines go

    @property
    def precision(self) -> str:
        return self.choice.precision

    def choose_step(self, resumed: str | None = None) -> tuple[ManualStep | None, str]:
        """The hand-written step (manual_step.py) where ``train.step`` asks for it and it covers the model, else
        None for autograd; and the reason, for the run's log. ``resumed``: the step the checkpoint was trained
        with, which auto keeps (runs from before train.step existed used autograd)."""
        cfg = self.config.train
        why_not = uncovered(self.model) or (
            "several processes (DDP)" if self.context.active else "train.compile=true" if cfg.compile else None
        )
        if cfg.step == "auto" and resumed == "autograd" and not why_not:
            return None, "autograd (auto: as the run started)"
        if cfg.step == "autograd" or (cfg.step == "auto" and why_not):
            return None, f"autograd ({'as configured' if cfg.step == 'autograd' else 'auto: ' + why_not})"
        if why_not:
            raise ConfigError(f"train.step=manual cannot train this run ({why_not}); use train.step=autograd or auto")
        return ManualStep(self.model, self.precision), f"manual ({'as configured' if cfg.step == 'manual' else 'auto'})"

    def batch_source(self) -> InMemoryBatches | StreamBatches:
        """The training batches: streamed from the npy file of npy:PATH data, else gathered from memory (the
        images moved to the device once)."""
        cfg, data = self.config, self.data
        if data.stream is not None:
            if self.model.closed_form:
                raise ConfigError(f"{cfg.model.name} is fitted on all images at once; npy data is streamed")
            return StreamBatches(data.stream, cfg.train.batch_size, cfg.seed, self.context, cfg.data.buffer_mb << 20)
        y = None if data.train_y is None else data.train_y.to(self.device)
        return InMemoryBatches(data.train_x.to(self.device), y, cfg.train.batch_size, cfg.seed, self.context)

    def choose_precision(self) -> Choice:
        """fp32 or bf16 for ``train.precision`` (auto: a probe of this model's layers at a batch's shapes)."""
        shard = distributed.shard_bounds(min(self.config.train.batch_size, len(self.data.train_x)), self.context)
        rows = shard[1] - shard[0]
        x = torch.rand(rows, *self.data.image_shape, device=self.device)
        y = torch.zeros(rows, dtype=torch.long, device=self.device) if self.data.num_classes else None
        noise = torch.Generator(self.device)  # never torch's global RNG: the probe must not change a run
        self.model.eval()  # no running statistics updated by the probe
        try:
            return choose_precision(
                self.config.train.precision, self.device, self.model, lambda: self.model.loss(x, y, 0, noise)
            )
        finally:
            self.model.train()

    # -- state -------------------------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "binarize_rng": self.binarize_generator.get_state(),
            "noise_rng": self.noise_generator.get_state(),
            "device": self.device.type,
            "precision": self.precision,
            "step_kind": "autograd" if self.manual is None else "manual",
            "history": self.history,
            "best_val": self.best_val,
            "epochs_since_best": self.epochs_since_best,
        }

    def restore(self) -> None:
        """Load the newest loadable checkpoint of ``run_dir`` (and clear what interrupted writes left)."""
        if self.context.main:
            remove_stale_temporaries(self.run_dir)
        if not list_checkpoints(self.run_dir):
            if (self.run_dir / WEIGHTS_FILE).exists() or (self.run_dir / METRICS_FILE).exists():
                raise RunError(
                    f"{self.run_dir} has trained weights but no {CHECKPOINT_DIR}/ to resume from; "
                    "start a new run (its weights stay usable with eval, sample, ...)"
                )
            self.log(f"{self.run_dir} has no checkpoint yet (stopped in its first epoch): starting from the beginning")
            return
        folder, weights, state, skipped = load_latest_checkpoint(self.run_dir)
        for message in skipped:
            self.log(message)
        load_matching_state(self.model, weights, folder / WEIGHTS_FILE, self.run_dir / CONFIG_FILE)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise RunError(f"{folder / TRAINER_FILE} does not fit this model's optimizer ({err})") from None
        saved_lr = self.optimizer.param_groups[0]["lr"]
        if saved_lr != self.config.train.lr:  # resumed with train.lr=...: the new rate from here on
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.train.lr
            self.log(f"learning rate {self.config.train.lr:g} from here on (it was {saved_lr:g})")
        torch.set_rng_state(state["torch_rng"])
        saved_on = state.get("device", "cpu")
        if saved_on != self.device.type:
            raise RunError(f"{folder} was saved training on {saved_on}; resume it there (train.device={saved_on})")
        self.binarize_generator.set_state(state["binarize_rng"])
        self.noise_generator.set_state(state.get("noise_rng", state["torch_rng"]))  # older runs: torch's RNG
        if self.config.train.precision == "auto" and "precision" in state:  # keep what the run's probe chose
            self.choice = Choice(state["precision"], f"{state['precision']} (auto: as chosen when the run started)")
        self.manual, self.step_reason = self.choose_step(state.get("step_kind", "autograd"))  # in that precision
        self.epoch, self.step = state["epoch"], state["step"]
        self.history = list(state["history"])
        self.best_val, self.epochs_since_best = state["best_val"], state["epochs_since_best"]
        if self.write_files:
            self.publish((folder / WEIGHTS_FILE).read_bytes())
        self.log(f"resuming {self.run_dir} from {folder.name} (step {self.step})")

    # -- loop --------------------------------------------------------------------------------------------
    def batches(self, epoch: int):
        """This process's part of each batch of the epoch, in its seeded order, converted to float (and
        binarised for the global batch) on the device."""
        for batch in self.source.epoch(epoch):
            shard = BatchShard(self.binarize_generator, batch.size, batch.start, batch.stop)
            batch.x = to_float(batch.x.to(self.device, non_blocking=True), self.data.binarize, shard)
            batch.y = None if batch.y is None else batch.y.to(self.device, non_blocking=True)
            yield batch

    def train_epoch(self, epoch: int, max_steps: int | None = None) -> dict[str, float]:
        """One pass over the training data (or its first ``max_steps`` batches); returns the mean loss
        terms per image (over all processes)."""
        self.model.train()
        n_batches = len(self.source)
        sums, names, seen, self.skipped = None, [], 0, 0
        bar = tqdm(total=min(n_batches, max_steps or n_batches), desc=f"epoch {epoch}/{self.config.train.epochs}",
                   leave=False, disable=not self.show_progress(), unit="batch")  # fmt: skip
        for i, batch in enumerate(self.batches(epoch)):
            if i == max_steps:
                break
            x, y = batch.x, batch.y
            if self.config.train.compile:  # a graph per batch size (the last batch of an epoch is smaller)
                torch._dynamo.mark_static(x, 0)
            noise = self.noise(batch)
            self.optimizer.zero_grad(set_to_none=True)
            if self.manual is not None:  # loss terms and gradients by hand
                named = self.manual(x, y, self.step, noise)
                problem = loss_problem(named) or gradient_problem(self.model, self.config.train.grad_clip)
            else:
                with autocast(self.precision, self.device):
                    named = self.objective(x, y, self.step, noise)
                problem = self.backward(named, batch)
            if problem is not None:
                problem.latent_dims = nonfinite_latent_dims(self.model, x, y)
                self.guard.handle(problem, step=self.step + 1, epoch=epoch, batch=i, indices=batch.idx,
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
        totals = distributed.sum_over_processes(torch.cat([sums.cpu(), torch.tensor([float(seen)])]), self.context)
        return dict(zip(names, (totals[:-1] / totals[-1]).tolist(), strict=True))

    def noise(self, batch: Batch) -> BatchShard:
        """The reparameterisation noise of a batch; with torch.compile, drawn ahead of the compiled objective
        (the draws of the first step of each batch geometry are recorded, later steps replay them)."""
        shard = BatchShard(self.noise_generator, batch.size, batch.start, batch.stop)
        if self.config.train.compile:
            key = (batch.size, batch.start, batch.stop)
            if key in self.noise_draws:
                shard.draw_ahead(self.noise_draws[key])
            else:
                shard.record = self.noise_draws[key] = []
        return shard

    def backward(self, named: dict[str, torch.Tensor], batch: Batch) -> Problem | None:
        """Gradients of this process's share of the global batch's mean loss, or the problem that stops the
        step. The loss is a mean over this process's rows; DDP averages gradients over processes, so the
        share is loss x rows x processes / global batch. Every process takes the same decision."""
        problem = loss_problem(named)
        if problem is None or self.context.active:  # a process that skipped backward would stall the others
            scale = len(batch.x) * self.context.world_size / batch.size
            (named["loss"] if scale == 1 else named["loss"] * scale).backward()
            problem = problem or gradient_problem(self.model, self.config.train.grad_clip)
        if distributed.any_process(problem is not None, self.context) and problem is None:
            problem = Problem("loss", ["loss (on another process)"])
        return problem

    @torch.no_grad()
    def fit_closed_form(self) -> dict[str, float]:
        """Fit a model that has a closed-form solution (e.g. PCA) on all training images at once; returns
        its mean training loss terms per image."""
        x = to_float(self.data.train_x.to(self.device), self.data.binarize, self.binarize_generator)
        self.model.fit_closed_form(x, None if self.data.train_y is None else self.data.train_y.to(self.device))
        self.model.eval()
        recon = kl = 0.0
        for start in range(0, len(x), EVAL_BATCH):
            t = self.model.terms(x[start : start + EVAL_BATCH])
            recon, kl = recon + t.recon.sum().item(), kl + t.kl.sum().item()
        return {"loss": (recon + kl) / len(x), "recon": recon / len(x), "kl": kl / len(x)}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean -ELBO terms per image on the validation split, in fp32, with fixed binarisation and noise."""
        x_all, y_all = self.data.val_x, self.data.val_y
        if len(x_all) == 0:
            return {}
        self.model.eval()
        binarize = torch.Generator(self.device).manual_seed(0)
        noise = torch.Generator(self.device).manual_seed(VAL_NOISE_SEED)
        recon = kl = 0.0
        for start in range(0, len(x_all), EVAL_BATCH):
            x = to_float(x_all[start : start + EVAL_BATCH].to(self.device), self.data.binarize, binarize)
            y = None if y_all is None else y_all[start : start + EVAL_BATCH].to(self.device)
            t = self.model.terms(x, y, noise)
            recon, kl = recon + t.recon.sum().item(), kl + t.kl.sum().item()
        n = len(x_all)
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
            images = len(self.data.train_x) if self.model.closed_form else self.source.images
            row |= {"seconds": seconds, "samples_per_s": images / seconds, "lr": cfg.lr}
            row |= {"batch_size": cfg.batch_size, "processes": self.context.world_size, "skipped": self.skipped}
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
        if val_loss < self.best_val:
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
        """Checkpoint folder first, then the files it publishes."""
        if not self.write_files:
            return
        weights = make_weights_bytes(self.model, self.metadata)
        save_checkpoint(self.run_dir, self.epoch, weights, self.trainer_state(), self.config.train.keep)
        self.publish(weights)

    def publish(self, weights: bytes) -> None:
        """The run's model.safetensors (and best.safetensors, when this epoch set the best validation loss) as
        ``weights``, and metrics.csv as the history, each atomically: after every checkpoint, and again on
        resume from the checkpoint's weights, since a kill after a checkpoint and before these files leaves
        them an epoch behind it (or metrics.csv with rows of epochs after it)."""
        if self.epochs_since_best == 0:  # this epoch set the best validation loss
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
        keys = [o.partition("=")[0].strip() for o in overrides]
        frozen = [o for o, key in zip(overrides, keys, strict=True) if not key.startswith(RESUMABLE_SECTIONS)]
        if frozen:
            raise ConfigError(f"on resume only train.* keys may change (e.g. train.epochs=30); got {frozen}")
        naming = [key for key in keys if key in ("train.out_dir", "train.name")]
        if naming:
            raise ConfigError(f"{naming[0]} names a new run's folder; --resume continues {resume} where it is "
                              "(copy the folder first to continue it elsewhere)")  # fmt: skip
        config = read_run_config(Path(resume))
    if isinstance(config, Config):
        return config_from_dict(apply_overrides(config.to_dict(), overrides)) if overrides else config
    return load_config(config, overrides)


def train(
    config: Config | str | Path | None = None,
    overrides: list[str] | None = None,
    resume: str | Path | None = None,
) -> Run | None:
    """Train a model and return its Run. ``config`` is a Config or a YAML path (defaults if None);
    ``overrides`` are ``key.sub=value`` strings; ``resume`` is a run folder to continue. Under torchrun
    every process trains its part (docs/scaling.md); rank 0 returns the Run, the other ranks None."""
    config = resolve_config(config, list(overrides or []), resume)
    context = distributed.context_from_env()
    started = distributed.start(context, resolve_device(config.train.device, context.local_rank))
    try:
        return _train(config, resume, context)
    finally:
        if started:
            distributed.stop()


def _train(config: Config, resume: str | Path | None, context: Context) -> Run | None:
    recorders = EpochRecorders(config) if context.main else None  # (TensorBoard's package is checked here, early)
    threads = set_threads(config.train.threads, context.local_world_size)
    seed_everything(config.seed)
    d = config.data
    data = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                        seed=config.seed, binarize=d.binarize, limit=d.limit)  # fmt: skip
    model = build_model(config.model, data.image_shape, data.num_classes)
    if resume is not None:
        run_dir = Path(resume)
    else:  # rank 0 names and creates the folder
        run_dir = distributed.broadcast(new_run_dir(config) if context.main else None, context)
    trainer = Trainer(config, data, model, run_dir, context)
    if resume is not None:
        trainer.restore()
    if not context.main:
        trainer.fit()
        return None
    atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
    (run_dir / IMAGES_DIR).mkdir(exist_ok=True)
    processes = f", {context.world_size} processes" if context.active else ""
    log(
        f"training {config.model.name} ({sum(p.numel() for p in model.parameters()):,} parameters) on "
        f"{data.name}: {len(data.train_x)} train / {len(data.val_x)} val images of "
        f"{'x'.join(map(str, data.image_shape))}, {threads} threads{processes} -> {run_dir}"
    )
    per_process = f" ({config.train.batch_size / context.world_size:g} per process)" if context.active else ""
    compiled = ", torch.compile on" if config.train.compile else ""
    log(
        f"device {trainer.device}, precision {trainer.choice.reason}, batch {config.train.batch_size}{per_process}"
        f"{compiled}, gradients {trainer.step_reason}"
    )
    trainer.on_epoch_end.append(recorders)
    trainer.fit()
    recorders.finish(trainer)  # the GIFs from the per-epoch frames
    run = load_run(run_dir)
    write_preview_images(run)
    if config.train.report:
        write_report(run)
    return run


def _quiet(message: str) -> None:
    """The log of processes other than rank 0."""
