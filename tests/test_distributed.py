"""Data-parallel training: two processes under torchrun (gloo, CPU) take the steps one process takes."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaelab import train
from vaelab.checkpoint import read_weights

SRC = Path(__file__).parent.parent / "src"
pytestmark = [pytest.mark.distributed, pytest.mark.slow]


@pytest.fixture
def overrides(tiny_npz, tmp_path):
    """97 images in batches of 15: six of 15 and a last one of 7, split 4 + 3 over two processes."""
    return [
        f"data.name=npz:{tiny_npz}",
        "data.binarize=dynamic",
        "model.latent_dim=3",
        "model.hidden=[32]",
        "train.batch_size=15",
        "train.epochs=2",
        "train.threads=1",
        "train.device=cpu",
        "train.progress=never",
        "train.frames=false",
        "train.report=false",
        f"train.out_dir={tmp_path / 'runs'}",
    ]


def torchrun(*args: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "vaelab", "train", *args, "--no-evaluate"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_weights(run_dir / "model.safetensors")[0]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def test_two_processes_give_the_weights_of_one_with_the_same_global_batch(overrides, tmp_path):
    single = train(None, [*overrides, "train.name=single"])
    torchrun(*overrides, "train.name=ddp")
    ddp = tmp_path / "runs" / "ddp"
    assert_same_weights(weights(single.path), weights(ddp))
    with open(ddp / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["processes"], r["batch_size"], r["lr"]) for r in rows] == [("2", "15", "0.001")] * 2
    for row, reference in zip(rows, single.metrics, strict=True):  # loss terms are means over all processes
        assert float(row["train_loss"]) == pytest.approx(reference["train_loss"], rel=1e-4)
    assert not (tmp_path / "runs" / "ddp-2").exists()  # one run folder, written by rank 0 alone


def test_a_two_process_run_resumes_to_the_weights_of_an_uninterrupted_one(overrides, tmp_path):
    single = train(None, [*overrides, "train.name=single"])
    torchrun(*overrides, "train.epochs=1", "train.name=ddp")
    run = tmp_path / "runs" / "ddp"
    torchrun("train.epochs=2", "--resume", str(run))
    assert_same_weights(weights(single.path), weights(run))
