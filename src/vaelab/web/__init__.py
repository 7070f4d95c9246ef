"""The latent explorer (``vaelab serve``): a FastAPI app over trained runs and a static page, no build step."""

from .app import create_app
from .explorer import Explorer
from .server import load_explorers, serve

__all__ = ["Explorer", "create_app", "load_explorers", "serve"]
