"""The standard pictures of a run, written to its ``images/`` folder by ``vaelab report`` and at the end of
training: curves, KL per dimension, a traversal, the latent map, the manifold grid (2-D latents), and the GIFs
assembled from the per-epoch frames. ``samples.png`` and ``reconstructions.png`` are written by training; they
are made here only when missing. The picture commands (``vaelab sample`` ...) write to ``images/adhoc/``
unless told where: they never replace the run's own pictures."""

from __future__ import annotations

from pathlib import Path

from .curves import kl_heatmap, training_curves
from .gif import write_training_gifs
from .grids import save_png
from .latent_map import latent_map, manifold_grid
from .latent_stats import read_latent_stats
from .sampling import reconstructions, sample_grid, samples_by_label
from .traverse import traverse

ADHOC_DIR = "adhoc"  # images/adhoc/: the picture commands' output, apart from the run's own pictures
TRAVERSAL_ROWS = 10  # the report's traversal shows at most this many active dimensions (largest KL first)
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


def adhoc_path(run, picture: str) -> Path:
    """A new ``images/adhoc/PICTURE-N.png`` of a run, N the first number not taken."""
    folder = run.images_dir / ADHOC_DIR
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{picture}-{n}.png").exists():
        n += 1
    return folder / f"{picture}-{n}.png"


def picture_scale(run) -> int:
    """Upscaling for image grids: 2 for 28x28 images, more for smaller ones."""
    return max(2, 56 // run.model.image_shape[1])


def picture_split(run) -> str:
    """The split the pictures show: test, or the first non-empty of val and train when it is empty."""
    return next((s for s in ("test", "val", "train") if len(run.data.split(s)[0])), "train")


def write_preview_images(run) -> None:
    """Prior samples and test reconstructions of a trained run, in its images/ folder."""
    scale = picture_scale(run)
    if run.conditional:
        save_png(samples_by_label(run).labelled(scale), run.images_dir / "samples.png")
    else:
        save_png(sample_grid(run, 64), run.images_dir / "samples.png", scale)
    save_png(reconstructions(run, 32, picture_split(run)).labelled(scale), run.images_dir / "reconstructions.png")


def report_traversal(run):
    """The report's traversal: the active dimensions of largest KL, at most ``TRAVERSAL_ROWS``; its ``note`` says
    which of how many active dimensions these are."""
    return traverse(run, split=picture_split(run), max_rows=TRAVERSAL_ROWS)


def write_run_pictures(run) -> None:
    """(Re)write the standard pictures of a run (see ``PICTURES``)."""
    images = run.images_dir
    images.mkdir(parents=True, exist_ok=True)
    if not all((images / PICTURES[k]).is_file() for k in ("samples", "reconstructions")):
        write_preview_images(run)
    scale = picture_scale(run)
    metrics = run.metrics
    if metrics:
        save_png(training_curves(metrics, run.model.has_density), images / PICTURES["curves"])
    stats = read_latent_stats(run.path)
    if stats:
        save_png(kl_heatmap(stats), images / PICTURES["kl_per_dim"])
    split = picture_split(run)
    save_png(report_traversal(run).labelled(scale), images / PICTURES["traversal"])
    save_png(latent_map(run, split), images / PICTURES["latent_map"])
    if run.model.spec.continuous == 2:
        save_png(manifold_grid(run).labelled(scale), images / PICTURES["manifold"])
    last_epoch = int(metrics[-1]["epoch"]) if metrics else None
    write_training_gifs(run.path, last_epoch, only_stale=True)
