"""Configs as dataclasses: YAML files plus ``key.sub=value`` overrides; unknown keys and bad values are errors.

A config resolves in three steps: read the YAML into a dict, apply the overrides to that dict, then
build the dataclasses, checking every key and value. The ``model`` section's class is chosen by
``model.name`` from the model registry, so each model declares its own keys (models/config.py has the keys
they share).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .models import model_entry
from .models.config import ModelConfig
from .settings import setting
from .yaml_file import load_yaml_text, read_yaml_file

MAX_SEED = 2**63 - 1  # torch's generators take seeds below 2^63


@dataclass
class DataConfig:
    name: str = setting(
        "fashion-mnist", "dataset: a name or npz:PATH, folder:PATH, npy:PATH (vaelab datasets lists them)"
    )
    data_dir: str | None = setting(
        None, "folder holding the dataset's files; null: $VAELAB_DATA and the places vaelab datasets lists"
    )
    binarize: Literal["none", "static", "dynamic"] = setting(
        "dynamic", "pixels as {0, 1} draws of Bernoulli(x / 255): afresh each batch (dynamic), once (static), or none"
    )
    val_fraction: float = setting(0.1, "share of the training images held out for validation, in [0, 0.9]")
    test_fraction: float = setting(0.1, "share held out for testing, only for datasets without an official test split")
    limit: int | None = setting(None, "keep the first N (shuffled) training images, for quick runs; null: all")
    buffer_mb: int = setting(256, "npy:PATH data: memory for the shuffle window of streamed images, in MB")


@dataclass
class TrainConfig:
    epochs: int = setting(20, "passes over the training images")
    batch_size: int = setting(128, "images per optimisation step (over all processes of a torchrun)")
    lr: float = setting(1e-3, "Adam's learning rate (the peak, under a warm-up or a schedule)")
    lr_schedule: Literal["constant", "cosine"] = setting(
        "constant", "after the warm-up: lr throughout, or cosine decay to 0 at the last step of train.epochs"
    )
    warmup_steps: int = setting(0, "the learning rate rises linearly to lr over these first steps; 0 = off")
    ema: float = setting(
        0.0, "decay of a moving average of the weights, which validation and the saved model hold; 0 = off"
    )
    early_stopping: int = setting(0, "stop after this many epochs without a better val loss; 0 = off")
    threads: int = setting(0, "torch threads; 0 = the cores this process may use")
    out_dir: str = setting("runs", "folder the run folder is made in")
    name: str | None = setting(None, "run folder name; null: <model>-<data>-<timestamp>")
    progress: Literal["auto", "always", "never"] = setting("auto", "progress bar: auto shows it only on a terminal")
    keep: int = setting(
        1, "epoch checkpoints kept (each holds the optimizer state); resume takes the newest that loads"
    )
    on_nonfinite: Literal["stop", "skip"] = setting(
        "stop", "a non-finite loss or gradient: stop training, or skip the batch"
    )
    max_skips: int = setting(10, "with on_nonfinite=skip: stop after this many skipped batches in a row")
    grad_clip: float = setting(
        0.0, "clip the global gradient L2 norm to this; 0 = off (metrics.csv counts the steps it cut)"
    )
    frames: bool = setting(True, "per-epoch frames (images/frames/, training.gif) and latent_stats.csv")
    tensorboard: bool = setting(False, "TensorBoard scalars and images in RUN/tensorboard/ (the tensorboard extra)")
    report: bool = setting(True, "write the standard pictures and report.html when training ends")
    device: Literal["auto", "cpu", "cuda", "mps"] = setting(
        "auto", "where to train: auto (a GPU when torch sees one, else the CPU), cpu, cuda or mps"
    )
    precision: Literal["fp32", "bf16", "auto"] = setting(
        "fp32", "fp32; bf16: autocast matmuls; auto: bf16 where a probe finds it faster"
    )
    compile: bool = setting(False, "torch.compile the objective (docs/performance.md says when it pays)")


@dataclass
class Config:
    seed: int = setting(0, "drives torch, numpy and Python's RNGs, the data order and the validation split")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from defaults), apply ``key.sub=value`` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        raw = read_yaml_file(path) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping of config sections, not {type(raw).__name__}")
    return config_from_dict(apply_overrides(raw, overrides or []))


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b=value`` set; values are parsed as YAML scalars/lists."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value, e.g. train.epochs=5")
        try:
            value = load_yaml_text(text) if text else None
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return raw


RETIRED_KEYS = {"train": ("step",)}  # keys older run folders hold that no longer mean anything
# model keys added with a default other than what older run folders, which lack them, were trained with
EARLIER_DEFAULTS = {"iaf-vae": {"flow_step": "gated"}}


def as_written_now(raw: dict[str, Any]) -> dict[str, Any]:
    """A run folder's config as this version reads it: without the keys of ``RETIRED_KEYS`` (train.step chose the
    hand-written training step, removed in favour of autograd, which is as fast: docs/performance.md), and with the
    ``EARLIER_DEFAULTS`` of its model where it lacks those keys (iaf-vae's steps were gated before flow_step)."""
    if not isinstance(raw, dict):
        return raw  # config_from_dict says what is wrong with it
    raw = copy.deepcopy(raw)
    for section, keys in RETIRED_KEYS.items():
        for key in keys:
            if isinstance(raw.get(section), dict):
                raw[section].pop(key, None)
    model = raw.get("model")
    if isinstance(model, dict):
        for key, value in EARLIER_DEFAULTS.get(model.get("name"), {}).items():
            model.setdefault(key, value)
    return raw


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a Config from nested dicts (as read from YAML)."""
    raw = dict(raw)
    model_raw = raw.get("model") or {}
    if not isinstance(model_raw, dict):
        raise ConfigError("config section 'model' must be a mapping")
    model_cls = model_entry(model_raw.get("name", ModelConfig.name)).config_cls
    config = _build(Config, raw, prefix="", section_classes={"model": model_cls})
    _check_ranges(config)
    return config


def _build(cls: type, raw: Any, prefix: str, section_classes: dict[str, type] | None = None) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of keys, not {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(_unknown_key_message(prefix + str(key), [prefix + name for name in fields]))
    values = {}
    for name in fields:
        if name not in raw:
            continue
        sub_cls = (section_classes or {}).get(name, hints[name])
        if dataclasses.is_dataclass(sub_cls):
            values[name] = _build(sub_cls, raw[name] or {}, prefix + name + ".")
        else:
            values[name] = _check_value(prefix + name, raw[name], hints[name])
    for name, sub_cls in (section_classes or {}).items():
        values.setdefault(name, sub_cls())
    return cls(**values)


def _unknown_key_message(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else f"; valid keys here: {', '.join(valid)}"
    return f"Unknown config key: {key}{hint}"


def _check_value(key: str, value: Any, hint: Any) -> Any:
    """Return ``value`` converted to the annotated type, or raise a ConfigError naming the key."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(key, value, inner)
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint_text = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{key} must be one of {', '.join(map(str, args))}; got {value!r}{hint_text}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list like [512, 256]; got {value!r}")
        return [_check_value(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is bool or hint is str:
        if isinstance(value, hint):
            return value
    else:
        raise TypeError(f"config type {hint} of {key} is not supported")  # a bug in a config class
    raise ConfigError(f"{key} must be {hint.__name__}; got {value!r}")


def validate_pixel_context(model) -> None:
    """model.pixel_context: 0, or an odd window of at least 3 under the Bernoulli likelihood (a model whose
    objective cannot take it refuses it in its own config's ``validate``)."""
    k = model.pixel_context
    if k == 0:
        return
    if k < 3 or k % 2 == 0:
        raise ConfigError(f"model.pixel_context must be 0 (off) or an odd window size >= 3, e.g. 5; got {k}")
    if model.likelihood != "bernoulli":
        raise ConfigError("model.pixel_context needs model.likelihood=bernoulli (it conditions Bernoulli pixels)")


def _check_ranges(config: Config) -> None:
    """Range checks the type system cannot express."""
    rules = [
        ("model.latent_dim", config.model.latent_dim >= 1),
        ("train.epochs", config.train.epochs >= 1),
        ("train.batch_size", config.train.batch_size >= 1),
        ("train.lr", config.train.lr > 0),
        ("train.warmup_steps", config.train.warmup_steps >= 0),
        ("train.ema", 0 <= config.train.ema < 1),
        ("train.keep", config.train.keep >= 1),
        ("train.max_skips", config.train.max_skips >= 1),
        ("data.buffer_mb", config.data.buffer_mb >= 1),
        ("model.gaussian_std", config.model.gaussian_std > 0),
        ("model.hidden", all(h >= 1 for h in config.model.hidden)),
        ("model.channels", all(c >= 1 for c in config.model.channels)),
    ]
    for key, ok in rules:
        if not ok:
            raise ConfigError(f"{key} must be positive; got {attrgetter(key)(config)!r}")
    optional = [  # keys where 0 has a meaning of its own
        ("train.threads", "all cores"),
        ("train.early_stopping", "off"),
        ("train.grad_clip", "off"),
    ]
    for key, zero in optional:
        if attrgetter(key)(config) < 0:
            raise ConfigError(f"{key} must be >= 0 (0: {zero}); got {attrgetter(key)(config)!r}")
    for key in ("train.lr", "train.grad_clip", "model.gaussian_std"):
        if not math.isfinite(attrgetter(key)(config)):
            raise ConfigError(f"{key} must be a finite number; got {attrgetter(key)(config)!r}")
    if not 0 <= config.seed <= MAX_SEED:
        raise ConfigError(f"seed must lie in 0..2^63-1; got {config.seed}")
    validate_pixel_context(config.model)
    if config.model.residual and config.model.net != "mlp":
        raise ConfigError(f"model.residual shapes the MLP's hidden layers: drop it, or set model.net=mlp (it is "
                          f"{config.model.net})")  # fmt: skip
    config.model.validate()
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(config.data, key) <= 0.9:
            raise ConfigError(f"data.{key} must lie in [0, 0.9]; got {getattr(config.data, key)}")
