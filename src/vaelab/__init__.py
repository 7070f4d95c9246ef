"""vaelab: autoencoders from PCA to VAEs, trained, evaluated and understood on a CPU.

from vaelab import train, load_run
run = train("configs/vae-mlp.yaml", ["train.epochs=5"])
z = run.encode(run.data.test_x[:10])

The names below are imported on first use, so that `python -m vaelab` can install its signal handlers before
torch is imported (a Ctrl+C during start-up then gives one line, not a traceback).
"""

import importlib
from typing import TYPE_CHECKING

_PUBLIC = {  # name -> the module that defines it
    "Config": "config",
    "load_config": "config",
    "ConfigError": "errors",
    "DataError": "errors",
    "DeviceError": "errors",
    "RunError": "errors",
    "TrainingError": "errors",
    "VaelabError": "errors",
    "Nets": "nets",
    "Run": "run",
    "load_run": "run",
    "train": "training",
}

if TYPE_CHECKING:
    from .config import Config, load_config
    from .errors import ConfigError, DataError, DeviceError, RunError, TrainingError, VaelabError
    from .nets import Nets
    from .run import Run, load_run
    from .training import train

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "DeviceError",
    "Run",
    "RunError",
    "TrainingError",
    "Nets",
    "VaelabError",
    "load_config",
    "load_run",
    "train",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value
