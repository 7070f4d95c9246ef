"""Evaluation: the IW-NLL against an exact marginal likelihood, active units, probes, clustering accuracy, the
Fréchet distance and its cached classifier, and `vaelab eval` / `vaelab compare` end to end."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_cli import vaelab
from vaelab.config import config_from_dict
from vaelab.evaluate.fid import feature_classifier, feature_distance, frechet_distance
from vaelab.evaluate.latents import Latents, clustering_scores, hungarian_accuracy, probe_accuracy, unit_activity
from vaelab.evaluate.likelihood import evaluation_batches, iw_nll_per_image
from vaelab.evaluate.suite import collapse_warning
from vaelab.parts import DiagonalGaussian, GaussianPrior
from vaelab.parts.kl import closed_form_kl


class LinearGaussian(nn.Module):
    """Probabilistic PCA, x = W z + b + eps, z ~ N(0, I), eps ~ N(0, s^2 I), whose marginal is known:
    log p(x) = log N(x; b, W W^T + s^2 I). Its q(z|x) is the exact posterior's diagonal with the mean shifted
    and the variances inflated, so the importance weights vary and the bound is not tight at k = 1."""

    has_density, n_conditions = True, 0

    def __init__(self, shift=1.5, inflate=4.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.image_shape = (1, 2, 3)
        self.w = nn.Parameter(0.15 * torch.randn(6, 2, generator=g, dtype=torch.float64), requires_grad=False)
        self.b = torch.full((6,), 0.5, dtype=torch.float64)
        self.s = 0.1
        self.shift, self.inflate = shift, inflate

    @property
    def device(self):
        return self.w.device

    def encode(self, x, y=None) -> DiagonalGaussian:
        x = x.flatten(1).double()
        precision = self.w.T @ self.w / self.s**2 + torch.eye(2, dtype=torch.float64)  # posterior precision
        cov = torch.linalg.inv(precision)
        mean = (x - self.b) @ self.w @ cov / self.s**2  # (B, 2)
        var = cov.diagonal().expand_as(mean)
        return DiagonalGaussian(mean + self.shift * var.sqrt(), (var * self.inflate).log())

    def log_likelihood(self, x, z):
        """log N(x; W z + b, s^2 I), (k, B)."""
        residual = x.flatten(1).double() - (z @ self.w.T + self.b)
        return -0.5 * (residual.pow(2).sum(-1) / self.s**2 + 6 * math.log(2 * math.pi * self.s**2))

    def log_importance_weights(self, x, y=None, k=1, generator=None):
        q = self.encode(x)
        z = q.rsample(generator, k)  # (k, B, 2)
        return self.log_likelihood(x, z) + GaussianPrior(2).log_prob(z) - q.log_prob(z)

    def exact_log_px(self, x):
        cov = self.w @ self.w.T + self.s**2 * torch.eye(6, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.flatten(1).double())

    def exact_elbo(self, x):
        """E_q[log p(x|z)] - KL(q || N(0, I)) in closed form."""
        q = self.encode(x)
        var = q.logvar.exp()
        residual = x.flatten(1).double() - (q.mu @ self.w.T + self.b)
        spread = (var[:, None, :] * self.w.pow(2)).sum(-1).sum(-1)  # tr(W diag(var) W^T)
        expected = -0.5 * ((residual.pow(2).sum(-1) + spread) / self.s**2 + 6 * math.log(2 * math.pi * self.s**2))
        return expected - closed_form_kl(q, GaussianPrior(2)).sum(-1)


@pytest.fixture(scope="module")
def ppca_data():
    """300 images drawn from the model, quantised to uint8: the exact density holds at any point."""
    model = LinearGaussian()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(300, 2, generator=g, dtype=torch.float64)
    x = z @ model.w.T + model.b + model.s * torch.randn(300, 6, generator=g, dtype=torch.float64)
    x_uint8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).view(300, 1, 2, 3)
    return model, x_uint8, x_uint8.double().div(255)


def test_iw_nll_converges_to_the_exact_marginal_likelihood(ppca_data):
    model, x_uint8, x = ppca_data
    exact_nll = -model.exact_log_px(x)  # (N,)
    gap_at_1 = (-model.exact_elbo(x) - exact_nll).mean().item()  # E KL(q || p(z|x)) > 0
    assert gap_at_1 > 2  # q is deliberately imperfect, so convergence has something to show
    gaps = {}
    for k in (2, 10, 100, 1000, 5000):
        error = iw_nll_per_image(model, x_uint8, None, "none", k=k) - exact_nll  # (N,)
        gaps[k] = error.mean().item()
        # the bias of the k-sample bound shrinks like 1/k (Burda et al. 2016; Rainforth et al. 2018), the noise of
        # its mean over images like 1/sqrt(k): the tolerance shrinks with k
        tolerance = 4 * gap_at_1 / k + 4 * error.std().item() / math.sqrt(len(error))
        assert abs(gaps[k]) < tolerance, (k, gaps[k], tolerance)
    assert gap_at_1 > gaps[2] > gaps[10] > gaps[100]  # tightening with k while the bias dominates the noise
    assert abs(gaps[5000]) < 0.01  # nats per image


@pytest.mark.parametrize("seed", range(4))
def test_iw_estimate_is_at_least_the_elbo(ppca_data, seed):
    model, x_uint8, x = ppca_data
    elbo = model.exact_elbo(x).mean().item()
    for k in (2, 10, 100):
        log_px = -iw_nll_per_image(model, x_uint8, None, "none", k=k, seed=seed).mean().item()
        assert log_px >= elbo


def test_chunking_over_samples_uses_exactly_k_samples_per_image(ppca_data):
    """Rows smaller than k split each image's samples over several calls; log w = 0 everywhere would give
    log(k_used / k) != 0 if a sample were dropped or repeated."""

    class Flat(nn.Module):
        has_density, n_conditions, image_shape, device = True, 0, (1, 2, 3), torch.device("cpu")

        def __init__(self):
            super().__init__()
            self.calls = []

        def log_importance_weights(self, x, y=None, k=1, generator=None):
            self.calls.append((len(x), k))
            return torch.zeros(k, len(x))

    flat = Flat()
    x_uint8 = ppca_data[1][:10]
    nll = iw_nll_per_image(flat, x_uint8, None, "none", k=1000, rows=300)
    torch.testing.assert_close(nll, torch.zeros(10, dtype=torch.float64))
    assert all(b * k <= 300 for b, k in flat.calls) and sum(b * k for b, k in flat.calls) == 10 * 1000


def test_chunked_estimate_still_converges(ppca_data):
    model, x_uint8, x = ppca_data
    nll = iw_nll_per_image(model, x_uint8, None, "none", k=2000, rows=300)  # 7 calls per image
    assert abs((nll + model.exact_log_px(x)).mean().item()) < 0.01


def test_iw_nll_is_refused_for_models_without_a_density():
    from vaelab.config import load_config
    from vaelab.errors import ConfigError
    from vaelab.models import build_model

    ae = build_model(load_config(None, ["model.name=ae", "model.hidden=[8]"]).model, (1, 4, 4))
    with pytest.raises(ConfigError, match="not defined for ae"):
        iw_nll_per_image(ae, torch.zeros(2, 1, 4, 4, dtype=torch.uint8), None, "none", k=5)


def test_evaluation_binarisation_does_not_depend_on_the_batch_size():
    x = torch.randint(0, 256, (2100, 1, 3, 5), dtype=torch.uint8)  # 15 pixels: not a multiple of 4
    whole = torch.cat([b for b, _ in evaluation_batches(x, None, "dynamic", 4096)])
    for batch_size in (1, 7, 1000):
        assert torch.equal(torch.cat([b for b, _ in evaluation_batches(x, None, "dynamic", batch_size)]), whole)
    assert set(whole.unique().tolist()) == {0.0, 1.0}


def test_active_units_count_dimensions_whose_posterior_mean_varies():
    rng = np.random.default_rng(0)
    stds = np.array([0.0, 0.05, 0.2, 1.0, 3.0])  # variances 0, 0.0025, 0.04, 1, 9
    means = rng.standard_normal((20_000, 5)) * stds + 7.0  # an offset changes nothing
    activity = unit_activity(Latents(means.astype(np.float32), means, None, None), "test")
    assert activity.count == 3 and activity.active.tolist() == [False, False, True, True, True]
    np.testing.assert_allclose(activity.variance, stds**2, rtol=0.05, atol=1e-4)
    assert activity.order == [4, 3, 2, 1, 0]  # point codes: ranked by the variance itself


@pytest.mark.parametrize(
    "model, suggested, not_suggested",
    [
        ("vae", ["model.kl_warmup_fraction", "model.free_bits"], []),
        ("capacity-vae", ["model.free_bits"], ["model.kl_warmup_fraction"]),
        ("planar-vae", ["model.kl_warmup_fraction"], ["model.free_bits"]),
        ("joint-vae", [], ["model.kl_warmup_fraction", "model.free_bits"]),
        ("iwae", [], ["model.kl_warmup_fraction", "model.free_bits"]),
    ],
)
def test_the_collapse_warning_suggests_only_keys_the_model_takes(model, suggested, not_suggested):
    config = config_from_dict({"model": {"name": model, "latent_dim": 8}}).model
    warning = collapse_warning({"latent": {"collapse_warning": True, "active_units": 1, "dims": 8}}, config)
    assert warning.startswith("warning: posterior collapse: only 1 of 8 latent units are active")
    assert all(key in warning for key in [*suggested, "a smaller model.latent_dim (now 8)"]), warning
    assert not any(key in warning for key in not_suggested), warning
    for key in suggested:  # each suggestion is a value the model validates
        config_from_dict({"model": {"name": model, key.removeprefix("model."): 1}})


def test_hungarian_accuracy_finds_the_best_one_to_one_mapping():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    assert hungarian_accuracy((labels + 1) % 3, labels) == 1.0  # a relabelling costs nothing
    codes = np.array([1, 1, 0, 0, 0, 0, 2, 2])  # cluster 1 -> 0 (2 right), 0 -> 1 (3 right), 2 -> 2 (2 right)
    assert hungarian_accuracy(codes, labels) == pytest.approx(7 / 8)
    # more clusters than labels: only one cluster per label counts
    assert hungarian_accuracy(np.arange(8), labels) == pytest.approx(3 / 8)
    scores = clustering_scores((labels + 1) % 3, labels)
    assert scores["nmi"] == pytest.approx(1.0) and scores["clusters_used"] == 3


def test_probes_separate_informative_features_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    informative = np.eye(3)[y] * 3 + rng.normal(0, 0.5, (600, 3))
    result = probe_accuracy(informative[:400], y[:400], informative[400:], y[400:])
    assert result["linear"] > 0.95 and result["knn"] > 0.95
    noise = rng.normal(size=(600, 3))
    result = probe_accuracy(noise[:400], y[:400], noise[400:], y[400:])
    assert result["linear"] < 0.5 and result["knn"] < 0.5


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    s1, s2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    # diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum (s1 - s2)^2
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    assert frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(expected, rel=1e-10)
    # full covariances: against scipy's matrix square root
    from scipy.linalg import sqrtm

    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    c1, c2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(reference, rel=1e-8)


def test_feature_distance_is_zero_for_identical_sets_and_sees_a_shift():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5000, 6))
    assert abs(feature_distance(features, features)) < 1e-8
    shifted = rng.normal(size=(5000, 6)) + np.array([1.0, 0, 0, 0, 0, 0])
    assert feature_distance(features, shifted) == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_the_feature_classifier_is_trained_once_then_loaded_from_the_cache(tiny_npz, tmp_path, monkeypatch):
    from vaelab.data import load_dataset

    monkeypatch.setenv("VAELAB_CACHE", str(tmp_path / "cache"))
    data = load_dataset(f"npz:{tiny_npz}", seed=0)
    net, meta = feature_classifier(data)
    assert not meta["cached"] and meta["test_accuracy"] > 0.6  # three classes of bars: easy
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors" and "10x10" in files[0].name
    again, meta_again = feature_classifier(data)
    assert meta_again["cached"]
    x = data.test_x.float() / 255
    np.testing.assert_array_equal(net.features(x), again.features(x))


@pytest.fixture
def cli_env(tmp_path):
    import os

    return {**os.environ, "VAELAB_CACHE": str(tmp_path / "cache")}


@pytest.mark.slow
def test_eval_command_writes_every_diagnostic(tiny_overrides, tmp_path, cli_env):
    from vaelab import train

    run = train(None, tiny_overrides).path
    result = vaelab("eval", run, "--iw-samples", 10, env=cli_env)
    assert result.returncode == 0, result.stderr
    report = json.loads((run / "eval.json").read_text())["test"]
    iw = report["iw_nll"]
    assert iw["k"] == 10 and math.isfinite(iw["mean"]) and iw["stderr"] > 0
    assert iw["mean"] < report["neg_elbo"]["mean"] + 3 * report["neg_elbo"]["stderr"]
    latent = report["latent"]
    assert latent["dims"] == 3 and len(latent["kl_per_dim"]) == 3 and 0 <= latent["active_units"] <= 3
    assert sum(latent["kl_per_dim"]) == pytest.approx(report["kl"]["mean"], rel=1e-4)  # same images
    assert 0 <= report["probes"]["linear"] <= 1 and report["probes"]["n_test"] == 12
    assert (
        report["fid"]["samples"] > 0
        and report["fid"]["n"] == 12
        and report["fid"]["classifier"].startswith(cli_env["VAELAB_CACHE"])
    )
    for fragment in ("neg_elbo", "iw_nll (k=10)", "active units", "probes", "Fréchet distance"):
        assert fragment in result.stdout


@pytest.mark.slow
def test_eval_command_skips_what_it_is_told_to(tiny_overrides, tmp_path, cli_env):
    from vaelab import train

    run = train(None, tiny_overrides + ["model.name=ae"]).path
    result = vaelab("eval", run, "--iw-samples", 0, "--no-probes", "--no-fid", env=cli_env)
    assert result.returncode == 0, result.stderr
    report = json.loads((run / "eval.json").read_text())["test"]
    assert "iw_nll" not in report and "probes" not in report and "fid" not in report
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_compare_command_writes_table_csv_and_chart(tiny_npz, tmp_path, cli_env):
    out = tmp_path / "cmp"
    result = vaelab("compare", "--data", f"npz:{tiny_npz}", "--models", "pca,ae,vae,fisher", "--latent-dim", 3,
                    "--epochs", 2, "--iw-samples", 5, "--out", out, "model.hidden=[32]", "train.batch_size=16",
                    env=cli_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(out / "compare.csv") as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["pca", "ae", "vae", "fisher", "pixels"]
    assert rows["pca"]["iw_nll"] == "" and rows["ae"]["neg_elbo"] == "" and rows["fisher"]["recon_mse"] == ""
    assert float(rows["vae"]["iw_nll"]) > 0 and float(rows["vae"]["neg_elbo"]) > 0
    for name in rows:
        assert 0 <= float(rows[name]["linear_probe"]) <= 1
    assert float(rows["pixels"]["linear_probe"]) > 0.6  # bars in three orientations: pixels separate them
    table = (out / "compare.md").read_text()
    assert "vaelab compare --data npz:" in table and "| pca |" in table
    from PIL import Image

    with Image.open(out / "compare.png") as chart:
        assert chart.size[0] > 500
    assert (out / "runs" / "vae" / "eval.json").is_file()


@pytest.mark.slow
def test_compare_rejects_an_unknown_model(tmp_path):
    result = vaelab("compare", "--data", "digits", "--models", "pca,vea", "--out", tmp_path)
    assert result.returncode == 2 and "unknown vea" in result.stderr


@pytest.mark.slow
def test_models_with_a_discrete_latent_get_clustering_scores(tiny_overrides):
    from vaelab import train
    from vaelab.evaluate import run_evaluation

    run = train(None, tiny_overrides + ["model.name=joint-vae", "model.discrete=[3]", "model.latent_dim=2"])
    results = run_evaluation(run, "test", iw_samples=20, fid=False)
    (clusters,) = results["clustering"]
    assert clusters["categories"] == 3 and 1 / 3 <= clusters["accuracy"] <= 1 and 0 <= clusters["nmi"] <= 1
    assert {"kl_cont", "kl_disc"} <= set(results) and results["latent"]["dims"] == 2  # the continuous part
    assert results["iw_nll"]["k"] == 20
    plain = run_evaluation(train(None, tiny_overrides + ["train.name=plain"]), "test", iw_samples=0, fid=False)
    assert "clustering" not in plain and "iw_nll" not in plain
