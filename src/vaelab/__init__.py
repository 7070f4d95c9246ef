"""vaelab: autoencoders from PCA to VAEs, trained, evaluated and understood on a CPU.

from vaelab import train, load_run
run = train("configs/vae-mlp.yaml", ["train.epochs=5"])
z = run.encode(run.data.test_x[:10])
"""

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
