"""Shared fixtures: tiny datasets generated in tmp dirs, and tiny training configs."""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """$VAELAB_CACHE (the Fréchet distance's classifiers) in a temporary folder, for this process and the
    `vaelab` subprocesses it starts: tests never write to ~/.cache."""
    import os

    previous = os.environ.get("VAELAB_CACHE")
    os.environ["VAELAB_CACHE"] = str(tmp_path_factory.mktemp("vaelab-cache"))
    yield
    if previous is None:
        os.environ.pop("VAELAB_CACHE", None)
    else:
        os.environ["VAELAB_CACHE"] = previous


@pytest.fixture
def cli(capsys):
    """``cli(*args)`` runs ``vaelab ARGS`` in this process (no interpreter start-up; test_cli.py runs real
    subprocesses) and returns (exit code, stderr)."""
    from vaelab.cli import main

    def run(*args) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        return exit_info.value.code, capsys.readouterr().err

    return run


@pytest.fixture
def tiny_npz(tmp_path):
    """120 labelled 10x10 images of bars (3 classes: horizontal, vertical, diagonal), with noise."""
    rng = np.random.default_rng(0)
    n, size = 120, 10
    y = np.arange(n) % 3
    x = np.zeros((n, size, size), dtype=np.float64)
    pos = rng.integers(1, size - 2, n)
    for i in range(n):  # building a fixture, not a hot path
        if y[i] == 0:
            x[i, pos[i], :] = 1
        elif y[i] == 1:
            x[i, :, pos[i]] = 1
        else:
            np.fill_diagonal(x[i], 1)
    x = np.clip(x + rng.uniform(0, 0.2, x.shape), 0, 1)
    path = tmp_path / "bars.npz"
    np.savez(path, x=(x * 255).astype(np.uint8), y=y)
    return path


@pytest.fixture
def tiny_overrides(tiny_npz, tmp_path):
    """Config overrides for a fast run on the tiny npz data, writing under tmp_path/runs."""
    return [
        f"data.name=npz:{tiny_npz}",
        "model.latent_dim=3",
        "model.hidden=[32]",
        "train.batch_size=16",
        "train.epochs=3",
        "train.progress=never",
        f"train.out_dir={tmp_path / 'runs'}",
        "train.name=tiny",
    ]


EXPLORER_RUNS = {  # tiny digits runs, one per kind of page the explorer builds
    "vae2": ["model.latent_dim=2"],
    "vae4": ["model.latent_dim=4"],
    "cvae": ["model.latent_dim=3", "model.conditional=true"],
    "joint": ["model.name=joint-vae", "model.latent_dim=3", "model.discrete=[4]"],
}


@pytest.fixture(scope="session")
def explorer_runs(tmp_path_factory) -> dict:
    """Run folders of a 2-D VAE, a 4-D VAE, a conditional VAE and a JointVAE on sklearn's digits (~1 s each)."""
    from vaelab import train

    out = tmp_path_factory.mktemp("explorer-runs")
    common = ["data.name=digits", "model.hidden=[32]", "train.epochs=4", "train.batch_size=64", "train.threads=1",
              "train.progress=never", "train.report=false", "train.frames=false", f"train.out_dir={out}"]  # fmt: skip
    return {name: train(None, [*common, *keys, f"train.name={name}"]).path for name, keys in EXPLORER_RUNS.items()}


@pytest.fixture(scope="session")
def live_explorer(explorer_runs):
    """A real uvicorn server (in a thread, on a free port) over the four explorer runs: its URL."""
    from vaelab.web import load_explorers
    from vaelab.web.server import BackgroundServer

    with BackgroundServer(load_explorers([explorer_runs[name] for name in EXPLORER_RUNS])) as url:
        yield url


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 3 MiB tmpfs (needs root and a kernel that lets us mount): its mount point."""
    import subprocess
    import uuid

    point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip() or 'not permitted'}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)
