"""Models by name. Importing this package registers every model."""

from . import ae, iwae, joint_vae, pca, vae  # noqa: F401  (registration side effects)
from .model import Model
from .registry import build_model, model_config_class, model_entry, register, registered_models

__all__ = ["Model", "build_model", "model_config_class", "model_entry", "register", "registered_models"]
