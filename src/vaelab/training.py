"""``train()``: a config in, a trained run folder out. It builds the data and the model, attaches the run
folder's writer and the per-epoch recorders to the training loop (loop.py), runs it, and writes the pictures
and the report; ``resume`` continues a run folder exactly where its last checkpoint left it."""

from __future__ import annotations

import contextlib
import errno
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write_text, filled_dir
from .config import Config, apply_overrides, config_from_dict, load_config
from .data import load_dataset
from .devices import resolve_device
from .distributed import Context, broadcast, context_from_env, start, stop
from .errors import ConfigError, Interrupted, RunError
from .lock import run_lock
from .loop import Loop, log_nothing, log_to_stderr, set_threads
from .models import build_model
from .nets import Nets
from .resources import check_training_fits
from .run import CONFIG_FILE, IMAGES_DIR, Run, load_run, read_run_config
from .run_writer import RunWriter, model_metadata
from .viz import EpochRecorders, write_report
from .viz.pictures import write_preview_images
from .viz.tensorboard import require_tensorboard


def seed_everything(seed: int) -> None:
    """One seed drives Python's, NumPy's and torch's RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def new_run_dir(config: Config) -> Path:
    """Create the run folder with its config.yaml in one step (a temp folder renamed into place), so a
    crash never leaves a run folder without its config."""
    name = config.train.name or f"{config.model.name}-{config.data.name}-{datetime.now():%Y%m%d-%H%M%S}"
    name = name.replace("/", "_").replace(":", "_")
    root = Path(config.train.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    with filled_dir(root, name) as tmp:
        atomic_write_text(tmp / CONFIG_FILE, config.to_yaml())
        path, n = root / name, 1
        while True:
            try:
                tmp.rename(path)  # fails if path exists (as a non-empty folder): then try the next name
                return path
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):  # not a name taken
                    raise
                n += 1
                path = root / f"{name}-{n}"


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
    nets: Nets | None = None,
) -> Run | None:
    """Train a model and return its Run. ``config`` is a Config or a YAML path (defaults if None);
    ``overrides`` are ``key.sub=value`` strings; ``resume`` is a run folder to continue; ``nets``: an encoder
    and a decoder of your own in place of the ones model.net builds (docs/api.md). Under torchrun every
    process trains its part (docs/scaling.md); rank 0 returns the Run, the other ranks None."""
    config = resolve_config(config, list(overrides or []), resume)
    if nets is not None:
        config = config_from_dict(apply_overrides(config.to_dict(), ["model.net=custom"]))
    context = context_from_env()
    started = start(context, resolve_device(config.train.device, context.local_rank))
    finished = False
    try:
        run = _train(config, resume, context, nets)
        finished = True
        return run
    finally:
        if started:
            stop(finished)


def _owned(run_dir: Path, context: Context) -> contextlib.AbstractContextManager:
    """The run folder's lock, taken by rank 0; under torchrun every rank learns whether it got it (and stops
    with its message if not)."""
    if not context.active:
        return run_lock(run_dir)
    stack, error = contextlib.ExitStack(), None
    if context.main:
        try:
            stack.enter_context(run_lock(run_dir))
        except RunError as err:
            error = str(err)
    error = broadcast(error, context)
    if error is not None:
        stack.close()
        raise RunError(error)
    return stack


def _train(config: Config, resume: str | Path | None, context: Context, nets: Nets | None) -> Run | None:
    with contextlib.ExitStack() as owned:
        if resume is not None:  # before any work: a folder another process writes is refused at once
            owned.enter_context(_owned(Path(resume), context))
        return _train_owned(config, resume, context, nets, owned)


def _train_owned(
    config: Config, resume: str | Path | None, context: Context, nets: Nets | None, owned: contextlib.ExitStack
) -> Run | None:
    if config.train.tensorboard and context.main:
        require_tensorboard()  # a missing package is reported before any work is done
    threads = set_threads(config.train.threads, context.local_world_size)
    seed_everything(config.seed)
    d = config.data
    data = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                        seed=config.seed, binarize=d.binarize, limit=d.limit)  # fmt: skip
    if nets is None:  # your own networks are built already; vaelab's are estimated before they are
        check_training_fits(config, data.image_shape, data.num_classes)
    model = build_model(config.model, data.image_shape, data.num_classes, nets)
    if model.closed_form and model.spec.continuous > len(data.train_x):  # found before a run folder is made
        raise ConfigError(
            f"model.latent_dim={model.spec.continuous} exceeds the {len(data.train_x)} training images of "
            f"{data.name} ({config.model.name}); lower model.latent_dim or data.val_fraction, data.test_fraction"
        )
    new_dir = None if resume is not None else broadcast(new_run_dir(config) if context.main else None, context)
    run_dir = Path(resume) if resume is not None else new_dir  # rank 0 names and creates a new folder
    if resume is None and context.main:
        owned.enter_context(run_lock(run_dir))
    try:
        return _fit(config, data, model, run_dir, resume, context, nets, threads)
    except Interrupted:
        raise
    except KeyboardInterrupt:  # Ctrl+C or SIGTERM: say which folder to resume
        raise Interrupted(run_dir) from None


def _fit(config: Config, data, model, run_dir: Path, resume, context: Context, nets: Nets | None, threads: int):
    writer = RunWriter(run_dir, model_metadata(data), config.train.keep)
    log = log_to_stderr if context.main else log_nothing
    loop = Loop(config, data, model, context, log=log, failure_dir=run_dir if context.main else None)
    if resume is not None:
        writer.restore(loop, write=context.main)
    if not context.main:
        loop.fit()
        return None
    atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
    (run_dir / IMAGES_DIR).mkdir(exist_ok=True)
    recorders = EpochRecorders(config, run_dir)
    loop.callbacks += [writer, recorders]
    processes = f", {context.world_size} processes" if context.active else ""
    log(
        f"training {config.model.name} ({sum(p.numel() for p in model.parameters()):,} parameters) on "
        f"{data.name}: {len(data.train_x)} train / {len(data.val_x)} val images of "
        f"{'x'.join(map(str, data.image_shape))}, {threads} threads{processes} -> {run_dir}"
    )
    per_process = f" ({config.train.batch_size / context.world_size:g} per process)" if context.active else ""
    compiled = ", torch.compile on" if config.train.compile else ""
    log(f"device {loop.device}, precision {loop.choice.reason}, batch {config.train.batch_size}{per_process}{compiled}")
    loop.fit()
    recorders.finish(loop)  # the GIFs from the per-epoch frames
    run = load_run(run_dir, nets=nets)
    write_preview_images(run)
    if config.train.report:
        write_report(run)
    return run
