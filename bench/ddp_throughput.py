"""Multi-process training throughput: the default MLP VAE on Fashion-MNIST, one process on both cores against two
processes (torchrun, gloo, one thread each) with the same global batch, one run.

Each trains 2 epochs with `vaelab train`; the figure is epoch 2's images/s from metrics.csv (epoch 1
includes start-up). Run: make bench   (or .venv/bin/python bench/ddp_throughput.py)
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DEFAULT_CONFIG, ROOT, write_result


def images_per_s(launcher: list[str], run_dir: Path, overrides: list[str], env: dict[str, str]) -> float:
    command = [*launcher, "-m", "vaelab", "train", "--config", str(DEFAULT_CONFIG), *overrides,
               f"train.out_dir={run_dir.parent}", f"train.name={run_dir.name}", "--no-evaluate"]  # fmt: skip
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(run_dir / "metrics.csv") as f:
        return float(list(csv.DictReader(f))[-1]["samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32", help="train.precision of both runs")
    args = parser.parse_args()
    overrides = ["train.epochs=2", "train.progress=never", "train.frames=false", "train.report=false",
                 f"train.precision={args.precision}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        one = images_per_s([sys.executable], Path(tmp) / "one", overrides, env)
        two = images_per_s(torchrun, Path(tmp) / "two", overrides, {**env, "OMP_NUM_THREADS": "1"})
    print(f"default MLP VAE, global batch 128, {args.precision}, epoch 2 of `vaelab train`")
    print(f"1 process, 2 threads                 : {one:8.0f} images/s")
    print(f"2 processes (torchrun, gloo), 1 each : {two:8.0f} images/s")
    print(f"ratio 2 processes / 1 process        : {two / one:8.2f}")
    write_result("ddp_throughput", {"precision": args.precision, "one_process": one, "two_processes": two})


if __name__ == "__main__":
    main()
