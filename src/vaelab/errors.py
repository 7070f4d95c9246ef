"""User-facing errors: each names what is wrong and what to do. The CLI prints them in one line and exits 2."""


class VaelabError(Exception):
    """Base class for errors caused by the user's input, data or environment (not by a bug)."""


class DataError(VaelabError):
    """A dataset is missing, corrupt, truncated or of the wrong shape."""


class ConfigError(VaelabError):
    """A config file, key or value is invalid."""


class RunError(VaelabError):
    """A run folder is missing, incomplete or inconsistent."""


class TrainingError(VaelabError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


class DeviceError(VaelabError):
    """A requested device or precision is not available here (e.g. cuda without a GPU, bf16 without support)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl+C or SIGTERM during a training: the run folder, which `vaelab train --resume` continues."""

    def __init__(self, run_dir):
        super().__init__(str(run_dir))
        self.run_dir = run_dir
