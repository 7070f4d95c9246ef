"""TensorBoard logging (``train.tensorboard=true``): each epoch's metrics as scalars and its frame as an image,
written with ``torch.utils.tensorboard`` to the run folder's ``tensorboard/`` (``tensorboard --logdir RUN``).
The ``tensorboard`` package is an optional extra: ``pip install 'vaelab[tensorboard]'``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError

TENSORBOARD_DIR = "tensorboard"


def require_tensorboard():
    """torch's SummaryWriter, or a ConfigError saying how to install the missing package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        raise ConfigError(
            "train.tensorboard=true needs the tensorboard package, which is not installed: "
            "pip install 'vaelab[tensorboard]' (or pip install tensorboard), or set train.tensorboard=false"
        ) from None
    return SummaryWriter


def scalar_tag(key: str) -> str:
    """metrics.csv column -> TensorBoard tag: train_kl -> kl/train, val_loss -> loss/val, lr -> run/lr."""
    for split in ("train", "val"):
        if key.startswith(split + "_"):
            return f"{key[len(split) + 1 :]}/{split}"
    return f"run/{key}"


class TensorBoardLogger:
    """An epoch callback ``(loop, row, frame)``; the writer opens on the first call with ``purge_step`` at
    that epoch, so a resumed run replaces the events of the epochs it redoes."""

    def __init__(self, run_dir: Path):
        self.writer_class = require_tensorboard()
        self.run_dir, self.writer = Path(run_dir), None

    def __call__(self, loop, row: dict[str, float], frame: np.ndarray | None = None) -> None:
        epoch = int(row["epoch"])
        if self.writer is None:
            self.writer = self.writer_class(log_dir=str(self.run_dir / TENSORBOARD_DIR), purge_step=epoch)
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(scalar_tag(key), value, epoch)
        if frame is not None:
            rgb = np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame
            self.writer.add_image("frames", rgb, epoch, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
