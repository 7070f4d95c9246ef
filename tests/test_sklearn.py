"""vaelab.sklearn: scikit-learn's estimator checks, the input contract, Pipeline + GridSearchCV, pickling."""

import pickle
import runpy
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from vaelab.sklearn import AE, PCA, VAE, BetaVAE, ConditionalVAE, JointVAE

TINY = dict(latent_dim=2, hidden=(8,), epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digits as uint8 pixels (n, 64): the 0-16 grey levels times 16, capped at 255."""
    x, y = load_digits(return_X_y=True)
    return np.minimum(x * 16, 255).astype(np.uint8), y


def small(cls, **params):
    """A quick estimator on digits: a small MLP, few epochs."""
    base = dict(latent_dim=4, hidden=(32,), epochs=3, batch_size=64, random_state=0)
    if cls is PCA:
        base = dict(latent_dim=4, random_state=0)
    return cls(**{**base, **params})


# scikit-learn's own estimator checks, every one of them. check_estimator feeds arbitrary real-valued features
# (negative, or around 100), which the default value_range=None rightly rejects (pixels are uint8 or floats in
# [0, 1]); value_range="fit" is the documented mode for such data, so the checks run with it. The one check
# scikit-learn itself skips, check_array_api_input, needs SCIPY_ARRAY_API=1 and Array API inputs, which these
# torch-backed estimators do not take (they convert to NumPy).
@parametrize_with_checks(
    [
        VAE(**TINY, value_range="fit"),
        AE(**TINY, value_range="fit"),
        BetaVAE(**TINY, value_range="fit"),
        ConditionalVAE(**TINY, value_range="fit"),
        JointVAE(**TINY, discrete=(3,), value_range="fit"),
        PCA(latent_dim=2, value_range="fit"),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    if (
        isinstance(estimator, ConditionalVAE)
        and check.func.__name__ == "check_methods_sample_order_invariance"
        and linear_rounds_rows_by_position(rows=20, features=6)
    ):
        pytest.xfail("this BLAS rounds a row of a matmul by its position in the batch for the check's shapes")
    check(estimator)


def linear_rounds_rows_by_position(rows: int, features: int) -> bool:
    """Whether a Linear layer gives a row other float32 bits when the rows come in another order. The sample
    order check feeds 20 rows of 3 features and 3 classes: the ConditionalVAE's first layer sees 6 inputs, and
    MKL on an AMD EPYC (2026-12-02) rounds such rows by position (1 ulp); rows of 3 or 64 inputs it does not."""
    generator = torch.Generator().manual_seed(0)
    x, w = torch.randn(rows, features, generator=generator), torch.randn(8, features, generator=generator)
    order = torch.randperm(rows, generator=generator)
    with torch.no_grad():
        return not torch.equal(torch.nn.functional.linear(x, w)[order], torch.nn.functional.linear(x[order], w))


# -- the input contract --------------------------------------------------------------------------------------
def test_flat_image_shaped_uint8_and_float_inputs_give_the_same_codes(digits):
    x, _ = digits
    x = x[:300]
    vae = small(VAE).fit(x)
    codes = vae.transform(x)
    assert codes.shape == (300, 4) and codes.dtype == np.float32
    np.testing.assert_allclose(vae.transform(x.reshape(-1, 1, 8, 8)), codes, atol=1e-6)
    np.testing.assert_allclose(vae.transform(x.reshape(-1, 8, 8)), codes, atol=1e-6)
    float_codes = vae.transform(x / 255.0)
    assert float_codes.dtype == np.float64
    np.testing.assert_allclose(float_codes, codes, atol=1e-6)


def test_fitting_on_image_shaped_arrays_returns_images_of_that_shape(digits):
    x = digits[0][:200].reshape(-1, 1, 8, 8)
    vae = small(VAE).fit(x)
    assert vae.image_shape_ == (1, 8, 8) and vae.n_features_in_ == 64
    assert vae.inverse_transform(vae.transform(x)).shape == (200, 1, 8, 8)
    assert vae.sample(5).shape == (5, 1, 8, 8)


def test_floats_outside_unit_range_are_an_error_that_names_value_range():
    x, _ = load_digits(return_X_y=True)  # floats 0..16
    with pytest.raises(ValueError, match=r"value_range=\(0, 16\)"):
        small(VAE).fit(x)
    with pytest.raises(ValueError, match="pixels 0-255"):
        small(VAE).fit(np.full((10, 4), 300, dtype=np.int64))


def test_value_range_maps_to_pixels_and_back():
    x, _ = load_digits(return_X_y=True)
    x = x[:200]
    vae = small(VAE, value_range=(0, 16)).fit(x)
    np.testing.assert_allclose(vae.transform(x), small(VAE).fit(x / 16).transform(x / 16), atol=1e-6)
    out = vae.inverse_transform(vae.transform(x))
    assert out.min() >= 0 and out.max() <= 16 and out.max() > 1  # in the input's range, not [0, 1]
    fitted = small(VAE, value_range="fit").fit(x)
    assert fitted.value_range_ == (0.0, 16.0)


def test_image_shape_inference_and_the_image_shape_parameter(digits):
    x = digits[0][:50]
    assert small(AE).fit(x).image_shape_ == (1, 8, 8)  # 64 = 8 x 8
    assert small(AE).fit(x[:, :10]).image_shape_ == (1, 1, 10)  # not a square: a row of pixels, MLP only
    assert small(AE, image_shape=(2, 5)).fit(x[:, :10]).image_shape_ == (1, 2, 5)
    with pytest.raises(ValueError, match="net='conv' needs images"):
        small(AE, net="conv").fit(x[:, :10])
    with pytest.raises(ValueError, match="does not hold the 64 features"):
        small(AE, image_shape=(7, 7)).fit(x)


def test_conv_nets_take_image_shaped_input(digits):
    x = digits[0][:100].reshape(-1, 1, 8, 8)
    vae = small(VAE, net="conv", channels=(4, 8)).fit(x)
    assert vae.transform(x).shape == (100, 4)


def test_bad_parameters_are_value_errors_naming_the_key(digits):
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(latent_dim=0, epochs=1).fit(digits[0][:20])
    with pytest.raises(ValueError, match="likelihood"):
        VAE(likelihood="poisson", epochs=1).fit(digits[0][:20])


# -- what the methods give -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [VAE, AE, BetaVAE, JointVAE, PCA])
def test_methods_give_codes_images_samples_and_a_finite_score(cls, digits):
    x = digits[0][:300]
    est = small(cls)
    with pytest.raises(NotFittedError):
        est.transform(x)
    assert est.fit(x) is est
    codes = est.transform(x)
    width = 4 + (10 if cls is JointVAE else 0)  # JointVAE: [mu, one-hot argmax of its categorical]
    assert codes.shape == (300, width)
    images = est.inverse_transform(codes)
    assert images.shape == x.shape and images.min() >= 0 and images.max() <= 1
    samples = est.sample(7)
    assert samples.shape == (7, 64) and np.isfinite(samples).all()
    score = est.score(x)
    assert isinstance(score, float) and np.isfinite(score) and score < 0  # mean ELBO, nats per image
    assert est.score(x) == score  # fixed noise
    assert list(est.get_feature_names_out()) == [f"{cls.__name__.lower()}{i}" for i in range(width)]


def test_training_lowers_the_negative_elbo_and_keeps_a_history(digits):
    vae = small(VAE, epochs=4).fit(digits[0])
    losses = [row["train_loss"] for row in vae.history_]
    assert len(losses) == vae.n_epochs_ == 4 and losses[-1] < losses[0]


def test_a_kl_warmup_fraction_ends_at_that_fraction_of_the_training_loops_steps(digits):
    vae = small(VAE, kl_warmup_fraction=0.5).fit(digits[0])
    steps = int(vae.history_[-1]["step"])  # 3 epochs of 29 batches
    assert vae.model_.objective.total_steps == steps == 87
    assert vae.model_.objective.kl["z"].warmup_length(steps) == 44


def test_early_stopping_holds_out_a_validation_split(digits):
    # 100 images and a wide net: it overfits, and the validation -ELBO turns up long before 300 epochs
    vae = small(VAE, latent_dim=8, hidden=(256,), epochs=300, batch_size=32, lr=3e-3, early_stopping=True,
                n_iter_no_change=3, validation_fraction=0.3).fit(digits[0][:100])  # fmt: skip
    assert "val_loss" in vae.history_[0]
    assert vae.n_epochs_ < 300


def test_pca_equals_scikit_learns(digits):
    x = digits[0][:500] / 255.0
    ours = PCA(latent_dim=5).fit(x)
    theirs = SklearnPCA(n_components=5).fit(x)
    np.testing.assert_allclose(ours.transform(x), theirs.transform(x), atol=1e-4)
    np.testing.assert_allclose(ours.components_, theirs.components_, atol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_ * 500 / 499, theirs.explained_variance_, rtol=1e-4)


def test_jointvae_gives_its_categories(digits):
    jvae = small(JointVAE, discrete=(3, 2)).fit(digits[0][:200])
    assert jvae.transform(digits[0][:10]).shape == (10, 4 + 3 + 2)
    categories = jvae.categories(digits[0][:10])
    assert categories.shape == (10, 2) and categories[:, 0].max() < 3 and categories[:, 1].max() < 2


def test_jointvae_takes_the_code_terms(digits):
    jvae = small(JointVAE, invariance=50.0, invariance_shift=1.0, balance=20.0).fit(digits[0][:200])
    config = jvae.model_.config
    assert (config.invariance, config.invariance_shift, config.balance) == (50.0, 1.0, 20.0)
    assert jvae.history_[-1]["train_invariance"] > 0 and jvae.history_[-1]["train_balance"] > 0


def test_fit_is_reproducible_and_leaves_the_global_rng_alone(digits):
    x = digits[0][:200]
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = small(VAE).fit(x).transform(x)
    assert torch.rand(1) == expected_next
    np.testing.assert_array_equal(a, small(VAE).fit(x).transform(x))


def test_fit_writes_no_files_and_prints_nothing_unless_verbose(digits, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    small(VAE, epochs=2).fit(digits[0][:100])
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == ""
    small(VAE, epochs=2, verbose=True).fit(digits[0][:100])
    assert capsys.readouterr().err.count("epoch ") == 2


def test_numpy_scalars_from_a_parameter_grid_are_accepted(digits):
    vae = small(VAE, latent_dim=np.int64(3), lr=np.float32(1e-3)).fit(digits[0][:50])
    assert vae.transform(digits[0][:5]).shape == (5, 3)


# -- the conditional VAE -------------------------------------------------------------------------------------
def test_conditional_vae_needs_labels_to_fit(digits):
    with pytest.raises(ValueError, match="requires y"):
        small(ConditionalVAE).fit(digits[0][:50])


def test_conditional_vae_with_and_without_labels(digits):
    x, y = digits
    names = np.array(list("abcdefghij"))[y]  # any label values: classes_ keeps them
    cvae = small(ConditionalVAE, epochs=15).fit(x, names)
    assert list(cvae.classes_) == list("abcdefghij")
    given = cvae.transform(x[:100], names[:100])
    inferred = cvae.infer_labels(x[:100])
    np.testing.assert_array_equal(cvae.transform(x[:100]), cvae.transform(x[:100], inferred))
    assert given.shape == (100, 4)
    assert (cvae.infer_labels(x) == names).mean() > 0.5  # the CVAE as a generative classifier; chance is 0.1
    assert cvae.sample(4, y="c").shape == (4, 64)
    assert cvae.sample(20).shape == (20, 64)  # cycles through the classes
    assert cvae.inverse_transform(given, names[:100]).shape == (100, 64)
    with pytest.raises(ValueError, match="needs the labels"):
        cvae.inverse_transform(given)
    with pytest.raises(ValueError, match="not seen in fit"):
        cvae.transform(x[:2], ["a", "z"])
    with_labels, without = cvae.score(x[:200], names[:200]), cvae.score(x[:200])  # log p(x|y) and log p(x) bounds
    assert np.isfinite(with_labels) and np.isfinite(without) and with_labels < 0 and without < 0


# -- scikit-learn's tools ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pipeline_and_grid_search_pick_a_reasonable_latent_dim():
    """The grid of bench/sklearn_grid_search.py (which times it: under a minute is the target)."""
    grid_search = runpy.run_path(str(Path(__file__).parent.parent / "bench" / "sklearn_grid_search.py"))["grid_search"]
    x, y = load_digits(return_X_y=True)
    grid = grid_search().fit(x, y)
    assert grid.best_params_["vae__latent_dim"] == 16
    assert grid.best_score_ > 0.7  # 10 classes; LogisticRegression on the codes
    assert grid.predict(x[:5]).shape == (5,)


def test_pipeline_with_a_conditional_vae_fits_and_predicts(digits):
    x, y = digits
    pipe = make_pipeline(small(ConditionalVAE), LogisticRegression(max_iter=500)).fit(x, y)
    assert pipe.predict(x[:10]).shape == (10,)


@pytest.mark.parametrize("cls", [VAE, ConditionalVAE, JointVAE, PCA])
def test_pickle_and_joblib_round_trips_keep_the_model(cls, digits, tmp_path):
    x, y = digits[0][:200], digits[1][:200]
    est = small(cls).fit(x, y)
    state = est.__getstate__()
    assert isinstance(state["model_"], bytes)  # safetensors bytes, no torch objects
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(x), est.transform(x))
    np.testing.assert_array_equal(again.sample(3), est.sample(3))
    joblib.dump(est, tmp_path / "est.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "est.joblib").transform(x), est.transform(x))
    assert isinstance(est.model_, torch.nn.Module)  # pickling left the estimator itself intact


def test_clone_gives_an_unfitted_copy_with_the_same_parameters(digits):
    est = small(BetaVAE, beta=2.0).fit(digits[0][:50])
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "model_")


@pytest.mark.slow
def test_the_walkthrough_example_runs(capsys):
    runpy.run_path(str(Path(__file__).parent.parent / "examples" / "sklearn_pipeline.py"), run_name="__main__")
    out = capsys.readouterr().out
    for fragment in ["test ELBO", "-> LogisticRegression: test accuracy", "grid search: best", "joblib round trip",
                     "ONNX decoder"]:  # fmt: skip
        assert fragment in out
