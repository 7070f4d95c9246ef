"""Training throughput of the default MLP VAE against this machine's own limits, measured in one run.

Prints three figures and two ratios:
  ours       images/s of vaelab's training step (Trainer.train_epoch: batching, binarisation,
             forward, backward, fused Adam) on Fashion-MNIST;
  roofline   images/s if the step cost only its matmuls: the same GEMM shapes (forward, grad input,
             grad weight of every Linear layer) timed alone at this machine's fp32 rate;
  naive      images/s of a plain DataLoader loop (per-sample indexing and collation, default Adam)
             on the same network.
Target: ours / roofline >= 0.6.   Run: make bench   (or .venv/bin/python bench/train_throughput.py)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.config import load_config
from vaelab.data import load_dataset
from vaelab.models import build_model
from vaelab.trainer import Trainer, set_threads


def step_gemms(model: nn.Module, batch: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Operands (a, b, out) of every matmul one training step runs: per Linear layer (in -> out), the
    forward (B, in) @ (in, out), the weight gradient (out, B) @ (B, in) and, except for the first layer,
    whose input (the data) needs no gradient, the input gradient (B, out) @ (out, in)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    operands = []
    for i, layer in enumerate(layers):
        n_in, n_out = layer.in_features, layer.out_features
        x, w, g = torch.randn(batch, n_in), torch.randn(n_in, n_out), torch.randn(batch, n_out)
        operands += [(x, w, torch.empty(batch, n_out)), (g.t(), x, torch.empty(n_out, n_in))]
        if i > 0:
            operands.append((g, w.t(), torch.empty(batch, n_in)))
    return operands


def time_gemms(operands, repeats: int) -> float:
    """Seconds per training step spent in its matmuls alone (best of ``repeats`` passes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for a, b, out in operands:
            torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return best


def naive_loop(model: nn.Module, x_uint8: torch.Tensor, batch: int, seconds_budget: float) -> float:
    """Images/s of the textbook loop: a DataLoader over a float TensorDataset, default Adam."""
    dataset = torch.utils.data.TensorDataset(x_uint8.float() / 255)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds_budget:
        for (x,) in loader:
            x = torch.bernoulli(x)
            posterior = model.encode(x)
            z = posterior.rsample()
            recon = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum") / len(x)
            loss = recon + posterior.kl_to_standard_normal().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(x)
            if time.perf_counter() - start > seconds_budget:
                break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of step and matmul timings")
    parser.add_argument("--steps", type=int, default=100, help="training steps timed per round")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's train.batch_size")
    args = parser.parse_args()

    threads = set_threads(0)
    config = load_config(
        Path(__file__).parent.parent / "configs" / "vae-mlp.yaml",
        ["train.progress=never"] + ([f"train.batch_size={args.batch_size}"] if args.batch_size else []),
    )
    d = config.data
    data = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, seed=config.seed, binarize=d.binarize)
    torch.manual_seed(0)
    model = build_model(config.model, data.image_shape)
    batch = config.train.batch_size
    operands = step_gemms(model, batch)
    flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in operands)
    step_best = gemm_best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, data, model, Path(tmp))
        trainer.train_epoch(1)  # a full epoch first: the steady state, not the first steps, is measured
        for r in range(args.rounds):  # interleaved, so that both see the same machine load
            start = time.perf_counter()
            trainer.train_epoch(2 + r, max_steps=args.steps)
            step_best = min(step_best, (time.perf_counter() - start) / args.steps)
            gemm_best = min(gemm_best, time_gemms(operands, repeats=50))
    ours, roofline = batch / step_best, batch / gemm_best
    torch.manual_seed(0)
    naive = naive_loop(build_model(config.model, data.image_shape), data.train_x, batch, seconds_budget=5.0)

    print(f"default MLP VAE (configs/vae-mlp.yaml), batch {batch}, {threads} threads, torch {torch.__version__}")
    print(f"matmuls of one step: {len(operands)} GEMMs, {flops / 1e6:.0f} MFLOP")
    print(f"fp32 matmul rate on those GEMMs       : {flops / gemm_best / 1e9:8.1f} GFLOP/s")
    print(f"roofline (the step's matmuls alone)   : {roofline:8.0f} images/s")
    print(f"vaelab training step                  : {ours:8.0f} images/s")
    print(f"naive DataLoader loop, same net       : {naive:8.0f} images/s")
    print(f"ratio vaelab / roofline               : {ours / roofline:8.2f}   (target >= 0.60)")
    print(f"ratio vaelab / naive loop             : {ours / naive:8.2f}")


if __name__ == "__main__":
    main()
