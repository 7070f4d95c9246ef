"""Training throughput of the default MLP VAE in fp32 and bf16 against this machine's own limits, one run.

Prints, and writes as bench/results/train_throughput-*.json:
  images/s of vaelab's training step (Loop.train_epoch: batching, binarisation, forward, backward, fused Adam)
  on Fashion-MNIST in fp32 and, where the CPU has native bf16, in bf16 (autocast), each also with
  train.compile, in interleaved rounds (a compiled variant in a process of its own, interleaved there with an
  eager fp32 loop for its ratio);
  the roofline of each precision: images/s if a step cost only its matmuls (the same GEMM shapes timed alone
  with torch.mm), and our ratio to it (target fp32 >= 0.6);
  bf16 / fp32 (target >= 1.4) and the test -ELBO of each after --epochs epochs (target: within 1 nat);
  the speed-up that train.precision=auto's probe finds for the default model (bf16 taken at >= 1.25);
  a plain DataLoader loop on the same network, for reference.
Run: make bench   (or .venv/bin/python bench/train_throughput.py)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from common import DEFAULT_CONFIG, default_setup, gemm_flops, step_gemms, time_gemms, write_result
from vaelab import train
from vaelab.config import apply_overrides, config_from_dict
from vaelab.evaluate.likelihood import evaluate_run
from vaelab.loop import Loop, set_threads
from vaelab.models import build_model
from vaelab.precision import AUTO_SPEEDUP, bf16_supported, probe

BF16 = bf16_supported(torch.device("cpu"))
VARIANTS = {  # name: (train.precision, train.compile)
    "fp32": ("fp32", False),
    "fp32 + compile": ("fp32", True),
    **({"bf16": ("bf16", False), "bf16 + compile": ("bf16", True)} if BF16 else {}),
}


def naive_loop(model: nn.Module, x_uint8: torch.Tensor, batch: int, seconds_budget: float) -> float:
    """Images/s of the textbook loop: a DataLoader over a float TensorDataset, default Adam."""
    dataset = torch.utils.data.TensorDataset(x_uint8.float() / 255)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds_budget:
        for (x,) in loader:
            x = torch.bernoulli(x)
            mu, logvar = model.encoder_head(model.encoder(x)).chunk(2, dim=-1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            recon = F.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="sum") / len(x)
            loss = recon - 0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(x)
            if time.perf_counter() - start > seconds_budget:
                break
    return seen / (time.perf_counter() - start)


def test_elbo(precision: str, epochs: int, out_dir: str) -> tuple[float, float]:
    """(test -ELBO after ``epochs`` epochs of the default config in ``precision``, seconds per epoch)."""
    overrides = [f"train.epochs={epochs}", f"train.precision={precision}", "train.progress=never", "train.frames=false",
                 "train.report=false", f"train.out_dir={out_dir}", f"train.name={precision}"]  # fmt: skip
    run = train(DEFAULT_CONFIG, overrides)
    seconds = sum(row["seconds"] for row in run.metrics) / len(run.metrics)
    return evaluate_run(run, "test")["neg_elbo"]["mean"], seconds


def step_seconds(config, data, names: list[str], rounds: int, steps: int, gemms=None) -> dict[str, float]:
    """Best seconds per training step of each variant in ``names`` (a full warm-up epoch first, then
    interleaved rounds of ``steps`` steps, each round's mean); ``gemms`` {dtype: operands} are timed between
    rounds the same way (a mean over ``steps`` passes), their best stored under the dtype."""
    best: dict = {}
    loops = {}
    for name in names:
        torch.manual_seed(0)
        precision, compiled = VARIANTS[name]
        variant = config_from_dict(
            apply_overrides(
                config.to_dict(), [f"train.precision={precision}", f"train.compile={str(compiled).lower()}"]
            )
        )
        loops[name] = Loop(variant, data, build_model(variant.model, data.image_shape), log=lambda message: None)
        loops[name].train_epoch(1)  # a full epoch first (and compilation): the steady state is measured
    for r in range(rounds):  # interleaved, so that all see the same machine load
        for name, loop in loops.items():
            start = time.perf_counter()
            loop.train_epoch(2 + r, max_steps=steps)
            best[name] = min(best.get(name, float("inf")), (time.perf_counter() - start) / steps)
        for dtype, operands in (gemms or {}).items():
            best[dtype] = min(best.get(dtype, float("inf")), time_gemms(operands, passes=steps))
    return best


def compiled_seconds(name: str, args) -> tuple[float, float]:
    """(seconds per step of a compiled variant, of eager fp32 timed in the same rounds) in a process of its
    own: two compiled objectives in one process share torch.compile's caches and slow each other down, and
    the eager loop beside it makes its speed-up independent of how loaded the machine was meanwhile."""
    command = [sys.executable, __file__, "--variant", name, "--rounds", str(args.rounds), "--steps", str(args.steps)]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    compiled, eager = map(float, result.stdout.split()[-2:])
    return compiled, eager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of step and matmul timings")
    parser.add_argument("--steps", type=int, default=100, help="training steps timed per round")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's train.batch_size")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the fp32 / bf16 test -ELBO comparison")
    parser.add_argument("--variant", choices=VARIANTS, help="only time this variant; print its seconds per step")
    args = parser.parse_args()

    threads = set_threads(0)
    config, data = default_setup([f"train.batch_size={args.batch_size}"] if args.batch_size else [])
    if args.variant:
        timed = step_seconds(config, data, [args.variant, "fp32"], args.rounds, args.steps)
        print(timed[args.variant], timed["fp32"])
        return
    batch = config.train.batch_size
    dtypes = (torch.float32, torch.bfloat16) if BF16 else (torch.float32,)
    gemms = {dtype: step_gemms(build_model(config.model, data.image_shape), batch, dtype) for dtype in dtypes}
    flops = gemm_flops(gemms[torch.float32])
    eager = [name for name, (_, compiled) in VARIANTS.items() if not compiled]
    timed = step_seconds(config, data, eager, args.rounds, args.steps, gemms)
    step = {name: timed[name] for name in eager}
    gemm = {dtype: timed[dtype] for dtype in gemms}
    beside = {name: compiled_seconds(name, args) for name in VARIANTS if name not in step}  # (compiled, eager)
    step |= {name: compiled for name, (compiled, _) in beside.items()}
    with tempfile.TemporaryDirectory() as tmp:
        elbo = {p: test_elbo(p, args.epochs, tmp) for p in eager}
    torch.manual_seed(0)
    naive = naive_loop(build_model(config.model, data.image_shape), data.train_x, batch, seconds_budget=5.0)

    probed = None
    if BF16:
        model = build_model(config.model, data.image_shape)
        x = data.train_x[:batch].float() / 255
        fp32_probe, bf16_probe = probe(model, torch.device("cpu"), lambda: model.loss(x))
        probed = fp32_probe / bf16_probe
    rate = {name: batch / seconds for name, seconds in step.items()}
    roofline = {dtype_name: batch / gemm[dtype] for dtype_name, dtype in zip(eager, dtypes, strict=True)}
    print(f"default MLP VAE (configs/vae-mlp.yaml), batch {batch}, {threads} threads, torch {torch.__version__}")
    print(f"matmuls of one step: {len(gemms[torch.float32])} GEMMs, {flops / 1e6:.0f} MFLOP")
    for p, dtype in zip(eager, dtypes, strict=True):
        print(f"{p} matmul rate on those GEMMs       : {flops / gemm[dtype] / 1e9:8.1f} GFLOP/s")
        print(f"{p} roofline (the matmuls alone)     : {roofline[p]:8.0f} images/s")
    for name, value in rate.items():
        print(f"training step, {name:<22}: {value:8.0f} images/s   ({value / roofline[name[:4]]:.2f} of the "
              f"{name[:4]} roofline)")  # fmt: skip
    print(f"naive DataLoader loop, fp32          : {naive:8.0f} images/s")
    print(f"ratio vaelab fp32 / fp32 roofline    : {rate['fp32'] / roofline['fp32']:8.2f}   (target >= 0.60)")
    if BF16:
        print(f"ratio bf16 / fp32                    : {rate['bf16'] / rate['fp32']:8.2f}   (target >= 1.40)")
        print(f"precision auto's probe, bf16 / fp32  : {probed:8.2f}   (auto takes bf16 at >= {AUTO_SPEEDUP})")
    else:
        print("bf16                                 : not timed: this CPU has no native bfloat16 matmuls")
    for name, (compiled, eager_seconds) in beside.items():  # both sides from the compiled variant's own process
        print(f"ratio {name} / fp32 eager     : {eager_seconds / compiled:8.2f}   (interleaved in one process "
              f"with the eager fp32 step, {batch / eager_seconds:.0f} images/s there)")  # fmt: skip
    print(f"ratio vaelab fp32 / naive loop       : {rate['fp32'] / naive:8.2f}")
    for p, (value, seconds) in elbo.items():
        print(f"test -ELBO after {args.epochs} epochs, {p}       : {value:8.2f} nats ({seconds:.1f} s per epoch)")
    if BF16:
        print(
            f"bf16 - fp32 test -ELBO               : {elbo['bf16'][0] - elbo['fp32'][0]:+8.2f} nats   (target |.| <= 1)"
        )
    write_result("train_throughput", {
        "batch": batch, "threads": threads, "images_per_s": rate, "roofline_images_per_s": roofline,
        "naive_loop_images_per_s": naive, "compiled_vs_eager": {n: e / c for n, (c, e) in beside.items()},
        "test_neg_elbo": {p: v for p, (v, _) in elbo.items()}, "epochs": args.epochs, "auto_probe_speedup": probed,
    })  # fmt: skip


if __name__ == "__main__":
    main()
