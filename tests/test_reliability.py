"""Crash safety and safe loading: kill training at random moments, resume, and lose nothing."""

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab import load_run, train
from vaelab.checkpoint import read_weights

SRC = Path(__file__).parent.parent / "src" / "vaelab"


@pytest.fixture
def medium_npz(tmp_path):
    """1,500 random 10x10 images: 76 steps of 16 images an epoch."""
    rng = np.random.default_rng(1)
    path = tmp_path / "medium.npz"
    np.savez(path, x=rng.integers(0, 256, (1500, 10, 10), dtype=np.uint8), y=rng.integers(0, 3, 1500))
    return path


def check_consistent(run_dir: Path) -> int:
    """The folder loads (once an epoch has finished) and metrics.csv has whole, unduplicated rows in order;
    returns the number of epochs recorded."""
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        return 0
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(v not in (None, "") for r in rows for v in r.values())
    load_run(run_dir)
    return len(rows)


def read_stderr_until(process: subprocess.Popen, text: bytes, times: int = 1) -> bytes:
    """The lines ``process`` writes to stderr, read until ``text`` has appeared ``times`` times or the stream
    ends."""
    log = b""
    while log.count(text) < times and (line := process.stderr.readline()):
        log += line
    return log


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(medium_npz, tmp_path):
    overrides = [
        f"data.name=npz:{medium_npz}",
        "model.latent_dim=4",
        "model.hidden=[64, 64]",
        "train.batch_size=16",
        "train.epochs=40",
        "train.threads=1",
        "train.progress=never",
        f"train.out_dir={tmp_path / 'runs'}",
    ]
    reference = train(None, [*overrides, "train.name=reference"])
    run_dir = tmp_path / "runs" / "killed"
    command = [sys.executable, "-m", "vaelab", "train", *overrides, "train.name=killed", "--no-evaluate"]
    rng = random.Random(0)
    kills = 0
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    phases = ["start", "epoch", "start", "epoch", "epoch", "end"]  # where each kill aims
    for attempt in range(len(phases) + 3):
        started = (run_dir / "config.yaml").exists()  # a kill during start-up leaves no run folder at all
        args = [*command[:4], "--resume", str(run_dir), "--no-evaluate"] if started else command
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        log, phase = b"", phases[attempt] if attempt < len(phases) else None
        if phase == "start":  # start-up takes ~2 s, then epochs of ~0.06 s
            time.sleep(rng.uniform(0.5, 2.5))
        elif phase == "epoch":  # a moment in an epoch (or its checkpoint) after 1-3 of this process's epochs
            log = read_stderr_until(process, b"\nepoch ", times=rng.randint(1, 3))
            time.sleep(rng.uniform(0.0, 0.08))
        elif phase == "end":  # in the pictures and report after the last epoch (~2 s)
            log = read_stderr_until(process, b"epoch  40/40")
            time.sleep(rng.uniform(0.0, 1.5))
        if phase is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        _, err = process.communicate(timeout=120)
        err = log + err
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, err.decode()
        assert not run_dir.exists() or (run_dir / "config.yaml").exists()
        if run_dir.exists():
            check_consistent(run_dir)
    assert kills >= 4, "training finished before the kills: make the run longer"
    assert check_consistent(run_dir) == 40
    a, b = read_weights(reference.path / "model.safetensors")[0], read_weights(run_dir / "model.safetensors")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


CALLS = [
    (r"\bpickle\.loads?\(", "pickle.load"),
    (r"torch\.load\((?![^)]*weights_only=True)", "torch.load without weights_only=True"),
    (r"\bcloudpickle\b|\bdill\b|\bjoblib\.load\(", "another unpickler"),
    (r"\bnp\.load\((?![^)]*allow_pickle=False)", "np.load without allow_pickle=False"),
]


def test_nothing_in_vaelab_unpickles():
    """The source never calls an unpickler: weights are safetensors, trainer state uses weights_only=True."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for pattern, what in CALLS:
            offenders += [f"{path.relative_to(SRC)}: {what}" for _ in re.finditer(pattern, text)]
    assert offenders == []
