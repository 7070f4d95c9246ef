"""Splits of one image or none: every command either works, skipping what cannot be measured with the reason,
or refuses in one line with what to change, before training where it can."""

import json

import numpy as np
import pytest

from vaelab import train

pytestmark = pytest.mark.slow  # end to end: runs trained and evaluated on splits of one image


@pytest.fixture(scope="module")
def three_images(tmp_path_factory):
    """An npz of 3 images of 2 classes: 1 train, 1 validation, 1 test image."""
    path = tmp_path_factory.mktemp("three") / "three.npz"
    np.savez(path, x=np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8), y=np.array([0, 1, 0]))
    return path


@pytest.fixture(scope="module")
def one_image_run(three_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    overrides = [f"data.name=npz:{three_images}", "model.latent_dim=2", "model.hidden=[16]", "train.epochs=2",
                 "train.progress=never", f"train.out_dir={out}", "train.name=one"]  # fmt: skip
    run = train(None, overrides)
    assert (len(run.data.train_x), len(run.data.val_x), len(run.data.test_x)) == (1, 1, 1)
    return run.path


def strict_json(path):
    """JSON as the standard has it (Python's own reader takes NaN)."""
    return json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{path} holds {name}"))


@pytest.mark.parametrize("split", ["test", "val"])
def test_eval_of_one_image_shows_no_stderr_and_skips_probes_and_frechet_distance_with_the_reason(
    split, one_image_run, cli, capsys
):
    code, err = cli("eval", one_image_run, "--split", split, "--iw-samples", "5", "--samplers", "gmm,two-stage")
    assert code == 0, err
    results = strict_json(one_image_run / "eval.json")[split]
    assert results["neg_elbo"]["stderr"] is None and results["n_images"] == 1
    assert "the probes need 5 images of 2 classes" in results["probes"]["skipped"]
    assert "needs 2 or more" in results["fid"]["skipped"]


def test_post_hoc_samplers_refuse_a_run_of_one_training_image_in_one_line(one_image_run, cli, tmp_path):
    for sampler in ("gmm", "two-stage"):
        code, err = cli("sample", one_image_run, "--prior", sampler, "-o", tmp_path / "s.png")
        assert code == 2 and err.count("\n") == 1, err
        assert f"the {sampler} sampler" in err and "needs 2 or more" in err and "--prior model" in err
    assert not (tmp_path / "s.png").exists()


def test_pictures_of_a_split_of_one_image_are_drawn(one_image_run, cli, tmp_path):
    for command in ("reconstruct", "traverse", "latent-map"):
        assert cli(command, one_image_run, "-o", tmp_path / f"{command}.png")[0] == 0, command
    code, err = cli("interpolate", one_image_run, "--pair", "0", "1", "-o", tmp_path / "i.png")
    assert code == 2 and "the test split has 1" in err
    code, err = cli("latent-map", one_image_run, "--tsne", "-n", "10", "-o", tmp_path / "t.png")
    assert code == 2 and "a t-SNE map needs 4 images or more; the split has 1" in err, err


def test_training_without_a_test_split_skips_its_evaluation_and_says_how_to_measure_another(
    three_images, tmp_path, cli
):
    code, err = cli("train", f"data.name=npz:{three_images}", "data.test_fraction=0", "model.hidden=[16]",
                    "train.epochs=1", "train.progress=never", f"train.out_dir={tmp_path}", "train.name=r")  # fmt: skip
    assert code == 0, err
    assert f"test evaluation skipped; measure another split with: vaelab eval {tmp_path / 'r'} --split val" in err
    assert not (tmp_path / "r" / "eval.json").exists()


def test_pca_with_more_dimensions_than_training_images_is_refused_before_a_run_folder_is_made(
    three_images, tmp_path, cli
):
    code, err = cli("train", f"data.name=npz:{three_images}", "model.name=pca", "model.latent_dim=2",
                    f"train.out_dir={tmp_path / 'runs'}")  # fmt: skip
    assert code == 2 and "model.latent_dim=2 exceeds the 1 training images" in err, err
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
