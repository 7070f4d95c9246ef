"""Numeric precision of the networks: ``fp32``, or ``bf16`` autocast (matmuls and convolutions in bfloat16,
the posterior, the KL, the likelihood and every logsumexp in float32), or ``auto``: bf16 where a short probe
of the model's own layers finds it clearly faster than fp32 on this device.

The probe runs each Linear and convolution layer of the model at the shape it sees in training (one fp32
forward with hooks records the shapes), forward only, best of a few repeats, in fp32 and under bf16 autocast.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import DeviceError

PRECISIONS = ("fp32", "bf16", "auto")
AUTO_SPEEDUP = 1.25  # auto takes bf16 when the probed layers run at least this much faster in it
PROBE_REPEATS = 20  # best of 20: a pass of the default MLP takes ~2 ms, and one in a few is slowed
_PROBED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class Choice:
    """The precision in use and why: ``reason`` is the line a run's log shows."""

    precision: str  # "fp32" | "bf16"
    reason: str


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matmuls natively (a CPU with AVX512-BF16 or AMX, an Ampere+ GPU)."""
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "mps":
        return torch.backends.mps.is_macos_or_newer(14, 0)
    return False


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context the networks run in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def choose_precision(requested: str, device: torch.device, model: nn.Module, run_model: Callable[[], object]) -> Choice:
    """Resolve ``fp32 | bf16 | auto`` for ``model`` on ``device``; ``run_model()`` runs one forward pass at
    the shapes of interest (it is called once, in fp32, without gradients, to record the layers' inputs)."""
    if requested not in PRECISIONS:
        raise DeviceError(f"Unknown precision: {requested}; choose one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Choice("fp32", "fp32 (as configured)")
    supported = bf16_supported(device)
    if requested == "bf16":
        if not supported:
            raise DeviceError(
                f"precision bf16 was requested but this {device.type} has no native bfloat16 matmuls "
                "(a CPU needs AVX512-BF16 or AMX, a GPU compute capability 8.0+); use precision=fp32 or auto"
            )
        return Choice("bf16", "bf16 (as configured)")
    if not supported:
        return Choice("fp32", f"fp32 (auto: this {device.type} has no native bfloat16 matmuls)")
    fp32, bf16 = probe(model, device, run_model)
    speedup = fp32 / bf16
    pick = "bf16" if speedup >= AUTO_SPEEDUP else "fp32"
    return Choice(pick, f"{pick} (auto: the model's layers ran {speedup:.2f}x faster in bf16 than fp32; "
                        f"bf16 needs {AUTO_SPEEDUP}x)")  # fmt: skip


@torch.no_grad()
def probe(model: nn.Module, device: torch.device, run_model: Callable[[], object]) -> tuple[float, float]:
    """Seconds of one forward of every Linear / conv layer of ``model`` at its recorded input shape, in fp32
    and under bf16 autocast (best of ``PROBE_REPEATS`` rounds, each timing fp32 then bf16)."""
    inputs: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda m, args, out: inputs.append((m, args[0].detach().float())))
             for m in model.modules() if isinstance(m, _PROBED)]  # fmt: skip
    try:
        run_model()
    finally:
        for hook in hooks:
            hook.remove()
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for repeat in range(PROBE_REPEATS + 1):  # the first round warms up (oneDNN builds its kernels)
        for precision in best:  # interleaved, so that a load on the machine meanwhile slows both alike
            seconds = _time_layers(inputs, precision, device)
            if repeat:
                best[precision] = min(best[precision], seconds)
    return best["fp32"], best["bf16"]


def _time_layers(inputs: list[tuple[nn.Module, torch.Tensor]], precision: str, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    with autocast(precision, device):  # entered per pass, as per step: the weights' casts are timed too
        for module, x in inputs:
            module(x)
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
