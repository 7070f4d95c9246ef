"""model.pixel_context: the Bernoulli likelihood whose pixels also read a window of the pixels before them (an
autoregressive decoder with a small receptive field), against enumeration, the chain rule by hand, and end to end."""

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli

from tests.test_cli import assert_user_error, vaelab
from vaelab.config import load_config
from vaelab.errors import ConfigError
from vaelab.parts.likelihoods import ContextBernoulli, raster_mask


def random_likelihood(channels=1, size=3, seed=0) -> ContextBernoulli:
    likelihood = ContextBernoulli(channels, size)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        likelihood.weight.copy_(torch.randn(likelihood.weight.shape, generator=g))
        likelihood.bias.copy_(torch.randn(channels, generator=g))
    return likelihood


def test_the_mask_keeps_the_pixels_before_the_centre_in_raster_order():
    size, centre = 5, 2
    mask = raster_mask(size)
    for i, j in itertools.product(range(size), repeat=2):
        assert mask[i, j] == float(i < centre or (i == centre and j < centre))
    assert mask.sum() == (size * size - 1) / 2


def test_the_likelihood_sums_to_one_over_every_binary_image():
    """exp(-nll) over all 2^9 binary 3 x 3 images sums to 1 for two draws of the decoder's logits: a normalised
    density, whatever the decoder's logits and the window's weights."""
    likelihood = random_likelihood(channels=1, size=3)
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).view(-1, 1, 3, 3)  # (512, 1, 3, 3)
    for seed in range(2):
        logits = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(seed)).expand(len(images), -1, -1, -1)
        total = torch.exp(-likelihood.nll(logits, images).double()).sum()
        assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_the_nll_is_the_chain_rule_of_the_conditionals_computed_by_hand():
    """-log p(x|z) = -sum_i log Bernoulli(x_i; sigmoid(l_i + b + sum of the window's weights times the pixels
    before i)), looping over pixels and window positions, every channel read, pixels outside the image 0."""
    channels, size, h, w = 2, 3, 4, 5
    likelihood = random_likelihood(channels, size, seed=1)
    g = torch.Generator().manual_seed(2)
    x = torch.bernoulli(torch.full((3, channels, h, w), 0.5), generator=g)
    logits = torch.randn(3, channels, h, w, generator=g)
    expected = torch.zeros(3)
    weight, bias, pad = likelihood.weight.detach(), likelihood.bias.detach(), size // 2
    for c, i, j in itertools.product(range(channels), range(h), range(w)):
        context = bias[c].expand(3).clone()
        for di, dj in itertools.product(range(-pad, pad + 1), repeat=2):
            before = di < 0 or (di == 0 and dj < 0)
            if before and 0 <= i + di < h and 0 <= j + dj < w:
                context += (weight[c, :, di + pad, dj + pad] * x[:, :, i + di, j + dj]).sum(-1)
        expected -= Bernoulli(logits=logits[:, c, i, j] + context).log_prob(x[:, c, i, j])
    torch.testing.assert_close(likelihood.nll(logits, x), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("block", [32, 3])
def test_the_context_and_its_gradient_are_the_masked_convolution_s(block):
    """The banded matmul against F.conv2d under the mask (an independent computation of the same map), values and
    the gradients of the window's weights and bias, two channels, a 5 x 5 window on a 6 x 7 image: in one block,
    and cut into blocks of 3 columns (the last one partly past the image)."""
    likelihood = random_likelihood(channels=2, size=5, seed=7)
    likelihood.block = block
    g = torch.Generator().manual_seed(8)
    x = torch.bernoulli(torch.full((3, 2, 6, 7), 0.5), generator=g)
    upstream = torch.randn(3, 2, 6, 7, generator=g)
    weight = likelihood.weight.detach().clone().requires_grad_()
    bias = likelihood.bias.detach().clone().requires_grad_()
    expected = F.conv2d(x, weight * raster_mask(5), bias, padding=2)
    (expected * upstream).sum().backward()
    context = likelihood.context(x)
    (context * upstream).sum().backward()
    torch.testing.assert_close(context, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(likelihood.weight.grad, weight.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(likelihood.bias.grad, bias.grad)


def test_a_pixel_s_conditional_never_reads_itself_or_the_pixels_after_it():
    likelihood = random_likelihood(channels=1, size=5, seed=3)
    x = torch.bernoulli(torch.full((1, 1, 6, 6), 0.5), generator=torch.Generator().manual_seed(4))
    base = likelihood.context(x)
    for flat in range(36):
        flipped = x.clone().view(-1)
        flipped[flat] = 1 - flipped[flat]
        moved = (likelihood.context(flipped.view_as(x)) - base).abs().view(-1) > 0
        assert not moved[: flat + 1].any()  # itself and every pixel before it: unchanged
        assert moved[flat + 1 :].any() or flat == 35


def test_the_mean_image_is_the_fixed_point_of_the_mean_field_pass():
    """m = sigmoid(l + c(m)): the context read from the probabilities themselves (exact, the mask being
    triangular in raster order); with a zero window the mean is the factorised Bernoulli's sigmoid(l)."""
    likelihood = random_likelihood(channels=2, size=3, seed=5)
    logits = torch.randn(4, 2, 5, 6, generator=torch.Generator().manual_seed(6))
    mean = likelihood.mean(logits)
    torch.testing.assert_close(mean, torch.sigmoid(logits + likelihood.context(mean)), rtol=1e-5, atol=1e-6)
    assert ((mean > 0) & (mean < 1)).all()
    torch.testing.assert_close(ContextBernoulli(2, 3).mean(logits), torch.sigmoid(logits))


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["model.pixel_context=4"], "odd window size"),
        (["model.pixel_context=1"], "odd window size"),
        (["model.pixel_context=3", "model.likelihood=gaussian"], "likelihood=bernoulli"),
        (["model.pixel_context=3", "model.name=pca"], "pca"),
        (["model.pixel_context=3", "model.name=rae-gp"], "rae-gp"),
    ],
)
def test_bad_pixel_context_settings_are_config_errors(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, overrides)


@pytest.mark.slow
def test_a_vae_with_pixel_context_trains_evaluates_samples_and_exports_its_encoder(tiny_overrides, tmp_path):
    """End to end from the CLI: the window's weights learn (they start at zero), eval gives an IW-NLL, samples are
    mean-field images in [0, 1], the decoder's export is refused with one line and the encoder's is written."""
    from vaelab import load_run

    result = vaelab("train", *tiny_overrides, "model.pixel_context=3", "train.epochs=2")
    assert result.returncode == 0, result.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    run = load_run(run_dir)
    assert run.model.likelihood.weight.abs().sum() > 0
    result = vaelab("eval", run_dir, "--iw-samples", "20", "--no-probes", "--no-fid", "--samplers", "")
    assert result.returncode == 0, result.stderr
    test = json.loads((run_dir / "eval.json").read_text())["test"]
    assert test["iw_nll"]["mean"] <= test["neg_elbo"]["mean"] + 1.0
    images = run.model.sample(6, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, *run.model.image_shape) and images.min() > 0 and images.max() < 1
    assert_user_error(vaelab("export", run_dir, "--output", tmp_path / "export"), "--part encoder")
    result = vaelab("export", run_dir, "--part", "encoder", "--format", "torchscript", "--output", tmp_path / "export")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "export" / "encoder.pt").is_file()


def test_the_nll_of_several_draws_reads_each_image_s_context_once_and_gives_the_nll_of_the_repeated_images():
    likelihood = random_likelihood(channels=1, size=5, seed=7)
    g = torch.Generator().manual_seed(8)
    x = torch.bernoulli(torch.full((3, 1, 6, 6), 0.5), generator=g)
    decoded = torch.randn(4 * 3, 1, 6, 6, generator=g)  # 4 draws per image, draw-major
    torch.testing.assert_close(likelihood.nll_draws(decoded, x, 4), likelihood.nll(decoded, x.repeat(4, 1, 1, 1)))
