"""The default config and the presets (configs/best-*.yaml) as shipped: each trains, resumes exactly and
evaluates. On the tiny data with small widths, every other key of the file (family, prior, schedule, warm-up,
moving average, batch size, activation) as written."""

import json
from pathlib import Path

import pytest

from tests.test_lr_schedule import assert_same_weights, interrupted_and_resumed
from vaelab.config import load_config

CONFIGS = Path(__file__).parent.parent / "configs"
PRESETS = {
    "default.yaml": "fashion-mnist",
    "vae-mlp.yaml": "fashion-mnist",
    "best-fashion.yaml": "fashion-mnist",
    "best-mnist-5k.yaml": "mnist-5k",
}


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_loads_and_trains_on_the_data_its_name_says(name):
    config = load_config(CONFIGS / name)
    assert config.data.name == PRESETS[name] and config.data.binarize == "dynamic"


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_trains_resumes_exactly_and_evaluates(name, tiny_overrides, monkeypatch, cli):
    # fp32, not the presets' auto: on a loaded CPU with native bf16 two fresh runs' probes may choose apart
    keys = [*tiny_overrides, "train.report=false", "train.frames=false", "train.batch_size=16", "model.hidden=[24, 16]"]
    keys.append("train.precision=fp32")
    full, resumed = interrupted_and_resumed(keys, 2, monkeypatch, config=CONFIGS / name)
    assert_same_weights(full, resumed)
    assert [r["val_loss"] for r in resumed.metrics] == [r["val_loss"] for r in full.metrics]

    code, err = cli("eval", full.path, "--iw-samples", 20)
    assert code == 0, err
    test = json.loads((full.path / "eval.json").read_text())["test"]
    assert test["n_images"] == 12
    assert test["iw_nll"]["mean"] <= test["neg_elbo"]["mean"] + 0.5  # the bound tightens with k (up to noise)
