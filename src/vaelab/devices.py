"""Which device to compute on: ``auto`` takes a GPU (CUDA, then Apple MPS) when torch sees one, else the CPU.

Only the CPU paths run on this project's machines; the CUDA and MPS paths are written to be right by
construction (data, model and generators on the device) but are untested.
"""

from __future__ import annotations

import torch

from .errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``train.device`` / ``--device`` (``cuda:<local_rank>`` for a CUDA process of a
    multi-process run); DeviceError when the named one is missing."""
    if name not in DEVICES:
        raise DeviceError(f"Unknown device: {name}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device cuda was requested but torch {torch.__version__} sees no CUDA GPU "
                "(a CPU-only build, or no driver); use device=cpu or device=auto"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device mps was requested but torch sees no Apple GPU; use device=cpu or device=auto")
    return torch.device(name)
