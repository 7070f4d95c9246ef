"""The standard pictures of a run, written to its ``images/`` folder by ``vaelab report`` and at the end of
training: curves, KL per dimension, a traversal, the latent map, the manifold grid (2-D latents), and the GIFs
assembled from the per-epoch frames. ``samples.png`` and ``reconstructions.png`` are written by training (and
rewritten by ``vaelab sample`` / ``vaelab reconstruct``); they are made here only when missing."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import to_float
from .curves import kl_heatmap, training_curves
from .gif import write_training_gifs
from .grids import image_grid, reconstruction_grid, save_png
from .latent_map import latent_map, manifold_grid
from .latent_stats import read_latent_stats
from .traverse import traverse

TRAVERSAL_ROWS = 10  # the report's traversal shows at most this many dimensions (largest KL first)
PICTURES = {  # key -> file in images/, in the order a report shows them
    "curves": "curves.png",
    "kl_per_dim": "kl_per_dim.png",
    "reconstructions": "reconstructions.png",
    "samples": "samples.png",
    "traversal": "traversal.png",
    "latent_map": "latent_map.png",
    "manifold": "manifold.png",
    "training_gif": "training.gif",
    "latent_map_gif": "latent_map.gif",
}


def picture_scale(run) -> int:
    """Upscaling for image grids: 2 for 28x28 images, more for smaller ones."""
    return max(2, 56 // run.model.image_shape[1])


def picture_split(run) -> str:
    """The split the pictures show: test, or the first non-empty of val and train when it is empty."""
    return next((s for s in ("test", "val", "train") if len(run.data.split(s)[0])), "train")


def write_preview_images(run, n: int = 64) -> dict[str, Path]:
    """Prior samples and test reconstructions of a trained run, in its images/ folder."""
    data = run.data
    x_all, y_all = data.split(picture_split(run))  # test, or val / train when the test split is empty
    x = to_float(x_all[:32], data.binarize, torch.Generator().manual_seed(0))
    y = None if y_all is None else y_all[:32]
    per_class = 8
    labels = run.sampling_labels(per_class, None, grid_by_label=True) if run.conditional else None
    samples = run.sample(n if labels is None else len(labels), y=labels)
    return {
        "samples": save_png(
            image_grid(samples, per_class if labels is not None else None), run.images_dir / "samples.png", scale=2
        ),
        "reconstructions": save_png(
            reconstruction_grid(x, run.reconstruct(x, y if run.conditional else None)),
            run.images_dir / "reconstructions.png",
            scale=2,
        ),
    }


def write_run_pictures(run) -> dict[str, Path]:
    """(Re)write the standard pictures of a run; returns the existing ones by key (see ``PICTURES``)."""
    images = run.images_dir
    images.mkdir(parents=True, exist_ok=True)
    if not all((images / PICTURES[k]).is_file() for k in ("samples", "reconstructions")):
        write_preview_images(run)
    scale = picture_scale(run)
    metrics = run.metrics
    if metrics:
        save_png(training_curves(metrics), images / PICTURES["curves"])
    stats = read_latent_stats(run.path)
    if stats:
        save_png(kl_heatmap(stats), images / PICTURES["kl_per_dim"])
    split = picture_split(run)
    save_png(traverse(run, split=split, max_rows=TRAVERSAL_ROWS).labelled(scale), images / PICTURES["traversal"])
    save_png(latent_map(run, split), images / PICTURES["latent_map"])
    if run.model.spec.continuous == 2:
        save_png(manifold_grid(run), images / PICTURES["manifold"], scale)
    last_epoch = int(metrics[-1]["epoch"]) if metrics else None
    write_training_gifs(run.path, last_epoch, only_stale=True)
    return {key: images / name for key, name in PICTURES.items() if (images / name).is_file()}
