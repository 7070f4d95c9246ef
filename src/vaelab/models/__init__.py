"""Models by name. Importing this package registers every model."""

from . import ae, beta_vae, iwae, joint_vae, pca, vae  # noqa: F401  (registration side effects)
from .base import Autoencoder, ImageTerms, LossTerms
from .registry import build_model, model_config_class, model_entry, register, registered_models

__all__ = [
    "Autoencoder",
    "ImageTerms",
    "LossTerms",
    "build_model",
    "model_config_class",
    "model_entry",
    "register",
    "registered_models",
]
