"""Where vaelab keeps what it computes once and reuses: generated datasets, feature classifiers."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$VAELAB_CACHE`` if set, else ``$XDG_CACHE_HOME/vaelab``, else ``~/.cache/vaelab``."""
    if os.environ.get("VAELAB_CACHE"):
        return Path(os.environ["VAELAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vaelab"
