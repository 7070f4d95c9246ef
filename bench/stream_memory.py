"""Peak memory of training streamed from a uint8 .npy file (npy:PATH data) of 4x and of 16x the shuffle
buffer: it must not grow with the file. Each run is a fresh process (`vaelab train`, one epoch, small
MLP), measured by its own peak resident memory (VmHWM), with glibc's mmap threshold fixed at its default
128 kB (MALLOC_MMAP_THRESHOLD_): left dynamic, it rises after the first large free and the heap then keeps
~13 MB of freed batches in some runs and not in others, whatever the file (338-354 MB, 2026-12-02). Fixed,
every large tensor is a fresh mmap, so the images/s printed here are about half of normal training's.
Run: make bench (or .venv/bin/python bench/stream_memory.py)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from common import ROOT, write_result

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[4])
    from common import peak_rss_bytes
    from vaelab import train
    run = train(None, [f"data.name=npy:{sys.argv[1]}", f"data.buffer_mb={sys.argv[2]}", "data.val_fraction=0",
                       "model.hidden=[64]", "model.latent_dim=8", "train.batch_size=512", "train.epochs=1",
                       "train.progress=never", "train.frames=false", "train.report=false",
                       f"train.out_dir={sys.argv[3]}"])
    print(peak_rss_bytes(), run.metrics[0]["samples_per_s"])
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buffer-mb", type=int, default=16, help="data.buffer_mb of the runs")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MALLOC_MMAP_THRESHOLD_": str(128 << 10)}
    print(f"streamed training from npy:PATH, 28x28 uint8 images, data.buffer_mb={args.buffer_mb}, one epoch")
    with tempfile.TemporaryDirectory() as tmp:
        peaks, rates = {}, {}
        for times in (4, 16):
            path = Path(tmp) / f"x{times}.npy"
            rows = times * (args.buffer_mb << 20) // 784
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, 1, 28, 28))
            for start in range(0, rows, 65536):
                part = out[start : start + 65536]
                part[:] = np.random.default_rng(start).integers(0, 256, part.shape, dtype=np.uint8)
            del out
            child = [sys.executable, "-c", CHILD, path, str(args.buffer_mb), tmp, str(Path(__file__).parent)]
            result = subprocess.run(child, check=True, capture_output=True, text=True, env=env)
            peak, rate = result.stdout.split()
            peaks[times], rates[times] = int(peak), float(rate)
            size = path.stat().st_size
            print(
                f"file {times:>2}x the buffer ({size / 2**20:5.0f} MB, {rows} images): peak RSS "
                f"{peaks[times] / 2**20:6.0f} MB, {float(rate):7.0f} images/s"
            )
    print(
        f"peak RSS 16x - 4x                    : {(peaks[16] - peaks[4]) / 2**20:+6.0f} MB "
        f"(the file grew by {12 * args.buffer_mb} MB; must not grow)"
    )
    write_result("stream_memory", {
        "buffer_mb": args.buffer_mb, "malloc_mmap_threshold": 128 << 10,
        "peak_rss_mb": {f"{times}x": peaks[times] / 2**20 for times in peaks},
        "images_per_s": {f"{times}x": rates[times] for times in rates},
        "growth_mb": (peaks[16] - peaks[4]) / 2**20,
    })  # fmt: skip


if __name__ == "__main__":
    main()
