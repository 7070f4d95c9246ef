"""The training loop: a model, its batches, an optimizer and callbacks; on one process or several (torchrun,
DDP), on the CPU or a GPU, fp32 or bf16. It knows nothing of files: a run folder's writer is one of its
callbacks (run_writer.py), and ``state_dict`` / ``load_state_dict`` are what a checkpoint keeps.

Determinism: the data order of epoch e is a permutation drawn from a generator seeded by (seed, e); dynamic
binarisation and the posterior noise draw from their own generators, whose states are part of the loop's
state. So a loop restored from the state after epoch e replays epochs e+1.. exactly as an uninterrupted run
would (same thread count, same machine). Several processes draw the order and the noise of each global batch
alike and each keeps its rows, so they take the steps one process would.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from .config import Config
from .data import ImageData, to_float
from .data.batches import Batch, InMemoryBatches
from .data.stream import StreamBatches
from .devices import resolve_device
from .distributed import SINGLE, Context, any_process, broadcast, shard_bounds, sum_over_processes, wrap
from .errors import ConfigError, RunError, TrainingError
from .evaluate.likelihood import elbo_per_image, loss_name
from .guards import FAILURE_FILE, NonFiniteGuard, Problem, gradient_problem, loss_problem, nonfinite_latent_dims
from .models import Model
from .parts.noise import BatchShard
from .precision import Choice, autocast, choose_precision
from .schedules import ema_decay, learning_rate, unfinished_warmups


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def log_nothing(message: str) -> None:
    """A log that prints nothing: other processes than rank 0, quiet estimators."""


def set_threads(threads: int, processes: int = 1) -> int:
    """Use ``threads`` torch threads (when 0, the cores this process may run on shared among ``processes``
    processes of this node), and flush denormal floats to zero: as a VAE trains, tiny gradients and Adam
    moments turn denormal and, without this, slow every CPU epoch after the second by 1.6x (measured:
    3.2 s -> 5.3 s per Fashion-MNIST epoch)."""
    n = threads or max(1, len(os.sched_getaffinity(0)) // processes)
    torch.set_num_threads(n)
    torch.set_flush_denormal(True)
    return n


def make_optimizer(model: Model, lr: float) -> torch.optim.Optimizer:
    """Adam on its fused kernel (one pass over all parameters) where the device supports it, over the model's
    parameter groups (an auxiliary network's own settings in its own group)."""
    try:
        return torch.optim.Adam(model.parameter_groups(), lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(model.parameter_groups(), lr=lr, foreach=True)


Callback = Callable[["Loop", dict[str, float]], None]


class Loop:
    """Trains ``model`` on ``data`` as ``config`` says; ``fit()`` runs the remaining epochs and calls each of
    ``callbacks(loop, row)`` after every epoch, ``row`` its metrics. ``context``: this process's place in a
    multi-process run; ``log``: where epoch lines go; ``failure_dir``: where failure.json goes (None: nowhere)."""

    def __init__(
        self,
        config: Config,
        data: ImageData,
        model: Model,
        context: Context = SINGLE,
        log: Callable[[str], None] = log_to_stderr,
        failure_dir=None,
    ):
        cfg = config.train
        self.config, self.data, self.context, self.log = config, data, context, log
        self.callbacks: list[Callback] = []
        self.device = resolve_device(cfg.device, context.local_rank)
        self.model = model.to(self.device)
        self.optimizer = None if model.closed_form else make_optimizer(model, cfg.lr)
        self.binarize_generator = torch.Generator(self.device).manual_seed(config.seed + 1)
        self.noise_generator = torch.Generator(self.device).manual_seed(config.seed + 2)  # posterior noise
        self.source = self.batch_source()
        model.objective.dataset_size = self.source.images  # N of the estimators of q(z) = 1/N sum_n q(z|x_n)
        model.objective.total_steps = self.total_steps()  # where warm-ups over a fraction of the run end
        self.choice = broadcast(self.choose_precision(), context)  # every process as rank 0 chose
        self.objective = wrap(model, context, self.device)  # model(x, y, step, noise): its loss terms
        if cfg.compile:
            with warnings.catch_warnings():  # torch's inductor imports torch.utils.mkldnn, whose classes use the
                warnings.simplefilter("ignore", DeprecationWarning)  # deprecated torch.jit.script_method: torch's own
                importlib.import_module("torch.utils.mkldnn")  # imported once, here, under this filter
            self.objective = torch.compile(self.objective)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimisation steps completed
        self.lr = cfg.lr  # the learning rate of the latest step (train.lr_schedule)
        self.weights = [w for w in model.parameters() if w.requires_grad]
        self.average = [w.detach().clone() for w in self.weights] if cfg.ema else None  # train.ema's average
        self.training_weights: list[torch.Tensor] | None = None  # kept aside while the model holds the average
        self.history: list[dict[str, float]] = []
        self.best_val = math.inf
        self.epochs_since_best = 0
        self.guard = NonFiniteGuard(failure_dir, cfg.on_nonfinite, cfg.max_skips, cfg.lr)
        self.skipped = 0  # batches skipped as non-finite in the current epoch
        self.clipped = 0  # steps whose gradient norm train.grad_clip cut, in the current epoch

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
        shard = shard_bounds(min(self.config.train.batch_size, len(self.data.train_x)), self.context)
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
    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights that resuming needs: counters, optimizer, RNG states, history."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "base_lr": self.config.train.lr,
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "binarize_rng": self.binarize_generator.get_state(),
            "noise_rng": self.noise_generator.get_state(),
            "device": self.device.type,
            "precision": self.choice.precision,
            "history": self.history,
            "training_weights": self.training_weights,
            "best_val": self.best_val,
            "epochs_since_best": self.epochs_since_best,
        }

    def load_state_dict(self, state: dict[str, Any], source) -> None:
        """Continue from ``state`` (read from ``source``, named in errors); a changed train.lr applies from here."""
        saved_on = state.get("device", "cpu")
        if saved_on != self.device.type:
            raise RunError(f"{source} was saved training on {saved_on}; resume it there (train.device={saved_on})")
        if self.optimizer is not None:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError, TypeError) as err:
                raise RunError(f"{source} does not fit this model's optimizer ({err})") from None
            saved_lr = state.get("base_lr", self.optimizer.param_groups[0]["lr"])
            if saved_lr != self.config.train.lr:  # resumed with train.lr=...: the new rate from here on
                self.log(f"learning rate {self.config.train.lr:g} from here on (it was {saved_lr:g})")
        torch.set_rng_state(state["torch_rng"])
        self.binarize_generator.set_state(state["binarize_rng"])
        self.noise_generator.set_state(state.get("noise_rng", state["torch_rng"]))  # older runs: torch's RNG
        if self.config.train.precision == "auto" and "precision" in state:  # keep what the run's probe chose
            self.choice = Choice(state["precision"], f"{state['precision']} (auto: as chosen when the run started)")
        self.epoch, self.step = state["epoch"], state["step"]
        aside = state.get("training_weights")  # saved with train.ema: the model was loaded with the average
        if aside is not None and len(aside) != len(self.weights):
            raise RunError(f"{source} does not fit this model's weights")
        aside = None if aside is None else [t.to(w.device) for t, w in zip(aside, self.weights, strict=True)]
        if self.average is not None:
            self.average = [w.detach().clone() for w in self.weights]
            self.training_weights = aside
        elif aside is not None:  # resumed with train.ema=0: training goes on from the training weights
            with torch.no_grad():
                torch._foreach_copy_(self.weights, aside)
        self.history = list(state["history"])
        self.best_val, self.epochs_since_best = state["best_val"], state["epochs_since_best"]

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
        self.use_training_weights()
        self.model.train()
        n_batches = len(self.source)
        sums, names, seen, self.skipped, self.clipped = None, [], 0, 0, 0
        bar = tqdm(total=min(n_batches, max_steps or n_batches), desc=f"epoch {epoch}/{self.config.train.epochs}",
                   leave=False, disable=not self.show_progress(), unit="batch")  # fmt: skip
        for i, batch in enumerate(self.batches(epoch)):
            if i == max_steps:
                break
            x, y = batch.x, batch.y
            if self.config.train.compile:  # a graph per batch size (the last batch of an epoch is smaller)
                torch._dynamo.mark_static(x, 0)
            noise = BatchShard(self.noise_generator, batch.size, batch.start, batch.stop)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.choice.precision, self.device):
                named = self.objective(x, y, self.step, noise)
            problem, clipped = self.backward(named, batch)
            if problem is not None:
                problem.latent_dims = nonfinite_latent_dims(self.model, x, y)
                self.guard.handle(problem, step=self.step + 1, epoch=epoch, batch=i, indices=batch.idx,
                                  last_good_epoch=self.epoch)  # fmt: skip
                self.skipped += 1
                bar.update()
                continue
            self.guard.passed()
            self.clipped += clipped
            self.lr = self.scheduled_lr()
            self.optimizer.step()
            self.step += 1
            if self.average is not None:
                weight = 1 - ema_decay(self.step, self.config.train.ema)
                torch._foreach_lerp_(self.average, [w.detach() for w in self.weights], weight)
            values = torch.stack([v.detach() for v in named.values()]) * len(x)  # one tensor for all terms
            sums = values if sums is None else sums.add_(values)
            names, seen = list(named), seen + len(x)
            if i % 25 == 0 and not bar.disable:
                bar.set_postfix(
                    {n: f"{v:.2f}" for n, v in zip(names, (sums / seen).tolist(), strict=True)}, refresh=False
                )
            bar.update()
        bar.close()
        self.use_average()
        if sums is None:
            raise TrainingError(f"every batch of epoch {epoch} was skipped as non-finite; see {FAILURE_FILE}")
        totals = sum_over_processes(torch.cat([sums.cpu(), torch.tensor([float(seen)])]), self.context)
        return dict(zip(names, (totals[:-1] / totals[-1]).tolist(), strict=True))

    @torch.no_grad()
    def use_average(self) -> None:
        """With train.ema: the model takes the average weights (what validation, checkpoints' model weights and
        the run's model.safetensors hold), its training weights kept aside for the next epoch."""
        if self.average is not None:
            self.training_weights = [w.detach().clone() for w in self.weights]
            torch._foreach_copy_(self.weights, self.average)

    @torch.no_grad()
    def use_training_weights(self) -> None:
        if self.training_weights is not None:
            torch._foreach_copy_(self.weights, self.training_weights)
            self.training_weights = None

    def total_steps(self) -> int:
        """The run's optimisation steps, train.epochs of this process's batches: where the schedules end."""
        return self.config.train.epochs * len(self.source)

    def scheduled_lr(self) -> float:
        """Set the rate of this step (``learning_rate`` of train.*) on every group but an auxiliary network's
        own (``fixed_lr``); a pure function of the step, so a resumed run takes the same rates."""
        cfg = self.config.train
        lr = learning_rate(self.step, cfg.lr, cfg.lr_schedule, cfg.warmup_steps, self.total_steps())
        for group in self.optimizer.param_groups:
            if not group.get("fixed_lr"):
                group["lr"] = lr
        return lr

    def backward(self, named: dict[str, torch.Tensor], batch: Batch) -> tuple[Problem | None, bool]:
        """Gradients of this process's share of the global batch's mean loss: (the problem that stops the step,
        or None; whether train.grad_clip cut their norm). The loss is a mean over this process's rows; DDP
        averages gradients over processes, so the share is loss x rows x processes / global batch. Every
        process takes the same decision."""
        problem, clipped = loss_problem(named), False
        if problem is None or self.context.active:  # a process that skipped backward would stall the others
            scale = len(batch.x) * self.context.world_size / batch.size
            (named["loss"] if scale == 1 else named["loss"] * scale).backward()
            if problem is None:
                problem, clipped = gradient_problem(self.model, self.config.train.grad_clip)
        if any_process(problem is not None, self.context) and problem is None:
            problem = Problem("loss", ["loss (on another process)"])
        return problem, clipped

    def fit_closed_form(self) -> dict[str, float]:
        """Fit a model that has a closed-form solution (PCA) on all training images at once; returns its mean
        -ELBO terms per image on them."""
        x = to_float(self.data.train_x.to(self.device), self.data.binarize, self.binarize_generator)
        self.model.fit_closed_form(x)
        return self.mean_terms(self.data.train_x, self.data.train_y)

    def validate(self) -> dict[str, float]:
        """Mean -ELBO terms per image on the validation split (what ``vaelab eval --split val`` reports)."""
        return self.mean_terms(self.data.val_x, self.data.val_y) if len(self.data.val_x) else {}

    def mean_terms(self, x: torch.Tensor, y: torch.Tensor | None) -> dict[str, float]:
        """Mean -ELBO, reconstruction and KL per image of uint8 images x, in fp32, with the evaluation's fixed
        binarisation and noise."""
        terms = elbo_per_image(self.model, x, y, self.data.binarize)
        return {"loss": terms["neg_elbo"].mean().item(), "recon": terms["recon"].mean().item(),
                "kl": terms["kl"].mean().item()}  # fmt: skip

    def show_progress(self) -> bool:
        mode = self.config.train.progress
        return mode == "always" or (mode == "auto" and sys.stderr.isatty())

    def fit(self) -> None:
        """Train the remaining epochs; after each, the callbacks, then one log line; stop early if configured."""
        cfg = self.config.train
        if self.step == 0 and not self.model.closed_form:
            warmups = {"train.warmup_steps": cfg.warmup_steps}
            warmups["model.kl_warmup_steps"] = getattr(self.config.model, "kl_warmup_steps", 0)
            for line in unfinished_warmups(warmups, self.total_steps()):
                self.log(line)
        while self.epoch < cfg.epochs and not (self.model.closed_form and self.epoch):  # one fit is all of it
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
            row |= {"seconds": seconds, "samples_per_s": images / seconds, "lr": self.lr}
            row |= {"batch_size": cfg.batch_size, "processes": self.context.world_size, "skipped": self.skipped}
            row |= {"clipped": self.clipped}
            self.history.append(row)
            self.update_early_stopping(val_terms.get("loss", train_terms["loss"]))
            for callback in self.callbacks:
                callback(self, row)
            self.log(self.epoch_line(row))
            if cfg.early_stopping and self.epochs_since_best >= cfg.early_stopping:
                self.log(f"early stopping: no better val loss for {cfg.early_stopping} epochs")
                break

    def update_early_stopping(self, val_loss: float) -> None:
        if val_loss < self.best_val:
            self.best_val, self.epochs_since_best = val_loss, 0
        else:
            self.epochs_since_best += 1

    def epoch_line(self, row: dict[str, float]) -> str:
        density = self.model.has_density
        val = f" | val {loss_name(density)} {row['val_loss']:.2f}" if "val_loss" in row else ""
        kl = f", kl {row['train_kl']:.2f}" if density else ""
        if "train_kl_weight" in row:  # a KL warm-up: the loss weighs the KL by this epoch's mean weight
            kl += f" at weight {row['train_kl_weight']:.2f}"
        clipped = f" | {row['clipped']} steps clipped" if row.get("clipped") else ""
        return (
            f"epoch {row['epoch']:>3}/{self.config.train.epochs}  train loss {row['train_loss']:.2f} "
            f"(recon {row['train_recon']:.2f}{kl}){val} | {row['seconds']:.1f} s, {row['samples_per_s']:.0f} img/s"
            f"{clipped}"
        )
