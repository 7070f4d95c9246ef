"""Disentanglement metrics on representations whose answer is known: the factors themselves score near 1, a
random rotation of them lower, noise at chance, a duplicated factor lowers DCI completeness; MIG's information
estimates agree with independent computations; and `vaelab eval --disentanglement` end to end on shapes-small."""

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import mutual_info_score

from tests.test_cli import vaelab
from vaelab.evaluate.disentanglement import (
    HEADLINE,
    all_metrics,
    dci_from_importance,
    discrete_entropy,
    factor_vae_score,
    histogram_discretize,
    mig_from_codes,
    mutual_information,
    sap,
)

POINTS = 600  # training points per metric in these tests (the protocols' 10,000 is for real evaluations)


class Toy:
    """Ground truth whose observation is the factor vector itself: a representation is any function of it."""

    factor_names = ("kind", "size", "angle", "x", "y")
    factor_sizes = (3, 6, 10, 8, 8)
    categorical = (True, False, False, False, False)

    def sample_factors(self, n, rng):
        return rng.integers(0, self.factor_sizes, size=(n, len(self.factor_sizes)))

    def observations(self, factors):
        return np.asarray(factors, dtype=np.float64)


SCALE = np.array(Toy.factor_sizes, dtype=np.float64)
ROTATION = np.linalg.qr(np.random.default_rng(7).normal(size=(5, 5)))[0]
REPRESENTATIONS = {
    "factors": lambda v: v / SCALE,
    "rotation": lambda v: (v / SCALE - 0.5) @ ROTATION,
    "noise": lambda v: np.random.default_rng(int(v.sum()) + len(v)).normal(size=(len(v), 5)),
    "duplicate": lambda v: np.concatenate([v / SCALE, v[:, :1] / SCALE[0]], axis=1),
}


@pytest.fixture(scope="module")
def scores():
    return {name: all_metrics(Toy(), represent, points=POINTS) for name, represent in REPRESENTATIONS.items()}


@pytest.mark.parametrize("metric", list(HEADLINE))
@pytest.mark.slow
def test_the_factors_themselves_score_near_perfect(scores, metric):
    result = scores["factors"][metric]
    floor = {"beta_vae": 0.98, "factor_vae": 0.98, "mig": 0.95, "sap": 0.8, "dci": 0.95}[metric]
    assert result[HEADLINE[metric]] >= floor
    if metric == "dci":
        assert result["completeness"] >= 0.95 and result["informativeness"] >= 0.95
    if metric == "sap":  # the ordered factors are explained by their own dimension alone: R^2 = 1 vs 0
        assert min(result["per_factor"][1:]) >= 0.95


@pytest.mark.parametrize("metric", list(HEADLINE))
@pytest.mark.slow
def test_a_rotation_of_the_factors_scores_lower(scores, metric):
    rotated, exact = scores["rotation"][metric][HEADLINE[metric]], scores["factors"][metric][HEADLINE[metric]]
    margin = {"beta_vae": 0.03, "factor_vae": 0.03, "mig": 0.5, "sap": 0.4, "dci": 0.5}[metric]
    assert rotated < exact - margin


@pytest.mark.parametrize("metric", list(HEADLINE))
@pytest.mark.slow
def test_noise_scores_at_chance(scores, metric):
    result = scores["noise"][metric]
    if metric in ("beta_vae", "factor_vae"):  # a classifier of the fixed factor: chance is 1 / 5
        assert abs(result["score"] - 0.2) < 0.08
    else:
        assert result[HEADLINE[metric]] < 0.1
    if metric == "dci":  # each factor guessed at about chance, averaged over factors of 3 .. 10 values
        assert result["informativeness"] < 0.3


@pytest.mark.slow
def test_a_duplicated_factor_lowers_dci_completeness_only(scores):
    exact, duplicate = scores["factors"]["dci"], scores["duplicate"]["dci"]
    assert duplicate["completeness"] < exact["completeness"] - 0.04
    assert duplicate["disentanglement"] >= 0.95 and duplicate["informativeness"] >= 0.95


def test_dci_from_importance_in_closed_form():
    perfect = dci_from_importance(np.eye(3))
    assert perfect["disentanglement"] == pytest.approx(1, abs=1e-9) and perfect["completeness"] == pytest.approx(1)
    assert dci_from_importance(np.ones((4, 3)))["disentanglement"] == pytest.approx(0, abs=1e-9)
    # factor 0 split evenly over two codes of four: its completeness is 1 - H_4(1/2, 1/2) = 1/2, weight 2/4;
    # factors 1 and 2 complete (weight 1/4 each); every code is about one factor, so disentanglement stays 1
    r = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    split = dci_from_importance(r)
    assert split["completeness"] == pytest.approx(0.5 * 0.5 + 0.25 + 0.25, abs=1e-6)
    assert split["disentanglement"] == pytest.approx(1, abs=1e-6)


def _mi_by_counting(a, b):
    """I(a; b) in nats from a Python dictionary of pair counts: sum p(u,v) log(p(u,v) / (p(u) p(v)))."""
    n, pairs, pa, pb = len(a), Counter(zip(a, b, strict=True)), Counter(a), Counter(b)
    return sum(c / n * math.log((c / n) / ((pa[u] / n) * (pb[v] / n))) for (u, v), c in pairs.items())


def test_mig_information_estimates_agree_with_independent_computations():
    a = np.array([[0, 0], [0, 1], [1, 1], [1, 0], [2, 1], [2, 1], [0, 0], [1, 1]])  # (8, 2)
    b = np.array([[5, 0], [5, 0], [6, 1], [6, 1], [7, 0], [7, 1], [5, 1], [6, 0]])
    mi = mutual_information(a, b)
    for i, j in itertools.product(range(2), range(2)):
        assert mi[i, j] == pytest.approx(_mi_by_counting(a[:, i].tolist(), b[:, j].tolist()), abs=1e-12)
        assert mi[i, j] == pytest.approx(mutual_info_score(a[:, i], b[:, j]), abs=1e-12)
    assert mutual_information(a[:, :1], a[:, :1])[0, 0] == pytest.approx(discrete_entropy(a[:, :1])[0])
    h = discrete_entropy(b)
    assert h[0] == pytest.approx(scipy_entropy([3, 3, 2])) and h[1] == pytest.approx(math.log(2))


def test_histogram_bins_match_numpy_histogram_and_digitize():
    codes = np.random.default_rng(0).normal(size=(1000, 3)) * [1, 10, 1e-3]
    ours = histogram_discretize(codes, 20)
    for j in range(3):
        reference = np.digitize(codes[:, j], np.histogram(codes[:, j], 20)[1][:-1]) - 1
        assert np.array_equal(ours[:, j], reference)


def test_mig_is_one_for_the_factors_on_the_whole_grid_and_zero_for_a_duplicate():
    grid = np.array(list(itertools.product(range(3), range(4), range(5))))  # each factor combination once
    assert mig_from_codes(grid, grid.astype(float))["score"] == pytest.approx(1.0, abs=1e-12)
    twice = mig_from_codes(grid, np.concatenate([grid, grid[:, :1]], axis=1).astype(float))
    assert twice["per_factor"][0] == pytest.approx(0.0, abs=1e-12) and twice["per_factor"][1] == pytest.approx(1)


def test_factor_vae_prunes_collapsed_dimensions():
    def represent(v):
        return np.concatenate([v / SCALE, np.full((len(v), 2), 0.3)], axis=1)  # two dims that never change

    result = factor_vae_score(Toy(), represent, np.random.default_rng(0), n_train=200, n_eval=100, n_variance=500)
    assert result["active_dims"] == 5 and result["score"] >= 0.98


# --- end to end on shapes-small ---


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """A JointVAE trained for one short epoch on shapes-small: enough to have a representation to score."""
    from vaelab import train

    out = tmp_path_factory.mktemp("runs")
    overrides = [
        "data.name=shapes-small", "data.binarize=none", "data.limit=1000", "model.name=joint-vae",
        "model.latent_dim=3", "model.discrete=[3]", "model.hidden=[64]", "train.epochs=1", "train.batch_size=64",
        "train.progress=never", "train.frames=false", "train.report=false", f"train.out_dir={out}", "train.name=j",
    ]  # fmt: skip
    return train(None, overrides).path


@pytest.mark.slow
def test_eval_disentanglement_writes_every_metric_and_prints_the_table(shapes_run):
    result = vaelab("eval", shapes_run, "--disentanglement", "--disentanglement-points", 300,
                     "--iw-samples", 0, "--no-probes", "--no-fid")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((shapes_run / "eval.json").read_text())["test"]["disentanglement"]
    assert report["dataset"] == "shapes-small" and report["points"] == 300
    assert report["code_table"]["images"] == 4608  # the protocols would encode more images than the grid holds
    for metric, key in HEADLINE.items():
        assert 0 <= report[metric][key] <= 1, metric
    (discrete,) = report["discrete"]
    assert discrete["factor"] == "shape" and discrete["categories"] == 3
    assert 0 <= discrete["mutual_information"] <= discrete["factor_entropy"] + 1e-9
    assert 1 / 3 - 0.05 <= discrete["accuracy"] <= 1
    for line in ["beta-VAE score", "FactorVAE score", "MIG", "SAP", "DCI completeness", "discrete latent 0"]:
        assert line in result.stdout


@pytest.mark.slow
def test_eval_disentanglement_without_factors_is_a_one_line_error(tiny_overrides, tmp_path):
    assert vaelab("train", *tiny_overrides).returncode == 0
    result = vaelab("eval", tmp_path / "runs" / "tiny", "--disentanglement")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "has no ground-truth factors" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- the sanity checks of disentanglement_lib's metric tests (Locatello et al. 2019) ---


class IdentityObservations:
    """disentanglement_lib's dummy ground truth: 10 ordered factors of 10 values, observed as themselves."""

    factor_names = tuple(f"v{k}" for k in range(10))
    factor_sizes = (10,) * 10
    categorical = (False,) * 10

    def sample_factors(self, n, rng):
        return rng.integers(0, 10, size=(n, 10))

    def observations(self, factors):
        return np.asarray(factors, dtype=np.float64)


@pytest.fixture(scope="module")
def sanity():
    """Every metric of the identity and of an all-zero representation of IdentityObservations."""
    data = IdentityObservations()
    return {name: all_metrics(data, represent, points=POINTS) for name, represent in
            {"identity": lambda v: v, "zeros": np.zeros_like}.items()}  # fmt: skip


@pytest.mark.parametrize("metric", list(HEADLINE))
@pytest.mark.slow
def test_an_identity_representation_scores_between_0_9_and_1(sanity, metric):
    result = sanity["identity"][metric]
    assert 0.9 <= result[HEADLINE[metric]] <= 1.0 + 1e-9
    if "train_accuracy" in result:
        assert 0.9 <= result["train_accuracy"] <= 1.0


@pytest.mark.parametrize("metric", list(HEADLINE))
@pytest.mark.slow
def test_an_all_zero_representation_scores_at_most_0_2(sanity, metric):
    """Chance is 1 / 10 for the classifier metrics here: with 5 factors (shapes) it would be 1 / 5 itself."""
    result = sanity["zeros"][metric]
    assert result[HEADLINE[metric]] <= 0.2
    if "train_accuracy" in result:
        assert result["train_accuracy"] <= 0.2


def test_a_duplicated_latent_lowers_mig():
    """A copy of factor 0's dimension leaves factor 0 no gap: MIG falls by about 1 / K, from its sampled
    estimate on 600 points (not the closed form on the whole grid, tested above)."""
    data, rng = IdentityObservations(), np.random.default_rng(0)
    factors = data.sample_factors(POINTS, rng)
    exact = mig_from_codes(factors, factors.astype(float))
    doubled = mig_from_codes(factors, np.concatenate([factors, factors[:, :1]], axis=1).astype(float))
    assert exact["score"] >= 0.9 and doubled["per_factor"][0] == pytest.approx(0.0, abs=1e-12)
    assert doubled["score"] == pytest.approx(exact["score"] - exact["per_factor"][0] / 10, abs=1e-12)


def test_sap_cannot_credit_a_perfect_dimension_with_the_middle_of_three_categories():
    """On the shapes-small factors the identity's SAP is ~0.87, not >= 0.9: disentanglement_lib's linear SVM
    (C = 0.01) on one dimension cannot single out the middle of shape's 3 values (accuracy 2/3, gap 1/3), while
    each ordered factor's R^2 gap is ~1. disentanglement_lib's own test scores its factors as ordered."""
    from vaelab.data.shapes import CATEGORICAL, FACTOR_NAMES, GRIDS

    class ShapesSmallFactors(IdentityObservations):
        factor_names, factor_sizes = FACTOR_NAMES, GRIDS["shapes-small"].sizes
        categorical = tuple(name in CATEGORICAL for name in FACTOR_NAMES)

        def sample_factors(self, n, rng):
            return rng.integers(0, self.factor_sizes, size=(n, len(self.factor_sizes)))

    result = sap(ShapesSmallFactors(), lambda v: v, np.random.default_rng(0), n_train=POINTS, n_test=POINTS // 2)
    shape, *ordered = result["per_factor"]
    assert min(ordered) >= 0.99 and shape == pytest.approx(1 / 3, abs=0.05)
