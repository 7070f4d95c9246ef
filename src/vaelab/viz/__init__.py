"""Pictures of models: image grids now; traversals, latent maps, curves and reports build on them."""

from .grids import image_grid, reconstruction_grid, save_png

__all__ = ["image_grid", "reconstruction_grid", "save_png"]
