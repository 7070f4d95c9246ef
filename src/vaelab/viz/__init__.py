"""Pictures of models: grids, samples, traversals, interpolations, latent maps, curves, per-epoch frames and
GIFs, TensorBoard, and the HTML report. Each picture is a function returning a uint8 array (rows, cols, C)."""

from .curves import kl_heatmap, sigma_curves, training_curves
from .grids import image_grid, reconstruction_grid, save_png
from .interpolate import interpolate, interpolation_grid
from .latent_map import latent_map, latent_points, manifold_grid
from .recorders import EpochRecorders
from .report import write_report
from .sampling import prior_latents, reconstruction_image, sample_grid
from .traverse import Traversal, traverse

__all__ = [
    "EpochRecorders",
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
    "reconstruction_image",
    "sample_grid",
    "save_png",
    "sigma_curves",
    "training_curves",
    "traverse",
    "write_report",
]
