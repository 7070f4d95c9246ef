"""What the trainer records after each epoch besides its checkpoint, chosen by the config: frames and latent
statistics (``train.frames``), TensorBoard events (``train.tensorboard``); and, when training ends, the GIFs."""

from __future__ import annotations

from ..config import Config
from .frames import FrameRecorder
from .gif import write_training_gifs
from .tensorboard import TensorBoardLogger


class EpochRecorders:
    """One ``Trainer.on_epoch_end`` callback for all per-epoch recording. Built before training so that a
    missing tensorboard package is reported before any work is done."""

    def __init__(self, config: Config):
        train = config.train
        self.tensorboard = TensorBoardLogger() if train.tensorboard else None
        self.frames = FrameRecorder(save=train.frames) if train.frames or self.tensorboard else None

    def __call__(self, trainer, row: dict[str, float]) -> None:
        frame = self.frames(trainer, row) if self.frames is not None else None
        if self.tensorboard is not None:
            self.tensorboard(trainer, row, frame)

    def finish(self, trainer) -> None:
        """Assemble the GIFs from the frames of epochs 1..trainer.epoch; close the TensorBoard writer."""
        if self.frames is not None and self.frames.save:
            write_training_gifs(trainer.run_dir, trainer.epoch)
        if self.tensorboard is not None:
            self.tensorboard.close()
