"""The run folder's writer, a callback of the training loop: after every epoch a checkpoint (weights and the
loop's state), then the files it publishes (model.safetensors, best.safetensors when the best epoch is not the
last, metrics.csv); and resuming a loop from the newest checkpoint that loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import (
    BEST_FILE,
    CHECKPOINT_DIR,
    TRAINER_FILE,
    WEIGHTS_FILE,
    atomic_write_bytes,
    list_checkpoints,
    load_latest_checkpoint,
    load_matching_state,
    remove_stale_temporaries,
    save_checkpoint,
    weights_bytes,
)
from .data import ImageData
from .errors import RunError
from .loop import Loop
from .models.model import upgrade_state
from .run import CONFIG_FILE, METRICS_FILE, write_number_csv


def model_metadata(data: ImageData) -> dict[str, Any]:
    """What loading a run needs besides its config: the image shape and the labels."""
    return {
        "image_shape": list(data.image_shape),
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "dataset": data.name,
    }


class RunWriter:
    """Writes a loop's progress into ``run_dir``, keeping the newest ``keep`` checkpoints."""

    def __init__(self, run_dir: Path, metadata: dict[str, Any], keep: int):
        self.run_dir, self.metadata, self.keep = Path(run_dir), metadata, keep

    def __call__(self, loop: Loop, row: dict[str, float]) -> None:
        """Checkpoint folder first, then the files it publishes."""
        weights = weights_bytes(loop.model, self.metadata)
        save_checkpoint(self.run_dir, loop.epoch, weights, loop.state_dict(), self.keep)
        self.publish(weights, loop)

    def publish(self, weights: bytes, loop: Loop) -> None:
        """The run's model.safetensors as ``weights``, checkpoint/best.safetensors while the best validation
        loss is an earlier epoch's, and metrics.csv as the loop's history, each atomically: after every
        checkpoint, and again on resume from the checkpoint's weights, since a kill after a checkpoint and
        before these files leaves them an epoch behind it (or metrics.csv with rows of epochs after it)."""
        final, best = self.run_dir / WEIGHTS_FILE, self.run_dir / CHECKPOINT_DIR / BEST_FILE
        if loop.epochs_since_best and not best.exists() and final.exists():
            # best.safetensors goes away only when an epoch sets the best, and model.safetensors is rewritten
            # only after it is back: model.safetensors still holds that epoch's weights
            atomic_write_bytes(best, final.read_bytes())
        atomic_write_bytes(final, weights)
        if not loop.epochs_since_best:  # this epoch set the best: model.safetensors holds the best weights
            best.unlink(missing_ok=True)
        if loop.history:
            write_number_csv(self.run_dir / METRICS_FILE, loop.history)

    def restore(self, loop: Loop, write: bool = True) -> None:
        """Continue ``loop`` from the newest loadable checkpoint (clearing what interrupted writes left);
        ``write``: republish its files (rank 0 of several processes alone writes)."""
        if write:
            remove_stale_temporaries(self.run_dir)
        if not list_checkpoints(self.run_dir):
            if (self.run_dir / WEIGHTS_FILE).exists() or (self.run_dir / METRICS_FILE).exists():
                raise RunError(
                    f"{self.run_dir} has trained weights but no {CHECKPOINT_DIR}/ to resume from; "
                    "start a new run (its weights stay usable with eval, sample, ...)"
                )
            loop.log(f"{self.run_dir} has no checkpoint yet (stopped in its first epoch): starting from the beginning")
            return
        folder, weights, state, skipped = load_latest_checkpoint(self.run_dir)
        for message in skipped:
            loop.log(message)
        load_matching_state(loop.model, upgrade_state(weights), folder / WEIGHTS_FILE, self.run_dir / CONFIG_FILE)
        loop.load_state_dict(state, folder / TRAINER_FILE)
        if write:
            self.publish((folder / WEIGHTS_FILE).read_bytes(), loop)
        loop.log(f"resuming {self.run_dir} from {folder.name} (step {loop.step})")
