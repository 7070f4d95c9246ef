"""Helpers the bench scripts share: the VAE's config and data, the matmuls of a step, timing, peak memory."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from vaelab.config import Config, load_config
from vaelab.data import ImageData, load_dataset
from vaelab.precision import bf16_supported

ROOT = Path(__file__).parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "vae-mlp.yaml"  # the default's network and training, with a N(0, I) prior


def default_setup(overrides: list[str] | None = None) -> tuple[Config, ImageData]:
    """The MLP VAE's config, configs/vae-mlp.yaml (with ``overrides``), and its Fashion-MNIST data: the network
    and training of the default (configs/default.yaml), whose mixture prior adds 2-4% to a step."""
    config = load_config(DEFAULT_CONFIG, ["train.progress=never", *(overrides or [])])
    d = config.data
    data = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, seed=config.seed, binarize=d.binarize)
    return config, data


def step_gemms(model: nn.Module, batch: int, dtype: torch.dtype = torch.float32):
    """Operands (a, b, out) of every matmul one training step runs: per Linear layer (in -> out), the
    forward (B, in) @ (in, out), the weight gradient (out, B) @ (B, in) and, except for the first layer,
    whose input (the data) needs no gradient, the input gradient (B, out) @ (out, in)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    operands = []
    for i, layer in enumerate(layers):
        n_in, n_out = layer.in_features, layer.out_features
        x, w, g = (torch.randn(*shape, dtype=dtype) for shape in ((batch, n_in), (n_in, n_out), (batch, n_out)))
        operands += [(x, w, torch.empty(batch, n_out, dtype=dtype)), (g.t(), x, torch.empty(n_out, n_in, dtype=dtype))]
        if i > 0:
            operands.append((g, w.t(), torch.empty(batch, n_in, dtype=dtype)))
    return operands


def gemm_flops(operands) -> int:
    return sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in operands)


def time_gemms(operands, passes: int) -> float:
    """Seconds of one pass over ``operands`` with ``torch.mm``, the mean of ``passes`` passes in a row: the
    same statistic as the step it is compared with (a mean over steps; callers take the best round of
    both). The best single pass would flatter the roofline by 5-10% (measured: 4.37-4.61 ms best pass vs
    4.65-4.97 ms mean of 100 passes, 2026-12-01)."""
    start = time.perf_counter()
    for _ in range(passes):
        for a, b, out in operands:
            torch.mm(a, b, out=out)
    return (time.perf_counter() - start) / passes


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM; ``ru_maxrss`` would keep a forking parent's)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) * 1024


def write_result(name: str, figures: dict, path: Path | None = None) -> Path:
    """``figures`` as bench/results/NAME-<UTC time>.json (or ``path``, rewritten) with the machine (and whether
    its CPU has native bf16 matmuls: the same model name covers CPUs with and without), the torch version, the
    commit and the load average as it is written (other jobs on the machine slow what was timed): the history
    that docs quote (the latest) and link."""
    import contextlib
    import itertools
    import json
    import os
    import platform
    import subprocess
    from datetime import datetime, timezone

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    now = datetime.now(timezone.utc)
    record = {"bench": name, "date": now.isoformat(timespec="seconds"), "commit": commit.stdout.strip() or None,
              "machine": cpu, "native_bf16": bf16_supported(torch.device("cpu")),
              "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
              "load_average_1_5_15_min": [round(load, 2) for load in os.getloadavg()], **figures}  # fmt: skip
    if path is None:  # a new file: claimed by exclusive creation, so two runs started in one second keep both
        folder, stem = ROOT / "bench" / "results", f"{name}-{now:%Y%m%d-%H%M%S}"
        folder.mkdir(exist_ok=True)
        for n in itertools.count(1):
            path = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
            with contextlib.suppress(FileExistsError):
                path.open("x").close()
                break
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    return path
