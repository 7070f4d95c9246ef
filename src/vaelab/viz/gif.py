"""Animated GIFs from per-epoch frames: ``images/training.gif`` and, for 2-D latents, ``images/latent_map.gif``."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ..checkpoint import atomic_write_bytes
from ..run import IMAGES_DIR
from .frames import frame_files

FRAME_MS = 200  # display time of a frame
LAST_FRAME_MS = 1500  # the final epoch stays a little longer
GIFS = {"training.gif": "epoch", "latent_map.gif": "latent"}  # file -> kind of frame


def gif_bytes(frames: list[Path], frame_ms: int = FRAME_MS, last_ms: int = LAST_FRAME_MS) -> bytes:
    """The PNG ``frames`` (same size, in order) as a looping GIF, one GIF frame per PNG."""
    if not frames:
        raise ValueError("no frames to assemble")
    images = []
    for frame in frames:
        with Image.open(frame) as image:
            image.load()
            images.append(image.convert("L") if image.mode in ("L", "LA") else image.convert("RGB").quantize(256))
    durations = [frame_ms] * (len(images) - 1) + [last_ms]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buffer.getvalue()


def write_training_gifs(run_dir: str | Path, last_epoch: int | None = None, only_stale: bool = False) -> None:
    """Assemble each GIF whose frames exist (epochs up to ``last_epoch``); ``only_stale``: skip a GIF newer
    than its newest frame."""
    for name, kind in GIFS.items():
        frames = frame_files(run_dir, kind, last_epoch)
        path = Path(run_dir) / IMAGES_DIR / name
        if not frames:
            continue
        newest = max(f.stat().st_mtime for f in frames)
        if not (only_stale and path.is_file() and path.stat().st_mtime >= newest):
            atomic_write_bytes(path, gif_bytes(frames))
