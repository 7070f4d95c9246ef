"""Whole-epoch training images/s: vaelab's default config in its own loop against pythae 0.1.2's BaseTrainer.

Both sides train the same network in this one process, epoch by epoch in turn (round r: one vaelab epoch and one
pythae epoch, the order alternating per round), so that each sees the same machine load:

- vaelab: configs/vae-mlp.yaml with pythae's network and optimiser (ReLU, constant Adam 1e-3, no averaging:
  bench/families.py's PROTOCOL) and the default's ``train.precision: auto`` (bf16 where the CPU has it natively and
  a probe finds it faster; --precision fp32 for both sides in fp32) through ``vaelab.loop.Loop``; one epoch is
  ``loop.train_epoch(e)``, timed whole: its 422 batches of 128 of the 54,000 training images in its seeded order,
  dynamic binarisation per batch, loss, backward, Adam 1e-3 step (no validation, no files written);
- pythae: its VAE on bench/peers/pythae_families.py's encoder and decoder (the same MLP 784-512-512 (ReLU) -> 32-d
  Gaussian, 32-512-512-784 Bernoulli, pythae's BCE of sigmoid probabilities) trained by its real trainer,
  ``pythae.trainers.BaseTrainer`` (BaseTrainerConfig: batch 128, Adam lr 1e-3, no scheduler, no eval set,
  ``train_dataloader_num_workers=0``, no checkpoints (``steps_saving=None``), output_dir a temporary directory, its
  default callbacks only: its tqdm progress bar and its console printer, no wandb/mlflow/comet). The trainer is
  built and ``prepare_training()`` run once (its optimizer, output folder, callbacks); one epoch is
  ``trainer.train_step(e)``, timed whole: pythae's whole pass over its DataLoader (shuffled, per-image
  ``BaseDataset.__getitem__`` and ``collate_dataset_output``), forward, loss, ``_optimizers_step``, ``loss.item()``
  and its progress-bar callback per step, ``model.update()`` at the end. Excluded, as set-up or bookkeeping that
  ``train()`` does around an epoch: the trainer's construction (with its sanity-check forward), the per-epoch
  ``deepcopy`` of the best model, the logging callbacks, the final ``save_model``.

pythae's dataset is a float tensor and its trainer cannot binarise per batch, so it gets the same 54,000 training
images scaled to [0, 1] (x / 255, grey levels, as its samplers are fitted in pythae_families.py): the images/s
compared are those of the loop (data path, step, bookkeeping) on the same network and batch size, not of the same
protocol. Reports per side the median seconds per epoch over ``--rounds`` rounds, images/s (54,000 / that), and
the ratio vaelab images/s / pythae images/s; prints a table and writes bench/results/pythae_trainer-<UTC time>.json.

pythae is never a dependency of vaelab: it runs in the scratch venv that bench/peers/pythae_families.py's docstring
sets up. Run (from the repository root):
    /work/pythae-venv/bin/python bench/peers/pythae_trainer.py --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]  # peers/, bench/
from pythae.data.datasets import BaseDataset  # noqa: E402
from pythae.trainers import BaseTrainer, BaseTrainerConfig  # noqa: E402
from pythae_families import BATCH, LR, SEED, build_pythae  # noqa: E402

from common import default_setup, write_result  # noqa: E402
from families import PROTOCOL  # noqa: E402
from vaelab.loop import Loop, log_nothing, set_threads  # noqa: E402
from vaelab.models import build_model  # noqa: E402


def pythae_trainer(train_x: torch.Tensor, train_y: torch.Tensor | None, epochs: int, output_dir: str) -> BaseTrainer:
    """pythae's BaseTrainer on its VAE (pythae_families' network, weights drawn after torch.manual_seed(0)) and the
    training images x / 255, prepared for training (optimizer, output folder, default callbacks)."""
    config = BaseTrainerConfig(output_dir=output_dir, num_epochs=epochs, per_device_train_batch_size=BATCH,
                               learning_rate=LR, optimizer_cls="Adam", train_dataloader_num_workers=0,
                               steps_saving=None, steps_predict=None, seed=SEED, no_cuda=True)  # fmt: skip
    labels = torch.zeros(len(train_x)) if train_y is None else train_y  # pythae's dataset needs labels; unused
    dataset = BaseDataset(train_x.float().div_(255), labels)  # (N, 1, 28, 28) in [0, 1]
    trainer = BaseTrainer(build_pythae("vae"), dataset, training_config=config)
    trainer.prepare_training()
    return trainer


def pythae_epoch(trainer: BaseTrainer, epoch: int) -> tuple[float, float]:
    """Seconds of pythae's ``train_step(epoch)`` (its whole epoch over its DataLoader) and its mean loss; the
    progress bar is closed afterwards, untimed, as ``train()``'s ``on_epoch_end`` does."""
    start = time.perf_counter()
    loss = trainer.train_step(epoch)
    seconds = time.perf_counter() - start
    trainer.callback_handler.on_epoch_end(training_config=trainer.training_config)
    return seconds, float(loss)


def vaelab_epoch(loop: Loop, epoch: int) -> tuple[float, float]:
    """Seconds of vaelab's ``loop.train_epoch(epoch)`` and its mean loss per image."""
    start = time.perf_counter()
    terms = loop.train_epoch(epoch)
    return time.perf_counter() - start, float(terms["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="epochs per side, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (torch.set_num_threads)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="vaelab's train.precision (auto, the default config's: bf16 where the CPU has "
                             "it natively and it is faster); pythae trains in fp32, the only one it has")  # fmt: skip
    args = parser.parse_args()
    threads = set_threads(args.threads)  # also flushes denormals, for both libraries alike

    config, data = default_setup([*PROTOCOL, f"train.precision={args.precision}"])
    n_images = len(data.train_x)
    torch.manual_seed(SEED)
    loop = Loop(config, data, build_model(config.model, data.image_shape), log=log_nothing)
    print(f"vaelab precision: {loop.choice.reason}", flush=True)
    seconds: dict[str, list[float]] = {"vaelab": [], "pythae": []}
    losses: dict[str, list[float]] = {"vaelab": [], "pythae": []}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pythae_trainer(data.train_x, data.train_y, args.rounds, tmp)
        for r in range(args.rounds):
            order = ("vaelab", "pythae") if r % 2 == 0 else ("pythae", "vaelab")
            for side in order:
                s, loss = vaelab_epoch(loop, r + 1) if side == "vaelab" else pythae_epoch(trainer, r + 1)
                seconds[side].append(s)
                losses[side].append(loss)
                print(f"round {r + 1}/{args.rounds} {side}: {s:.1f} s, {n_images / s:.0f} images/s, loss {loss:.2f}",
                      flush=True)  # fmt: skip

    sides = {}
    for side in ("vaelab", "pythae"):
        median = statistics.median(seconds[side])
        sides[side] = {"median_epoch_seconds": median, "images_per_second": n_images / median,
                       "epoch_seconds": seconds[side], "train_loss": losses[side]}  # fmt: skip
    ratio = sides["vaelab"]["images_per_second"] / sides["pythae"]["images_per_second"]
    figures = {
        "pythae_version": version("pythae"), "threads": threads, "rounds": args.rounds, "train_images": n_images,
        "batch_size": BATCH, "lr": LR, "vaelab_precision": loop.choice.precision,
        "vaelab_precision_reason": loop.choice.reason, "ratio_vaelab_over_pythae_images_per_second": ratio, **sides,
        "timed": {
            "vaelab": "loop.train_epoch(e) of configs/vae-mlp.yaml + PROTOCOL (its "
                      "precision replaced by --precision), dynamic binarisation",
            "pythae": "BaseTrainer.train_step(e) after prepare_training(): its DataLoader (num_workers 0, shuffle, "
                      "BaseDataset + collate_dataset_output), its default progress-bar callback; images x / 255",
        },
        "order": "round r: vaelab then pythae when r is odd (from 1), pythae then vaelab when even",
    }  # fmt: skip
    print(f"\nwhole-epoch training, {n_images} images, batch {BATCH}, {threads} thread(s), median of {args.rounds}")
    print("| loop | s / epoch | images / s |")
    print("| --- | --- | --- |")
    for side, label in (("vaelab", "vaelab Loop"), ("pythae", f"pythae {figures['pythae_version']} BaseTrainer")):
        print(f"| {label} | {sides[side]['median_epoch_seconds']:.1f} | {sides[side]['images_per_second']:.0f} |")
    print(f"vaelab images/s / pythae images/s: {ratio:.2f}")
    write_result("pythae_trainer", figures)


if __name__ == "__main__":
    main()
