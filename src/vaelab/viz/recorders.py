"""What the training loop records after each epoch besides its checkpoint, chosen by the config: frames and latent
statistics (``train.frames``), TensorBoard events (``train.tensorboard``); and, when training ends, the GIFs."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from .frames import FrameRecorder
from .gif import write_training_gifs
from .tensorboard import TensorBoardLogger


class EpochRecorders:
    """One epoch callback of the loop for all per-epoch recording into ``run_dir``. Built before training so
    that a missing tensorboard package is reported before any work is done."""

    def __init__(self, config: Config, run_dir: Path):
        train, self.run_dir = config.train, Path(run_dir)
        self.tensorboard = TensorBoardLogger(run_dir) if train.tensorboard else None
        self.frames = FrameRecorder(run_dir, save=train.frames) if train.frames or self.tensorboard else None

    def __call__(self, loop, row: dict[str, float]) -> None:
        frame = self.frames(loop, row) if self.frames is not None else None
        if self.tensorboard is not None:
            self.tensorboard(loop, row, frame)

    def finish(self, loop) -> None:
        """Assemble the GIFs from the frames of epochs 1..loop.epoch; close the TensorBoard writer."""
        if self.frames is not None and self.frames.save:
            write_training_gifs(self.run_dir, loop.epoch)
        if self.tensorboard is not None:
            self.tensorboard.close()
