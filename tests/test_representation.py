"""The representation families' terms against independent computations: beta-TCVAE's KL decomposition (brute
force over a known mixture), DIP-VAE's covariances (numpy, Monte Carlo), the MMD of InfoVAE and WAE (a double
loop; its expectation under equal and different distributions), RAE-GP's gradient penalty (autograd's Jacobian)
and FactorVAE's density-ratio estimate (a correlated Gaussian's TC in closed form) and its exact resume."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vaelab.config import load_config
from vaelab.errors import ConfigError
from vaelab.evaluate.latents import active_correlation, means_covariance
from vaelab.models import build_model
from vaelab.parts import DiagonalGaussian
from vaelab.parts.aggregate import (
    covariance,
    diagonal_penalty,
    dip_covariance,
    kl_decomposition,
    log_batch_weights,
    off_diagonal_penalty,
    pairwise_log_density,
)
from vaelab.parts.density_ratio import TCDiscriminator, permute_dims
from vaelab.parts.mmd import kernel_matrix, mmd, prior_bandwidths

SHAPE = (1, 8, 8)


def make(name, *overrides):
    config = load_config(None, [f"model.name={name}", "model.hidden=[32]", "model.latent_dim=3", *overrides])
    torch.manual_seed(0)
    return build_model(config.model, SHAPE)


def batch(n=32):
    return torch.bernoulli(torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(0)))


def seeded(seed=3):
    return torch.Generator().manual_seed(seed)


def gaussians(n, d, seed=0):
    g = seeded(seed)
    return DiagonalGaussian(torch.randn(n, d, generator=g, dtype=torch.float64),
                            torch.randn(n, d, generator=g, dtype=torch.float64) - 1)  # fmt: skip


# -- beta-TCVAE: the KL decomposition --------------------------------------------------------------------------
def test_pairwise_log_density_matches_torch_distributions():
    q = gaussians(6, 3)
    z = torch.randn(6, 3, dtype=torch.float64)
    pairs = pairwise_log_density(q, z)
    for i in range(6):
        for j in range(6):
            expected = Normal(q.mu[j], q.std[j]).log_prob(z[i])
            torch.testing.assert_close(pairs[i, j], expected)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_the_three_terms_sum_to_the_log_ratio_at_the_draw(estimator):
    q = gaussians(16, 4)
    z = q.rsample(seeded())
    log_pz = Independent(Normal(torch.zeros(4), torch.ones(4)), 1).log_prob(z)
    parts = kl_decomposition(q, z, log_pz, dataset_size=1000, estimator=estimator)
    log_qz_x = Independent(Normal(q.mu, q.std), 1).log_prob(z)
    torch.testing.assert_close(parts.mi + parts.tc + parts.dwkl, log_qz_x - log_pz)


def test_minibatch_weighted_sampling_is_the_papers_formula():
    """log q(z_i) ~= log sum_j q(z_i|x_j) - log(N B), and so for each dimension (Chen et al. 2018), by loops."""
    n_data, q = 500, gaussians(5, 3)
    z = q.rsample(seeded())
    log_pz = torch.zeros(5, dtype=torch.float64)
    parts = kl_decomposition(q, z, log_pz, n_data, "mws")
    for i in range(5):
        joint = sum(Independent(Normal(q.mu[j], q.std[j]), 1).log_prob(z[i]).exp() for j in range(5))
        dims = [sum(Normal(q.mu[j, d], q.std[j, d]).log_prob(z[i, d]).exp() for j in range(5)) for d in range(3)]
        log_qz = joint.log() - math.log(n_data * 5)
        log_qz_dims = sum(m.log() - math.log(n_data * 5) for m in dims)
        torch.testing.assert_close(parts.tc[i], log_qz - log_qz_dims)
        torch.testing.assert_close(parts.dwkl[i], log_qz_dims - log_pz[i])


def test_stratified_weights_sum_to_one_and_give_the_draws_own_image_1_over_n():
    log_w = log_batch_weights(8, 100, "mss")
    torch.testing.assert_close(log_w.exp().sum(1), torch.ones(8, dtype=log_w.dtype))
    torch.testing.assert_close(log_w.diagonal().exp(), torch.full((8,), 1 / 100, dtype=log_w.dtype))
    assert torch.allclose(log_batch_weights(8, 100, "mws").exp().sum(1), torch.tensor(1 / 100, dtype=log_w.dtype))


def aggregate(q: DiagonalGaussian) -> tuple[MixtureSameFamily, list[MixtureSameFamily]]:
    """q(z) = 1/N sum_n q(z|x_n) and each marginal q(z_d), by torch.distributions."""
    uniform = Categorical(logits=torch.zeros(len(q.mu), dtype=q.mu.dtype))
    joint = MixtureSameFamily(uniform, Independent(Normal(q.mu, q.std), 1))
    return joint, [MixtureSameFamily(uniform, Normal(q.mu[:, d], q.std[:, d])) for d in range(q.mu.shape[1])]


def test_stratified_sampling_is_exact_and_mws_low_by_log_n_when_the_batch_is_the_dataset():
    q = gaussians(40, 3)
    z = q.rsample(seeded())
    joint, marginals = aggregate(q)
    log_qz, log_qz_dims = joint.log_prob(z), sum(m.log_prob(z[:, d]) for d, m in enumerate(marginals))
    log_qz_x = Independent(Normal(q.mu, q.std), 1).log_prob(z)
    exact = kl_decomposition(q, z, torch.zeros(40, dtype=z.dtype), 40, "mss")
    torch.testing.assert_close(exact.mi, log_qz_x - log_qz)
    torch.testing.assert_close(exact.tc, log_qz - log_qz_dims)
    weighted = kl_decomposition(q, z, torch.zeros(40, dtype=z.dtype), 40, "mws")
    torch.testing.assert_close(weighted.mi, exact.mi + math.log(40))
    torch.testing.assert_close(weighted.tc, exact.tc + (3 - 1) * math.log(40))


def known_mixture(n=512):
    """Posteriors of n images whose means lie near a line in the first two dimensions: a correlated q(z)."""
    g = seeded(1)
    t = torch.randn(n, 1, generator=g, dtype=torch.float64)
    mu = torch.cat([t, t + 0.3 * torch.randn(n, 1, generator=g, dtype=torch.float64),
                    torch.randn(n, 1, generator=g, dtype=torch.float64)], dim=1)  # fmt: skip
    return DiagonalGaussian(mu, torch.full_like(mu, 2 * math.log(0.3)))


@pytest.mark.slow
def test_stratified_tc_approaches_the_true_tc_of_a_known_mixture_as_the_batch_grows():
    """The true TC = E_q(z)[log q(z) - sum_d log q(z_d)] by Monte Carlo with the exact mixture densities, against
    the estimator's mean over random batches of B of the N images, each image's z drawn from its posterior."""
    q, n = known_mixture(), 512
    joint, marginals = aggregate(q)
    z = joint.sample((40_000,))
    true_tc = (joint.log_prob(z) - sum(m.log_prob(z[:, d]) for d, m in enumerate(marginals))).mean().item()
    assert true_tc > 0.5  # the dimensions are far from independent
    g, errors = seeded(2), {}
    for size, repeats in ((16, 200), (64, 100), (512, 40)):
        estimates = []
        for _ in range(repeats):
            idx = torch.randperm(n, generator=g)[:size]
            part = DiagonalGaussian(q.mu[idx], q.logvar[idx])
            z = part.rsample(g)
            estimates.append(kl_decomposition(part, z, torch.zeros(size, dtype=z.dtype), n).tc.mean().item())
        errors[size] = abs(np.mean(estimates) - true_tc)
    assert errors[512] < 0.03
    assert errors[16] > errors[64] > errors[512]


def test_beta_tcvae_trains_on_the_elbo_plus_weighted_terms_that_sum_to_the_log_ratio():
    model = make("beta-tcvae", "model.alpha=2", "model.beta=6", "model.gamma=0.5")
    x = batch()
    loss = model.loss(x, generator=seeded())
    mi, tc, dwkl = (loss.extras[k] for k in ("mi", "tc", "dwkl"))
    torch.testing.assert_close(loss.total, loss.recon + loss.kl + 1 * mi + 5 * tc - 0.5 * dwkl)
    posterior = model.encode(x).continuous
    z = posterior.rsample(seeded())  # the draw the loss decoded
    log_ratio = Independent(Normal(posterior.mu, posterior.std), 1).log_prob(z) - Normal(0, 1).log_prob(z).sum(-1)
    torch.testing.assert_close(mi + tc + dwkl, log_ratio.mean())


def test_decomposed_beta_tcvae_trains_on_the_three_weighted_estimates_without_the_closed_form_kl():
    closed = make("beta-tcvae", "model.alpha=2", "model.beta=6", "model.gamma=0.5")
    model = make("beta-tcvae", "model.alpha=2", "model.beta=6", "model.gamma=0.5", "model.kl=decomposed")
    model.load_state_dict(closed.state_dict())
    x = batch()
    loss = model.loss(x, generator=seeded())
    mi, tc, dwkl = (loss.extras[k] for k in ("mi", "tc", "dwkl"))
    torch.testing.assert_close(loss.total, loss.recon + 2 * mi + 6 * tc + 0.5 * dwkl)
    reference = closed.loss(x, generator=seeded())  # the same draw: the same reported KL and estimates
    torch.testing.assert_close(loss.kl, reference.kl)
    torch.testing.assert_close(reference.total - loss.total, reference.kl - (mi + tc + dwkl))


def test_beta_tcvae_logs_its_terms_and_reads_the_training_set_size_from_the_loop():
    from sklearn.datasets import load_digits

    from vaelab.sklearn import estimator

    x = np.minimum(load_digits().data[:100] * 16, 255).astype(np.uint8)
    fitted = estimator("beta-tcvae")(3, hidden=(16,), epochs=1, batch_size=32, random_state=0).fit(x)
    assert fitted.model_.objective.dataset_size == 100
    assert {"train_mi", "train_tc", "train_dwkl"} <= set(fitted.history_[0])


# -- DIP-VAE: covariances ---------------------------------------------------------------------------------------
def test_dip_covariance_i_is_the_covariance_of_the_posterior_means():
    q = gaussians(50, 4)
    expected = np.cov(q.mu.numpy().T, bias=True)
    np.testing.assert_allclose(dip_covariance(q, "i").numpy(), expected, rtol=1e-10)
    torch.testing.assert_close(covariance(q.mu), torch.cov(q.mu.T, correction=0))


def test_dip_covariance_ii_is_the_covariance_of_the_batchs_aggregate_posterior():
    """Against numpy (E[diag sigma^2] + Cov[mu]) and against draws from the mixture 1/B sum_b N(mu_b, sigma_b^2)."""
    q = gaussians(20, 3)
    cov = dip_covariance(q, "ii").numpy()
    expected = np.cov(q.mu.numpy().T, bias=True) + np.diag(np.exp(q.logvar.numpy()).mean(0))
    np.testing.assert_allclose(cov, expected, rtol=1e-10)
    g = seeded(4)
    pick = torch.randint(0, 20, (400_000,), generator=g)
    draws = q.mu[pick] + q.std[pick] * torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(cov, np.cov(draws.numpy().T), atol=0.03)


def test_dip_penalties_are_the_squared_off_diagonal_and_the_squared_distance_of_the_diagonal_from_one():
    cov = torch.tensor([[2.0, 0.5, -1.0], [0.5, 1.0, 0.25], [-1.0, 0.25, 0.0]])
    assert off_diagonal_penalty(cov).item() == pytest.approx(2 * (0.25 + 1.0 + 0.0625))
    assert diagonal_penalty(cov).item() == pytest.approx(1.0 + 0.0 + 1.0)


def test_eval_measures_how_correlated_the_active_units_are():
    """eval.json's latent.active_correlation: the covariance against one summed image by image, the |correlation|
    of the active units against numpy's corrcoef, and the cases with a known answer."""
    rng = np.random.default_rng(0)
    means = np.hstack([rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)), np.full((500, 1), 3.0)])  # + a dead unit
    centred = means - means.mean(0)
    cov = means_covariance(means)
    np.testing.assert_allclose(cov, sum(np.outer(row, row) for row in centred) / len(means), atol=1e-12)
    expected = np.abs(np.corrcoef(means[:, :4], rowvar=False))[~np.eye(4, dtype=bool)]
    result = active_correlation(cov)
    assert result["active_units"] == 4
    assert result["mean_abs"] == pytest.approx(expected.mean()) and result["max_abs"] == pytest.approx(expected.max())
    independent = active_correlation(means_covariance(rng.normal(size=(200_000, 3)) * [0.2, 2.0, 3.0]))
    assert independent["max_abs"] < 0.01  # scale-free: the faint unit counts as much as the strong ones
    copied = rng.normal(size=(1000, 1))
    assert active_correlation(means_covariance(np.hstack([copied, -copied])))["max_abs"] == pytest.approx(1.0)
    assert active_correlation(means_covariance(np.zeros((5, 3))))["mean_abs"] is None  # no active pair


@pytest.mark.parametrize(("name", "kind"), [("dip-vae-i", "i"), ("dip-vae-ii", "ii")])
def test_dip_vae_adds_the_weighted_penalties_of_its_covariance_to_the_elbo(name, kind):
    model = make(name, "model.lambda_od=3", "model.lambda_d=7")
    x = batch()
    loss = model.loss(x, generator=seeded())
    cov = dip_covariance(model.encode(x).continuous, kind)
    torch.testing.assert_close(loss.extras["dip_od"], off_diagonal_penalty(cov))
    torch.testing.assert_close(loss.extras["dip_d"], diagonal_penalty(cov))
    torch.testing.assert_close(loss.total, loss.recon + loss.kl + 3 * loss.extras["dip_od"] + 7 * loss.extras["dip_d"])


# -- InfoVAE and WAE: the MMD -----------------------------------------------------------------------------------
def double_loop_mmd(a, b, k):
    """The unbiased MMD^2 by its definition, one pair at a time."""
    n, m = len(a), len(b)
    within_a = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    within_b = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return within_a + within_b - 2 * across


KERNELS = {
    "rbf": lambda c: lambda u, v: math.exp(-float(((u - v) ** 2).sum()) / c),
    "imq": lambda c: lambda u, v: c / (c + float(((u - v) ** 2).sum())),
}


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_mmd_matches_a_double_loop_over_pairs(kernel):
    g = seeded(5)
    a, b = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(9, 2, generator=g, dtype=torch.float64)
    scales = [0.5, 2.0]
    bandwidths = prior_bandwidths(2, scales)
    assert bandwidths == [2.0, 8.0]
    expected = sum(double_loop_mmd(a, b, KERNELS[kernel](c)) for c in bandwidths)
    assert mmd(a, b, kernel, bandwidths).item() == pytest.approx(expected, rel=1e-12)
    assert kernel_matrix(a, b, kernel, bandwidths).shape == (6, 9)


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_mmd_is_zero_in_expectation_for_one_distribution_and_clearly_positive_for_two(kernel):
    g, bandwidths = seeded(6), prior_bandwidths(4, [1.0])
    same, shifted = [], []
    for _ in range(300):
        a, b = torch.randn(32, 4, generator=g), torch.randn(32, 4, generator=g)
        same.append(mmd(a, b, kernel, bandwidths).item())
        shifted.append(mmd(a, 0.5 * b + 0.7, kernel, bandwidths).item())
    same_error = np.std(same) / math.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * same_error
    assert np.mean(shifted) > 20 * same_error and min(shifted) > max(0.0, np.mean(same))


def test_info_vae_weights_the_kl_by_one_minus_alpha_and_the_mmd_by_alpha_plus_lambda_minus_one():
    model = make("info-vae", "model.alpha=0.25", "model.lambda_mmd=3", "model.kernel=imq")
    x = batch()
    loss = model.loss(x, generator=seeded())
    torch.testing.assert_close(loss.total, loss.recon + 0.75 * loss.kl + 2.25 * loss.extras["mmd"])
    g = seeded()
    z = model.encode(x).rsample(g)  # the codes, then as many prior draws from the same generator
    expected = mmd(z, torch.randn(32, 3, generator=g), "imq", prior_bandwidths(3, model.config.kernel_scales))
    torch.testing.assert_close(loss.extras["mmd"], expected)


def test_wae_has_a_deterministic_encoder_and_trains_on_recon_plus_lambda_mmd():
    model = make("wae", "model.lambda_mmd=4", "model.kernel=rbf", "model.kernel_scales=[1.0]")
    x = batch()
    assert not model.has_density
    torch.testing.assert_close(model.encode(x).rsample(seeded(1)), model.encode(x).rsample(seeded(2)))
    loss = model.loss(x, generator=seeded())
    expected = mmd(model.encode(x).mean, torch.randn(32, 3, generator=seeded()), "rbf", [6.0])
    torch.testing.assert_close(loss.extras["mmd"], expected)
    torch.testing.assert_close(loss.total, loss.recon + 4 * expected)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["model.name=info-vae", "model.alpha=1.5"], "alpha must be <= 1"),
     (["model.name=info-vae", "model.alpha=0", "model.lambda_mmd=0.5"], "alpha \\+ model.lambda_mmd >= 1"),
     (["model.name=wae", "model.kernel_scales=[]"], "kernel_scales must list"),
     (["model.name=wae", "model.kernel=laplace"], "must be one of rbf, imq"),
     (["model.name=beta-tcvae", "model.estimator=exact"], "must be one of mss, mws")],
)  # fmt: skip
def test_representation_families_reject_bad_keys(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


# -- RAE-GP: the decoder's gradient penalty ---------------------------------------------------------------------
def jacobians(model, z):
    """d image / d z of each code, (B, pixels, D), by autograd one image at a time."""
    image = lambda code: model.decode_mean(code[None])[0].flatten()  # noqa: E731
    return torch.stack([torch.autograd.functional.jacobian(image, code) for code in z])


def test_gradient_penalty_is_the_squared_norm_of_the_decoders_vector_jacobian_product_at_the_codes():
    model = make("rae-gp", "model.gradient_penalty=0.5", "model.beta=0.1")
    x = batch(8)
    loss = model.loss(x, generator=seeded())
    z = model.encode(x).mean.detach()
    v = torch.randn(8, 64, generator=seeded())  # the draw the penalty made
    expected = torch.einsum("bpd,bp->bd", jacobians(model, z), v).pow(2).sum(-1).mean()
    torch.testing.assert_close(loss.extras["gradient_penalty"], expected)
    code_norm = 0.5 * z.pow(2).sum(-1).mean()
    torch.testing.assert_close(loss.total, loss.recon + 0.1 * code_norm + 0.5 * expected)


def test_gradient_penalty_estimates_the_jacobians_frobenius_norm_and_trains_the_decoder():
    model = make("rae-gp")
    x = batch(4).repeat(500, 1, 1, 1)  # 500 draws of v per image
    loss = model.loss(x, generator=seeded())
    frobenius = jacobians(model, model.encode(x[:4]).mean.detach()).pow(2).sum((1, 2)).mean()
    torch.testing.assert_close(loss.extras["gradient_penalty"], frobenius, rtol=0.1, atol=0)
    loss.extras["gradient_penalty"].backward()
    assert model.decoder[0].weight.grad.abs().sum() > 0


# -- FactorVAE: the density-ratio trick ---------------------------------------------------------------------------
def test_permute_dims_shuffles_each_dimension_across_the_batch_on_its_own():
    z = torch.arange(40.0).view(10, 4)
    shuffled = permute_dims(z, seeded())
    for d in range(4):
        assert sorted(shuffled[:, d].tolist()) == z[:, d].tolist()
    rows = [shuffled[:, d].div(4).floor() for d in range(4)]  # which image each dimension's value came from
    assert not all(torch.equal(rows[0], r) for r in rows[1:])
    assert torch.equal(shuffled, permute_dims(z, seeded()))


def test_a_trained_discriminators_tc_estimate_is_the_total_correlation_of_a_correlated_gaussian():
    """For N(0, [[1, r], [r, 1]]), TC = -log(1 - r^2) / 2; the optimal discriminator's logit is the log ratio."""
    torch.manual_seed(0)
    critic, g, r = TCDiscriminator(2, [64, 64], 3e-3, (0.9, 0.999)), seeded(7), 0.8
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 800)
    mix = torch.tensor([[1.0, 0.0], [r, math.sqrt(1 - r * r)]])
    for _ in range(800):
        z = torch.randn(256, 2, generator=g) @ mix.T
        both = critic(torch.cat([z, permute_dims(z, g)]))
        loss = torch.nn.functional.cross_entropy(both, torch.arange(2).repeat_interleave(256))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        annealing.step()
    with torch.no_grad():
        logits = critic(torch.randn(20_000, 2, generator=g) @ mix.T)
    assert (logits[:, 0] - logits[:, 1]).mean().item() == pytest.approx(-0.5 * math.log(1 - r * r), abs=0.03)


def test_factor_vae_adds_gamma_times_the_tc_estimate_and_the_discriminators_cross_entropy():
    model = make("factor-vae", "model.gamma=7", "model.discriminator_hidden=[16]")
    x = batch()
    loss = model.loss(x, generator=seeded())
    critic = model.auxiliaries["discriminator"]
    g = seeded()
    z = model.encode(x).rsample(g)  # the draw the loss decoded, then the permutation
    logits = critic(z)
    torch.testing.assert_close(loss.extras["tc"], (logits[:, 0] - logits[:, 1]).mean())
    log_real = torch.log_softmax(logits, -1)[:, 0]
    log_permuted = torch.log_softmax(critic(permute_dims(z, g)), -1)[:, 1]
    torch.testing.assert_close(loss.extras["discriminator"], -(log_real.mean() + log_permuted.mean()) / 2)
    expected = loss.recon + loss.kl + 7 * loss.extras["tc"] + loss.extras["discriminator"]
    torch.testing.assert_close(loss.total, expected)


def test_factor_vae_tc_trains_the_encoder_only_and_the_cross_entropy_the_discriminator_only():
    model = make("factor-vae", "model.discriminator_hidden=[16]")
    loss = model.loss(batch(), generator=seeded())
    critic, encoder = list(model.auxiliaries.parameters()), list(model.encoder.parameters())

    def grads(term, params):
        return [g for g in torch.autograd.grad(term, params, retain_graph=True, allow_unused=True) if g is not None]

    assert grads(loss.extras["tc"], critic) == [] and sum(g.abs().sum() for g in grads(loss.extras["tc"], encoder)) > 0
    assert grads(loss.extras["discriminator"], encoder) == []
    assert sum(g.abs().sum() for g in grads(loss.extras["discriminator"], critic)) > 0


@pytest.mark.slow
def test_factor_vae_gives_its_discriminator_its_own_adam_group_kept_when_train_lr_changes(tiny_overrides):
    from vaelab import train
    from vaelab.checkpoint import load_latest_checkpoint

    keys = ["model.name=factor-vae", "model.discriminator_lr=0.0002", "model.discriminator_betas=[0.4, 0.8]"]
    part = train(None, [*tiny_overrides, *keys, "train.epochs=1", "train.report=false"])
    resumed = train(None, ["train.epochs=2", "train.lr=0.0005"], resume=part.path)
    groups = load_latest_checkpoint(resumed.path)[2]["optimizer"]["param_groups"]
    assert [(g["lr"], tuple(g["betas"])) for g in groups] == [(0.0005, (0.9, 0.999)), (0.0002, (0.4, 0.8))]
    assert len(groups[1]["params"]) == len(list(resumed.model.auxiliaries.parameters()))


@pytest.mark.slow
def test_factor_vae_resumes_to_the_weights_and_discriminator_of_an_uninterrupted_run(tiny_overrides):
    from vaelab import train
    from vaelab.checkpoint import read_weights

    keys = [*tiny_overrides, "model.name=factor-vae", "train.report=false"]
    full = train(None, [*keys, "train.name=full"])
    part = train(None, [*keys, "train.name=part", "train.epochs=1"])
    resumed = train(None, ["train.epochs=3"], resume=part.path)
    a, b = (read_weights(run.path / "model.safetensors")[0] for run in (full, resumed))
    assert a.keys() == b.keys() and any(k.startswith("auxiliaries.discriminator.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["train_discriminator"] for r in resumed.metrics] == [r["train_discriminator"] for r in full.metrics]
    assert [r["train_loss"] for r in resumed.metrics] == [r["train_loss"] for r in full.metrics]
