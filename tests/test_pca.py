"""PCA as a model: the closed-form fit, the reading interface (encode, decode, sample), and the run folder."""

import numpy as np
import pytest
import torch

from vaelab.config import load_config
from vaelab.models import build_model

SHAPE = (1, 6, 5)  # 30 pixels


def make_pca(latent_dim=3, likelihood="bernoulli"):
    config = load_config(None, ["model.name=pca", f"model.latent_dim={latent_dim}", f"model.likelihood={likelihood}"])
    return build_model(config.model, SHAPE)


def fitted(model):
    """PCA's learned tensors in scikit-learn's names: mean_ (P,), components_ (P, D), explained_variance_ (D,)."""
    projection = model.encoder.features
    return projection.mean, projection.components, model.prior["z"].var


def low_rank_images(n=400, rank=3, seed=0):
    """Images in [0, 1] that lie near a rank-``rank`` affine subspace."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(rank, 30, generator=g) * 0.08
    x = 0.5 + torch.randn(n, rank, generator=g) @ basis + 0.005 * torch.randn(n, 30, generator=g)
    return x.clamp(0, 1).view(n, *SHAPE)


@pytest.mark.parametrize("n", [400, 12])  # more images than pixels (X^T X), and fewer (X X^T)
def test_fit_matches_scikit_learn(n):
    from sklearn.decomposition import PCA as SkPCA

    x = low_rank_images(n)
    mean, components, variances = fitted(make_pca().fit_closed_form(x))
    reference = SkPCA(3, svd_solver="full").fit(x.flatten(1).double().numpy())
    np.testing.assert_allclose(mean.numpy(), reference.mean_, atol=1e-6)
    # directions up to sign; the code variances are the eigenvalues / n (scikit-learn divides by n - 1)
    cosines = np.abs((components.double().numpy() * reference.components_.T).sum(0))
    np.testing.assert_allclose(cosines, 1, atol=1e-5)
    expected = reference.explained_variance_ * (n - 1) / n
    np.testing.assert_allclose(variances.numpy(), expected, rtol=1e-4)


def test_codes_are_projections_with_the_eigenvalues_as_variances():
    x = low_rank_images()
    model = make_pca().fit_closed_form(x)
    z = model.encode(x).mean  # (N, 3)
    np.testing.assert_allclose(z.mean(0).numpy(), 0, atol=1e-5)
    variances = fitted(model)[2].numpy()
    np.testing.assert_allclose(z.var(0, unbiased=False).numpy(), variances, rtol=1e-4)
    samples = model.prior.sample(20_000, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(samples.var(0).numpy(), variances, rtol=0.05)


def test_reconstruction_is_nearly_exact_for_data_of_the_latent_rank():
    x = low_rank_images()
    model = make_pca().fit_closed_form(x)
    error = (model.reconstruct(x) - x).pow(2).mean().item()
    assert error < 1e-4 < x.var().item()
    worse = make_pca(latent_dim=1).fit_closed_form(x)
    assert (worse.reconstruct(x) - x).pow(2).mean().item() > 10 * error


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_decode_returns_what_the_likelihood_reads(likelihood):
    """decode gives the logit of the clamped mean image: both likelihoods read it back as that mean."""
    x = low_rank_images()
    model = make_pca(likelihood=likelihood).fit_closed_form(x)
    z = model.encode(x[:5]).mean
    mean_image, components, _ = fitted(model)
    mean = (mean_image + z @ components.T).clamp(1e-3, 1 - 1e-3).view(5, *SHAPE)
    torch.testing.assert_close(model.decode_mean(z), mean, atol=1e-5, rtol=0)
    terms = model.terms(x[:5])
    assert torch.equal(terms.kl, torch.zeros(5)) and torch.isfinite(terms.recon).all()
    torch.testing.assert_close(terms.recon, model.likelihood.nll(model.decode(z), x[:5]))


def test_fitting_lowers_the_loss_of_an_unfitted_pca():
    x = low_rank_images()
    model = make_pca()
    before = model.loss(x).total.item()
    model.fit_closed_form(x)
    assert model.loss(x).total.item() < before - 1.0


def test_too_many_components_is_a_config_error():
    from vaelab.errors import ConfigError

    with pytest.raises(ConfigError, match="exceeds the 30 pixels"):
        make_pca(latent_dim=31)
    with pytest.raises(ConfigError, match="exceeds the 12 training images"):
        make_pca(latent_dim=20).fit_closed_form(low_rank_images(12))


@pytest.mark.slow
def test_train_writes_a_run_that_evaluates_samples_and_reconstructs(tiny_overrides):
    from vaelab import load_run, train
    from vaelab.evaluate import evaluate_run

    run = train(None, tiny_overrides + ["model.name=pca", "train.epochs=5"])
    assert len(run.metrics) == 1  # one closed-form fit, not five epochs
    reloaded = load_run(run.path)
    assert set(reloaded.model.state_dict()) == {"encoder.features.mean", "encoder.features.components",
                                                "prior.z.mean", "prior.z.var"}  # fmt: skip
    assert not list(reloaded.model.parameters())  # nothing for an optimizer: PCA is fitted, not trained
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, reloaded.model.state_dict()[key]), key
    x, _ = reloaded.data.split("test")
    assert reloaded.reconstruct(x[:4]).shape == (4, 1, 10, 10)
    samples = reloaded.sample(6)
    assert samples.shape == (6, 1, 10, 10) and samples.min() >= 0 and samples.max() <= 1
    results = evaluate_run(reloaded, "test", iw_samples=10)
    assert results["kl"]["mean"] == 0 and results["iw_nll"] is None  # no density: no IW-NLL
