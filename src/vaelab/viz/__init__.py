"""Pictures of models: grids, samples, traversals, interpolations, latent maps, curves, per-epoch frames and
GIFs, TensorBoard, and the HTML report. Each picture is a function returning a uint8 array (rows, cols, C), or
``LabelledRows`` (a traversal, reconstructions, samples by label, the manifold grid): images with a name per
row, drawn by ``.labelled(scale)``."""

from .curves import kl_heatmap, sigma_curves, training_curves
from .grids import LabelledRows, image_grid, reconstruction_grid, save_png
from .interpolate import interpolate, interpolation_grid
from .latent_map import latent_map, latent_points, manifold_grid
from .recorders import EpochRecorders
from .report import write_report
from .sampling import prior_latents, reconstructions, sample_grid, samples_by_label
from .traverse import Traversal, traverse

__all__ = [
    "EpochRecorders",
    "LabelledRows",
    "Traversal",
    "image_grid",
    "interpolate",
    "interpolation_grid",
    "kl_heatmap",
    "latent_map",
    "latent_points",
    "manifold_grid",
    "prior_latents",
    "reconstruction_grid",
    "reconstructions",
    "sample_grid",
    "samples_by_label",
    "save_png",
    "sigma_curves",
    "training_curves",
    "traverse",
    "write_report",
]
