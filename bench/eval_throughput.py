"""Importance-weighted NLL throughput of the default model, against this machine's own matmul speed.

Prints, measured in one run with interleaved rounds:
  ours       images x samples per second of vaelab's IW-NLL (evaluate.likelihood.iw_nll_per_image: chunks of
             ~2,000 decoder rows, float64 logsumexp) on Fashion-MNIST test images, k = 5000, in fp32 and
             in bf16 (autocast networks), and the two estimates' difference (target: within 0.05 nats);
  roofline   images x samples per second if it cost only the decoder's matmuls at this machine's fp32 rate, and
             at its bf16 rate where it has native bf16 (the decoder dominates: the encoder runs once per image,
             not once per sample);
  decoder    images x samples per second of the model's decoder forward alone (its biases and activations
             included) on the same rows per call, in each precision: the most the estimator could reach;
  per-image  one image per call with all k samples in that call (how per-image estimators loop);
and the projected time of `vaelab eval RUN --iw-samples 5000` on the 10,000 test images (target: < 15 min).
Target: 250,000 images x samples per second in the faster precision. Trains the default config
(configs/default.yaml) for one epoch in a temporary folder.
Run: make bench   (or .venv/bin/python bench/eval_throughput.py)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from common import time_gemms, write_result  # bench/ is on sys.path when a script in it runs
from vaelab import train
from vaelab.evaluate.likelihood import iw_nll_per_image, iw_rows
from vaelab.loop import set_threads
from vaelab.precision import autocast, bf16_supported

ROOT = Path(__file__).parent.parent
TARGET = 250_000  # images x samples per second


def decoder_gemms(model: nn.Module, rows: int, dtype: torch.dtype = torch.float32):
    """Operands (a, b, out) of the decoder's Linear layers for ``rows`` latents, in ``dtype``."""
    layers = [m for m in model.decoder.modules() if isinstance(m, nn.Linear)]
    return [(torch.randn(rows, m.in_features, dtype=dtype), m.weight.detach().T.contiguous().to(dtype),
             torch.empty(rows, m.out_features, dtype=dtype)) for m in layers]  # fmt: skip


BF16 = bf16_supported(torch.device("cpu"))


@torch.no_grad()
def time_decoder(model: nn.Module, rows: int, precision: str, passes: int = 20) -> float:
    """Seconds of one decoder forward of ``model`` on ``rows`` prior draws, the mean of ``passes`` in a row."""
    z = model.prior.sample(rows)
    with autocast(precision, z.device):
        start = time.perf_counter()
        for _ in range(passes):
            model.decode(z, None)
    return (time.perf_counter() - start) / passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60, help="test images per round")
    parser.add_argument("--k", type=int, default=5000, help="importance samples per image")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()

    threads = set_threads(0)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["train.epochs=1", "train.progress=never", f"train.out_dir={tmp}", "train.name=bench"]
        run, source = train(ROOT / "configs" / "default.yaml", overrides), "configs/default.yaml, 1 epoch"
        model, data = run.model, run.data
        x, y = data.split("test")
        x = x[: args.images]
        rows = iw_rows(model)
        operands = decoder_gemms(model, rows)
        operands_bf16 = decoder_gemms(model, rows, torch.bfloat16) if BF16 else None
        flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in operands)
        iw_nll_per_image(model, x[:4], None, data.binarize, args.k, progress=False)  # warm-up
        n_naive = max(1, len(x) // 4)
        ours = ours_bf16 = naive = gemm = gemm_bf16 = decoder = decoder_bf16 = float("inf")  # best seconds of each
        nll = {}
        for _ in range(args.rounds):  # interleaved, so that every timing sees the same machine load
            start = time.perf_counter()
            nll["fp32"] = iw_nll_per_image(model, x, None, data.binarize, args.k, progress=False).mean().item()
            ours = min(ours, time.perf_counter() - start)
            if BF16:
                start = time.perf_counter()
                nll["bf16"] = iw_nll_per_image(model, x, None, data.binarize, args.k, progress=False, precision="bf16")
                ours_bf16 = min(ours_bf16, time.perf_counter() - start)
            start = time.perf_counter()
            iw_nll_per_image(model, x[:n_naive], None, data.binarize, args.k, rows=args.k, progress=False)
            naive = min(naive, time.perf_counter() - start)
            gemm = min(gemm, time_gemms(operands, passes=20))
            decoder = min(decoder, time_decoder(model, rows, "fp32"))
            if BF16:
                gemm_bf16 = min(gemm_bf16, time_gemms(operands_bf16, passes=20))
                decoder_bf16 = min(decoder_bf16, time_decoder(model, rows, "bf16"))
    rate, naive, roofline = len(x) * args.k / ours, n_naive * args.k / naive, rows / gemm
    rate_bf16 = len(x) * args.k / ours_bf16 if BF16 else None
    roofline_bf16 = rows / gemm_bf16 if BF16 else None
    decoder, decoder_bf16 = rows / decoder, rows / decoder_bf16 if BF16 else None
    print(f"IW-NLL of the default model ({source}), k={args.k}, {len(x)} test images, {threads} threads")
    print(f"decoder rows per call: {rows}; decoder matmuls {flops / rows / 1e6:.2f} MFLOP per sample")
    print(f"fp32 matmul rate on those GEMMs        : {flops / gemm / 1e9:8.1f} GFLOP/s")
    print(f"roofline (decoder matmuls alone)       : {roofline:10,.0f} images x samples / s")
    print(f"decoder forward alone, fp32            : {decoder:10,.0f} images x samples / s")
    print(f"vaelab iw_nll_per_image, fp32          : {rate:10,.0f} images x samples / s")
    difference = nll["bf16"].mean().item() - nll["fp32"] if BF16 else None
    if BF16:
        print(f"bf16 matmul rate on those GEMMs        : {flops / gemm_bf16 / 1e9:8.1f} GFLOP/s")
        print(f"bf16 roofline (decoder matmuls alone)  : {roofline_bf16:10,.0f} images x samples / s")
        print(
            f"decoder forward alone, bf16            : {decoder_bf16:10,.0f} images x samples / s"
            f"   ({decoder_bf16 / roofline_bf16:.2f} of the bf16 roofline)"
        )
        print(
            f"vaelab iw_nll_per_image, bf16          : {rate_bf16:10,.0f} images x samples / s"
            f"   ({rate_bf16 / roofline_bf16:.2f} of the bf16 roofline)"
        )
        print(f"ratio bf16 / fp32                      : {rate_bf16 / rate:8.2f}")
        print(f"ratio iw_nll_per_image / decoder, bf16 : {rate_bf16 / decoder_bf16:8.2f}")
        print(f"IW-NLL bf16 - fp32 (mean, {len(x)} images)   : {difference:+8.3f} nats")
    else:
        print("bf16                                   : not timed: this CPU has no native bfloat16 matmuls")
    print(f"one image per call (k rows per call)   : {naive:10,.0f} images x samples / s")
    print(f"ratio vaelab / roofline                : {rate / roofline:8.2f}")
    print(f"ratio vaelab / one image per call      : {rate / naive:8.2f}")
    best = max(rate, rate_bf16 or 0)
    projected = 10_000 * 5000 / best
    print(f"faster precision / target              : {best / TARGET:8.2f}   (target {TARGET:,} images x samples / s)")
    print(f"projected: 10,000 images x 5,000 samples in {projected / 60:.1f} min, faster precision (target < 15 min)")
    write_result("eval_throughput", {
        "model": source, "k": args.k, "images": len(x), "threads": threads, "decoder_rows_per_call": rows,
        "gemm_gflops": flops / gemm / 1e9, "roofline": roofline, "fp32": rate, "bf16": rate_bf16,
        "gemm_gflops_bf16": flops / gemm_bf16 / 1e9 if BF16 else None, "roofline_bf16": roofline_bf16,
        "target": TARGET, "faster_over_target": best / TARGET,
        "decoder_forward": decoder, "decoder_forward_bf16": decoder_bf16,
        "one_image_per_call": naive, "bf16_minus_fp32_nats": difference,
        "unit": "images x samples per second", "projected_10k_x_5000_minutes": projected / 60,
    })  # fmt: skip


if __name__ == "__main__":
    main()
