"""A run folder and the trained model in it: ``load_run(path)`` gives a Run to encode, decode and sample with."""

from __future__ import annotations

import csv
import io
import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import WEIGHTS_FILE, atomic_write_text, load_matching_state, read_weights
from .config import Config, as_written_now, config_from_dict
from .errors import ConfigError, RunError
from .models import Model, build_model
from .models.model import upgrade_state
from .nets import Nets
from .yaml_file import read_yaml_file

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.json"
IMAGES_DIR = "images"


def read_run_config(path: Path) -> Config:
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise RunError(f"{path} is not a run folder: {CONFIG_FILE} is missing (runs are made by `vaelab train`)")
    try:
        return config_from_dict(as_written_now(read_yaml_file(config_path) or {}))
    except ConfigError as err:
        raise RunError(f"{config_path} is not a valid vaelab config: {err}") from None


def read_eval(path: Path) -> dict[str, Any] | None:
    """The run folder's eval.json ({split: results}): {} when it is missing, None when it is damaged (not a
    JSON object); an unreadable file raises OSError."""
    file = path / EVAL_FILE
    try:
        evaluation = json.loads(file.read_text()) if file.is_file() else {}
    except json.JSONDecodeError:
        return None
    return evaluation if isinstance(evaluation, dict) else None


def read_number_csv(path: Path, remedy: str) -> list[dict[str, float]]:
    """Rows of a CSV file of numbers as dicts of floats (empty cells left out), [] if there is no file; a
    RunError naming the file, the line and ``remedy`` if it is damaged."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        try:  # a short row gives None values, a long one a list under the key None: both fail float()
            return [{k: float(v) for k, v in row.items() if v != ""} for row in reader]
        except (TypeError, ValueError, csv.Error) as err:
            raise RunError(f"{path} is damaged (line {reader.line_num}: {err}); {remedy}") from None


def write_number_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """Write rows of numbers (the union of their keys as columns, in first-seen order) atomically as a CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def files_size(path: Path) -> int:
    """Bytes in the files under ``path`` (0 if there is no such folder)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


class Run:
    """A trained model with its config, metrics and data description; the model is in eval mode."""

    def __init__(self, path: Path, config: Config, model: Model, metadata: dict[str, Any]):
        self.path = path
        self.config = config
        self.model = model.eval()
        self.metadata = metadata
        self.class_names: list[str] | None = metadata.get("class_names")

    @property
    def metrics(self) -> list[dict[str, float]]:
        """Rows of metrics.csv as dicts of floats (empty if training has not finished an epoch)."""
        remedy = f"vaelab train --resume {self.path} writes it again from the last checkpoint"
        return read_number_csv(self.path / METRICS_FILE, remedy)

    @property
    def images_dir(self) -> Path:
        return self.path / IMAGES_DIR

    @cached_property
    def data(self):
        """The run's dataset with the run's splits (loaded on first use)."""
        from .data import load_dataset

        d = self.config.data
        return load_dataset(
            d.name, d.data_dir, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
            seed=self.config.seed, binarize=d.binarize, limit=d.limit,
        )  # fmt: skip

    def as_images(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Images as float (N, C, H, W) in [0, 1] on the model's device; accepts uint8 or float,
        flat (N, C*H*W) or image-shaped."""
        x = torch.as_tensor(x)
        shape = self.model.image_shape
        if x.ndim == 2 and x.shape[1] == np.prod(shape):
            x = x.reshape(-1, *shape)
        elif x.ndim == 3 and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
            x = x.unsqueeze(1)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, shape))}); got {tuple(x.shape)}")
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        return x.to(self.model.device)

    def as_labels(self, y) -> torch.Tensor | None:
        return None if y is None else torch.as_tensor(y).to(self.model.device)

    @torch.no_grad()
    def encode(self, x, y=None) -> torch.Tensor:
        """Posterior means (N, code size) of images (labels y for conditional models)."""
        return self.model.encode(self.as_images(x), self.as_labels(y)).mean

    @torch.no_grad()
    def decode(self, z, y=None) -> torch.Tensor:
        """Mean images (N, C, H, W) in [0, 1] of decoder inputs z (N, code size)."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.model.device)
        return self.model.decode_mean(z, self.as_labels(y))

    def sample(self, n: int, seed: int = 0, y=None, temperature: float = 1.0) -> torch.Tensor:
        """n images drawn from the model's prior (its continuous spread scaled by ``temperature``), reproducible
        by ``seed``."""
        generator = torch.Generator(self.model.device).manual_seed(seed)
        return self.model.sample(n, self.as_labels(y), generator, temperature)

    @property
    def conditional(self) -> bool:
        return self.config.model.conditional

    def sampling_labels(self, n: int, label: int | None, grid_by_label: bool) -> torch.Tensor | None:
        """Labels for drawing n images: None for an unconditional model, n copies of ``label``, or n of
        each class in turn (``grid_by_label``); a clear error for a missing or out-of-range label."""
        classes = self.model.num_classes if self.conditional else 0
        if (label is not None or grid_by_label) and not classes:
            raise ConfigError(f"{self.path} is not a conditional model: train one with model.conditional=true")
        if not classes:
            return None
        if grid_by_label:
            return torch.arange(classes).repeat_interleave(n)
        if label is None:
            raise ConfigError(f"{self.path} is a conditional model: choose a class with --label 0..{classes - 1}")
        if not 0 <= label < classes:
            names = f" ({', '.join(self.class_names)})" if self.class_names else ""
            raise ConfigError(f"--label {label} is out of range: this model knows labels 0..{classes - 1}{names}")
        return torch.full((n,), label)

    def reconstruct(self, x, y=None) -> torch.Tensor:
        return self.model.reconstruct(self.as_images(x), self.as_labels(y))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.config.model.name}, data={self.config.data.name})"


def load_run(path: str | Path, device: str = "cpu", nets: Nets | None = None) -> Run:
    """Rebuild the model of a run folder from its config.yaml and model.safetensors (``nets``: the encoder and
    decoder of a run trained on networks of your own, whose weights are then loaded into them)."""
    path = Path(path)
    if not path.is_dir():
        problem = f"{path} is a file, not a run folder" if path.exists() else f"run folder {path} does not exist"
        raise RunError(f"{problem}; `ls runs/` lists the runs made here")
    config = read_run_config(path)
    tensors, metadata = read_weights(path / WEIGHTS_FILE)
    model = build_model(config.model, tuple(metadata["image_shape"]), metadata.get("num_classes"), nets)
    load_matching_state(model, upgrade_state(tensors), path / WEIGHTS_FILE, path / CONFIG_FILE)
    return Run(path, config, model.to(device), metadata)
