"""Choosing a restart by the agreement of discrete codes: the ARI bookkeeping, the medoid, errors, the CLI."""

import json

import numpy as np
import pytest

from tests.test_cli import assert_user_error, vaelab
from vaelab import load_run
from vaelab.errors import ConfigError
from vaelab.evaluate.agreement import Agreement, code_agreement, joint_code, pairwise_ari, recorded_accuracy

JOINT = ["model.name=joint-vae", "model.discrete=[3]", "model.latent_dim=2"]
SMALL_DIGITS = ["data.name=digits", "data.limit=300", "model.hidden=[32]", "train.epochs=2", "train.batch_size=64",
                "train.progress=never", "train.report=false", "train.frames=false"]  # fmt: skip
DIGITS = [*SMALL_DIGITS, *JOINT]


def noisy_copy(codes, fraction, rng, k):
    """``codes`` relabelled by a permutation, with ``fraction`` of them replaced by random categories."""
    out = rng.permutation(k)[codes]
    flip = rng.random(len(codes)) < fraction
    out[flip] = rng.integers(0, k, flip.sum())
    return out


def test_joint_code_numbers_every_combination_of_categories_once():
    combos = np.array([(a, b) for b in range(4) for a in range(3)])  # (12, 2): K = 3 and 4
    assert joint_code(combos, [3, 4]).tolist() == list(range(12))  # c1 + 3 c2


def test_pairwise_ari_is_one_for_a_relabelling_and_near_zero_for_chance():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 3000)
    ari = pairwise_ari([truth, noisy_copy(truth, 0.0, rng, 10), rng.integers(0, 10, 3000)])
    assert np.allclose(ari, ari.T) and np.allclose(np.diag(ari), 1)
    assert ari[0, 1] == pytest.approx(1.0)
    assert abs(ari[0, 2]) < 0.02 and abs(ari[1, 2]) < 0.02


def test_the_chosen_run_is_the_one_closest_to_the_others():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 10, 3000)
    codes = [noisy_copy(truth, f, rng, 10) for f in (0.3, 0.1, 0.2)] + [rng.integers(0, 10, 3000) for _ in range(2)]
    agreement = Agreement(paths=[f"run{i}" for i in range(5)], ari=pairwise_ari(codes), n_images=3000)
    by_hand = [np.mean([agreement.ari[i, j] for j in range(5) if j != i]) for i in range(5)]
    assert np.allclose(agreement.mean_ari, by_hand)
    assert agreement.chosen == 1  # the least noisy copy: random partitions agree with nobody


@pytest.fixture(scope="module")
def joint_runs(tmp_path_factory):
    """Two seeds of a tiny JointVAE on 300 of sklearn's digits."""
    from vaelab import train

    out = tmp_path_factory.mktemp("runs")
    return [train(None, [*DIGITS, f"train.out_dir={out}", f"seed={s}", f"train.name=joint{s}"]) for s in (0, 1)]


@pytest.mark.slow
def test_code_agreement_compares_the_non_test_images_of_real_runs(joint_runs):
    result = code_agreement(joint_runs)
    assert result.n_images == len(joint_runs[0].data.train_x) + len(joint_runs[0].data.val_x)
    assert result.ari.shape == (2, 2) and np.allclose(result.ari, result.ari.T)
    assert -1 <= result.ari[0, 1] <= 1 and result.chosen in (0, 1)


@pytest.mark.slow
def test_agreement_rejects_runs_it_cannot_compare(joint_runs, tiny_overrides, tmp_path):
    from vaelab import train

    with pytest.raises(ConfigError, match="at least two runs"):
        code_agreement(joint_runs[:1])
    with pytest.raises(ConfigError, match="is given twice"):  # would agree with itself perfectly
        code_agreement([joint_runs[0], joint_runs[1], load_run(joint_runs[0].path / ".." / joint_runs[0].path.name)])
    plain = train(None, [*SMALL_DIGITS, f"train.out_dir={tmp_path}", "train.name=plain"])
    with pytest.raises(ConfigError, match="no discrete latent"):
        code_agreement([joint_runs[0], plain])
    four = train(None, [*DIGITS, f"train.out_dir={tmp_path}", "model.discrete=[4]", "train.name=four"])
    with pytest.raises(ConfigError, match="same latent spec"):
        code_agreement([joint_runs[0], four])
    bars = train(None, [*tiny_overrides, *JOINT, "train.epochs=1", "train.report=false", "train.name=bars"])
    with pytest.raises(ConfigError, match="data.name=npz:.* same data"):
        code_agreement([joint_runs[0], bars])


def test_recorded_accuracy_reads_eval_json_and_tolerates_its_absence(tmp_path):
    assert recorded_accuracy(tmp_path) is None
    (tmp_path / "eval.json").write_text("{not json")
    assert recorded_accuracy(tmp_path) is None
    (tmp_path / "eval.json").write_text(json.dumps({"test": {"clustering": [{"accuracy": 0.75}]}}))
    assert recorded_accuracy(tmp_path) == 0.75


@pytest.mark.slow
def test_consensus_command_names_the_chosen_run_or_fails_in_one_line(joint_runs, tmp_path):
    paths = [run.path for run in joint_runs]
    result = vaelab("consensus", *paths)
    assert result.returncode == 0, result.stderr
    assert "chosen: " in result.stdout and "<- chosen" in result.stdout
    assert result.stdout.count(str(paths[0].parent)) == 3  # two table rows and the verdict
    assert_user_error(vaelab("consensus", paths[0]), "at least two runs")
    assert_user_error(vaelab("consensus", paths[0], tmp_path / "missing"), "does not exist")
