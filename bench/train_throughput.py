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


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def matmul_roofline(shapes: list[tuple[int, int]], batch: int, repeats: int) -> tuple[float, float]:
    """(seconds per training step spent in matmuls alone, GFLOP/s) for the step's GEMMs:
    forward (B, in) @ (in, out), grad input (B, out) @ (out, in), grad weight (out, B) @ (B, in)."""
    operands = []
    for n_in, n_out in shapes:
        x, w, g = torch.randn(batch, n_in), torch.randn(n_in, n_out), torch.randn(batch, n_out)
        operands += [(x, w, torch.empty(batch, n_out)), (g, w.t(), torch.empty(batch, n_in)),
                     (g.t(), x, torch.empty(n_out, n_in))]  # fmt: skip
    flops = sum(2 * batch * n_in * n_out * 3 for n_in, n_out in shapes)
    for _ in range(3):
        for a, b, out in operands:
            torch.mm(a, b, out=out)
    start = time.perf_counter()
    for _ in range(repeats):
        for a, b, out in operands:
            torch.mm(a, b, out=out)
    seconds = (time.perf_counter() - start) / repeats
    return seconds, flops / seconds / 1e9


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
    parser.add_argument("--images", type=int, default=20_000, help="training images per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (the best is reported)")
    args = parser.parse_args()

    threads = set_threads(0)
    config = load_config(Path(__file__).parent.parent / "configs" / "vae-mlp.yaml",
                         [f"data.limit={args.images}", "train.progress=never"])  # fmt: skip
    d = config.data
    data = load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, seed=config.seed,
                        binarize=d.binarize, limit=d.limit)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(config.model, data.image_shape)
    batch = config.train.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, data, model, Path(tmp))
        trainer.train_epoch(1)  # warm-up
        rates = []
        for epoch in range(2, args.epochs + 2):
            start = time.perf_counter()
            trainer.train_epoch(epoch)
            rates.append(len(data.train_x) / (time.perf_counter() - start))
    ours = max(rates)
    step_seconds, gflops = matmul_roofline(linear_shapes(model), batch, repeats=200)
    roofline = batch / step_seconds
    torch.manual_seed(0)
    naive = naive_loop(build_model(config.model, data.image_shape), data.train_x, batch, seconds_budget=6.0)

    print(f"default MLP VAE {linear_shapes(model)}, batch {batch}, {threads} threads, torch {torch.__version__}")
    print(f"fp32 matmul rate for the step's GEMMs : {gflops:8.1f} GFLOP/s")
    print(f"roofline (matmuls only)               : {roofline:8.0f} images/s")
    print(f"vaelab training step                  : {ours:8.0f} images/s  (epochs: {', '.join(f'{r:.0f}' for r in rates)})")
    print(f"naive DataLoader loop, same net       : {naive:8.0f} images/s")
    print(f"ratio vaelab / roofline               : {ours / roofline:8.2f}   (target >= 0.60)")
    print(f"ratio vaelab / naive loop             : {ours / naive:8.2f}")


if __name__ == "__main__":
    main()
