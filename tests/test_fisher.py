"""Fisher vectors: the batched implementation against scikit-image's, and the image encoder around it."""

import numpy as np
import pytest
import torch

from vaelab.evaluate.fisher import FisherVectorEncoder, dense_patches, fisher_vectors


@pytest.fixture(scope="module")
def small_gmm():
    """A 4-mode diagonal GMM fitted to 3-D descriptors, and 5 images of 20 descriptors each."""
    from skimage.feature import learn_gmm

    rng = np.random.default_rng(0)
    train = [rng.normal(size=(30, 3)) + rng.integers(-2, 3, 3) for _ in range(20)]
    gmm = learn_gmm(train, n_modes=4, gm_args={"covariance_type": "diag", "random_state": 0})
    images = rng.normal(size=(5, 20, 3)) + 0.5
    return gmm, images


@pytest.mark.parametrize("improved", [False, True])
def test_matches_scikit_image(small_gmm, improved):
    from skimage.feature import fisher_vector

    gmm, images = small_gmm
    ours = fisher_vectors(images, gmm.weights_, gmm.means_, gmm.covariances_, improved=improved)
    reference = np.stack([fisher_vector(d, gmm, improved=improved) for d in images])
    assert ours.shape == (5, 2 * 4 * 3 + 4)  # 2KD + K
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)


def test_improved_vectors_are_power_and_l2_normalised(small_gmm):
    gmm, images = small_gmm
    plain = fisher_vectors(images, gmm.weights_, gmm.means_, gmm.covariances_, improved=False)
    improved = fisher_vectors(images, gmm.weights_, gmm.means_, gmm.covariances_, improved=True)
    np.testing.assert_allclose(np.linalg.norm(improved, axis=1), 1, atol=1e-12)
    powered = np.sign(plain) * np.sqrt(np.abs(plain))
    np.testing.assert_allclose(improved, powered / np.linalg.norm(powered, axis=1, keepdims=True), atol=1e-12)


def test_dense_patches_cover_the_image_in_order():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    windows, centres = dense_patches(x, 4, 2)
    assert windows.shape == (2, 9, 16) and centres.shape == (9, 2)
    assert torch.equal(windows[1, 4].view(4, 4), x[1, 0, 2:6, 2:6])  # the middle window
    np.testing.assert_allclose(centres[4].numpy(), [3.5 / 7, 3.5 / 7])


def test_encoder_gives_separable_features_on_bars(tiny_npz):
    data = np.load(tiny_npz)
    x = torch.from_numpy(data["x"]).float().div(255).unsqueeze(1)  # (120, 1, 10, 10)
    y = data["y"]
    encoder = FisherVectorEncoder(pca_dims=6, modes=4, seed=0).fit(x[:80])
    features = encoder.transform(x)
    d = 6 + 2  # PCA dims and the window's position
    assert features.shape == (120, 4 * (2 * d + 1)) == (120, encoder.dims)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    from sklearn.linear_model import LogisticRegression

    accuracy = LogisticRegression(max_iter=500).fit(features[:80], y[:80]).score(features[80:], y[80:])
    assert accuracy > 0.9  # horizontal, vertical and diagonal bars
    again = FisherVectorEncoder(pca_dims=6, modes=4, seed=0).fit(x[:80]).transform(x)
    np.testing.assert_array_equal(features, again)  # seeded: the same fit twice
