"""Sizes beyond the machine are estimated before anything is allocated and refused with the estimate and what
to change: no allocator traceback, no multi-GB climb."""

import resource

import numpy as np
import pytest
from PIL import Image

from vaelab.config import load_config
from vaelab.data import load_dataset
from vaelab.errors import DataError
from vaelab.models import build_model
from vaelab.resources import available_bytes, training_estimate


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(
    "sizes",
    [
        ["model.latent_dim=100000000"],
        ["model.hidden=[300000, 300000]"],
        ["model.net=conv", "model.latent_dim=50000000"],
    ],
    ids=["latent", "hidden", "conv-latent"],
)
def test_a_model_beyond_the_memory_is_refused_with_its_estimate_before_allocation(sizes, cli, tmp_path):
    before = peak_rss_mb()
    code, err = cli("train", "data.name=digits", *sizes, f"train.out_dir={tmp_path}", "train.progress=never")
    assert code == 2 and err.count("\n") == 1, err
    assert "needs about" in err and "parameters x 16 bytes" in err and "available: lower model.latent_dim" in err
    assert peak_rss_mb() - before < 500, "memory climbed before the refusal"
    assert list(tmp_path.iterdir()) == []  # no run folder


def test_the_estimate_counts_the_parameters_the_model_has():
    for net in ("mlp", "conv"):
        config = load_config(None, [f"model.net={net}", "model.latent_dim=7"])
        parameters, parameter_bytes, activation_bytes = training_estimate(config, (1, 28, 28), 10)
        model = build_model(config.model, (1, 28, 28), 10)
        assert parameters == sum(p.numel() for p in model.parameters())
        assert parameter_bytes >= 16 * parameters and activation_bytes > 0


def test_the_available_memory_is_read_from_the_system():
    available = available_bytes()
    assert available is None or 10**7 < available < 10**15


def test_a_batch_whose_activations_do_not_fit_is_refused_naming_the_batch_size(cli, tmp_path, monkeypatch):
    config = load_config(None, ["data.name=digits"])
    _, parameter_bytes, activation_bytes = training_estimate(config, (1, 8, 8), 10)
    monkeypatch.setattr("vaelab.resources.available_bytes", lambda: parameter_bytes + activation_bytes // 2)
    code, err = cli("train", "data.name=digits", f"train.out_dir={tmp_path}")
    assert code == 2 and "of activations for a batch of 128" in err and "train.batch_size" in err, err


def test_a_folder_of_images_too_large_for_memory_is_refused_after_reading_one(tmp_path, monkeypatch):
    for i in range(5):
        Image.fromarray(np.full((64, 64, 3), i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr("vaelab.resources.available_bytes", lambda: 100_000)
    with pytest.raises(
        DataError,
        match=r"5 images of 12,288 bytes \(and their stacked copy\) need 123 kB in memory; this machine has 100 kB",
    ):
        load_dataset(f"folder:{tmp_path}")


def test_labels_that_are_not_class_indices_are_refused_before_a_class_list_is_made(tmp_path):
    path = tmp_path / "ids.npz"
    np.savez(path, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 10**12, 5, 10**12]))
    with pytest.raises(DataError, match=r"labels run up to 1,000,000,000,000, .* for 3 distinct values; .*renumber"):
        load_dataset(f"npz:{path}", val_fraction=0.25, test_fraction=0.25)


def test_an_npz_too_large_for_memory_is_refused_from_its_headers_before_loading(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros((50, 64, 64), np.uint8))  # 200 kB of images, a few hundred bytes on disk
    monkeypatch.setattr("vaelab.resources.available_bytes", lambda: 100_000)
    loaded = []
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: loaded.append(key))
    with pytest.raises(
        DataError,
        match=r"big.npz: its arrays \(and their uint8 copies\) need 410 kB in memory; this machine has 100 kB",
    ):
        load_dataset(f"npz:{path}")
    assert loaded == []
