"""Models by name. Importing this package registers every model: each module of this folder (a new model is
one new file here), and the modules installed packages name under the entry-point group ``vaelab.models``."""

import importlib
import pkgutil
from importlib.metadata import entry_points

from .model import Model
from .registry import build_model, model_entry, register, registered_models

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
for _plugin in entry_points(group="vaelab.models"):
    _plugin.load()

__all__ = ["Model", "build_model", "model_entry", "register", "registered_models"]
