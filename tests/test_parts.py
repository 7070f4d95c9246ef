"""Every part on its own against an independent computation: torch.distributions, Monte Carlo, autograd."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare
from torch.distributions import (
    Bernoulli,
    Categorical,
    Independent,
    MixtureSameFamily,
    Normal,
    OneHotCategorical,
    kl_divergence,  # fmt: skip
)

from vaelab.parts import (
    BatchShard,
    Capacity,
    Categoricals,
    DiagonalGaussian,
    GaussianPrior,
    KLWeight,
    LatentSpec,
    Point,
    Product,
    ProductPrior,
    UniformCategorical,
    kl_units,
)
from vaelab.parts.flows import Flowed, IAFStep, PlanarFlow, PlanarFlows
from vaelab.parts.kl import closed_form_kl
from vaelab.parts.likelihoods import BernoulliLikelihood, bernoulli_nll, gaussian_nll
from vaelab.parts.noise import randn_like_rows
from vaelab.parts.posteriors import LOGVAR_MAX, categorical_kl, categorical_kl_to_uniform, gumbel_softmax_sample
from vaelab.parts.priors import MixturePrior, mixture_log_prob

torch.manual_seed(0)


def random_gaussian(batch=5, dim=7):
    return DiagonalGaussian(torch.randn(batch, dim), torch.randn(batch, dim))


def fitted_prior(dim=7):
    prior = GaussianPrior(dim, fitted=True)
    prior.mean.copy_(torch.randn(dim))
    prior.var.copy_(torch.rand(dim) + 0.2)
    return prior


# -- posteriors --------------------------------------------------------------------------------------------
def test_gaussian_log_prob_matches_torch_distributions():
    q = random_gaussian()
    z = torch.randn(3, 5, 7)  # k draws of a batch
    reference = Normal(q.mu, q.std).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), reference)


def test_gaussian_rsample_has_the_posterior_moments():
    q = DiagonalGaussian(torch.tensor([[1.0, -2.0]]).expand(200_000, 2),
                         torch.tensor([[0.0, math.log(4.0)]]).expand(200_000, 2))  # fmt: skip
    z = q.rsample(torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0]), atol=0.02, rtol=0)


def test_reparameterised_gradient_is_the_pathwise_derivative():
    """dz/dmu = 1 and dz/dlogvar = 0.5 * exp(logvar / 2) * eps for the eps actually drawn."""
    mu = torch.randn(3, 4, requires_grad=True)
    logvar = torch.randn(3, 4, requires_grad=True)
    z = DiagonalGaussian(mu, logvar).rsample(torch.Generator().manual_seed(2))
    eps = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(3, 4))
    torch.testing.assert_close(logvar.grad, 0.5 * (0.5 * logvar.detach()).exp() * eps)


def test_reparameterised_gradient_estimates_the_analytic_gradient():
    """E[z^2] = mu^2 + exp(logvar): its gradient is (2 mu, exp(logvar)); the Monte Carlo mean of the
    pathwise gradient converges to it."""
    n = 400_000
    mu = torch.tensor([0.7, -1.2], requires_grad=True)
    logvar = torch.tensor([0.3, -0.5], requires_grad=True)
    z = DiagonalGaussian(mu.expand(n, 2), logvar.expand(n, 2)).rsample(torch.Generator().manual_seed(3))
    (z.pow(2).sum() / n).backward()
    torch.testing.assert_close(mu.grad, 2 * mu.detach(), atol=0.01, rtol=0)
    torch.testing.assert_close(logvar.grad, logvar.detach().exp(), atol=0.01, rtol=0)


def test_huge_encoder_logvar_is_bounded_so_the_kl_stays_finite():
    q = DiagonalGaussian.from_params(torch.tensor([[0.0, 1e4]]))  # logvar = 1e4 would overflow exp
    assert q.logvar.item() == LOGVAR_MAX
    assert torch.isfinite(kl_units(q, GaussianPrior(1), q.mu, q.log_prob(q.mu))).all()


def test_categoricals_log_prob_of_exact_draws_matches_torch_distributions():
    logits = [torch.randn(6, 4) * 2, torch.randn(6, 3)]
    q = Categoricals(logits)
    z = q.rsample(torch.Generator().manual_seed(0), k=5)  # (5, 6, 7) exact one-hots
    reference = sum(
        OneHotCategorical(logits=lg).log_prob(part) for lg, part in zip(logits, z.split([4, 3], -1), strict=True)
    )
    torch.testing.assert_close(q.log_prob(z), reference)
    assert set(z.unique().tolist()) == {0.0, 1.0} and (z.sum(-1) == 2).all()


def test_categoricals_are_relaxed_at_their_temperature_and_exact_without_one():
    logits = [torch.randn(100, 5)]
    relaxed = Categoricals(logits, tau=0.5).rsample(torch.Generator().manual_seed(4))
    reference = gumbel_softmax_sample(logits[0], 0.5, torch.Generator().manual_seed(4))
    torch.testing.assert_close(relaxed, reference)
    assert (relaxed > 0).all() and not (relaxed == 1).all(-1).any()
    exact = Categoricals(logits).rsample(torch.Generator().manual_seed(4))
    assert torch.equal(exact.argmax(-1), relaxed.argmax(-1))  # the same Gumbel noise picks the same category


def test_gumbel_softmax_samples_lie_on_the_simplex():
    samples = gumbel_softmax_sample(torch.randn(100, 7), tau=0.5, generator=torch.Generator().manual_seed(0))
    assert (samples >= 0).all()
    torch.testing.assert_close(samples.sum(-1), torch.ones(100))


@pytest.mark.parametrize("tau", [0.1, 0.67, 5.0, None])
def test_categorical_draw_frequencies_match_the_softmax(tau):
    probs = torch.tensor([0.05, 0.15, 0.3, 0.5])
    draws = Categoricals([probs.log().expand(20_000, 4)], tau).rsample(torch.Generator().manual_seed(1)).argmax(-1)
    observed = torch.bincount(draws, minlength=4).numpy()
    assert chisquare(observed, (probs * 20_000).numpy()).pvalue > 1e-3


def test_categorical_kls_match_torch_distributions():
    p, q = torch.randn(6, 5) * 2, torch.randn(6, 5)
    torch.testing.assert_close(categorical_kl(p, q), kl_divergence(Categorical(logits=p), Categorical(logits=q)))
    uniform = Categorical(probs=torch.full((6, 5), 0.2))
    torch.testing.assert_close(categorical_kl_to_uniform(p), kl_divergence(Categorical(logits=p), uniform))


def test_product_posterior_reads_its_factors_in_order():
    gaussian, codes = random_gaussian(4, 3), Categoricals([torch.randn(4, 5)])
    q = Product({"z": gaussian, "c": codes}, [3, 5])
    z = q.rsample(torch.Generator().manual_seed(0), k=2)  # (2, 4, 8)
    parts = q.split(z)
    torch.testing.assert_close(q.log_prob(z), gaussian.log_prob(parts["z"]) + codes.log_prob(parts["c"]))
    assert q.mean.shape == (4, 8) and q.continuous is gaussian and q.categorical is codes and q.has_density
    assert set(q.outputs()) == {"mean", "logvar", "logits"}
    assert not Product({"z": Point(torch.randn(4, 3))}, [3]).has_density


# -- priors ------------------------------------------------------------------------------------------------
def test_gaussian_priors_log_prob_matches_torch_distributions():
    z = torch.randn(3, 5, 7)
    torch.testing.assert_close(GaussianPrior(7).log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    prior = fitted_prior()
    mean, std = prior.moments()
    torch.testing.assert_close(prior.log_prob(z), Normal(mean, std).log_prob(z).sum(-1))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_gaussian_prior_samples_have_its_moments_times_the_temperature(temperature):
    prior = fitted_prior(3)
    z = prior.sample(200_000, torch.Generator().manual_seed(0), temperature)
    mean, std = prior.moments()
    torch.testing.assert_close(z.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), temperature * std, atol=0.02, rtol=0)


def test_a_fitted_prior_follows_the_moments_of_the_codes_it_observes():
    prior = GaussianPrior(2, fitted=True, momentum=0.5)
    codes = torch.tensor([[1.0, 4.0], [3.0, 4.0]])
    for _ in range(40):
        prior.observe(codes)
    torch.testing.assert_close(prior.mean, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(prior.var, torch.tensor([1.0, 0.0]))
    frozen = GaussianPrior(2, fitted=True)  # momentum 0: set once (PCA), never moved
    frozen.observe(codes)
    assert torch.equal(frozen.mean, torch.zeros(2))


def test_uniform_categorical_prior_samples_and_log_prob():
    prior = UniformCategorical([4, 3])
    z = prior.sample(12_000, torch.Generator().manual_seed(0))  # (n, 7)
    assert z.shape == (12_000, 7) and (z.sum(-1) == 2).all()
    assert chisquare(z[:, :4].sum(0).numpy()).pvalue > 1e-3
    reference = OneHotCategorical(probs=torch.full((4,), 0.25)).log_prob(z[:, :4]) + math.log(1 / 3)
    torch.testing.assert_close(prior.log_prob(z), reference)


def test_product_prior_is_the_sum_of_its_factors():
    prior = ProductPrior({"z": fitted_prior(3), "c": UniformCategorical([5])})
    z = prior.sample(6, torch.Generator().manual_seed(0))
    assert prior.spec == LatentSpec(3, (5,)) and z.shape == (6, 8)
    torch.testing.assert_close(prior.log_prob(z), prior["z"].log_prob(z[:, :3]) - math.log(5))


# -- KLs ---------------------------------------------------------------------------------------------------
def test_gaussian_kls_match_torch_distributions():
    q = random_gaussian()
    to_standard = kl_divergence(Normal(q.mu, q.std), Normal(0.0, 1.0))
    torch.testing.assert_close(closed_form_kl(q, GaussianPrior(7)), to_standard)
    prior = fitted_prior()
    mean, std = prior.moments()
    torch.testing.assert_close(closed_form_kl(q, prior), kl_divergence(Normal(q.mu, q.std), Normal(mean, std)))


def test_categorical_kl_to_a_uniform_prior_matches_torch_distributions():
    logits = [torch.randn(6, 4) * 2, torch.randn(6, 3)]
    units = closed_form_kl(Categoricals(logits), UniformCategorical([4, 3]))  # (6, 2): one unit per categorical
    reference = [kl_divergence(Categorical(logits=lg), Categorical(probs=torch.full_like(lg, 1 / lg.shape[-1])))
                 for lg in logits]  # fmt: skip
    torch.testing.assert_close(units, torch.stack(reference, -1))


def test_without_a_closed_form_the_kl_is_the_monte_carlo_log_ratio():
    """A pair with no registered closed form: log q(z) - log p(z) at the posterior's draw, which averages to
    the KL (here checked against the closed form of a Gaussian to a Gaussian computed by torch)."""

    class Unregistered(GaussianPrior):
        pass

    q, prior = (
        DiagonalGaussian(torch.randn(1, 3).expand(100_000, 3), torch.randn(1, 3).expand(100_000, 3)),
        Unregistered(3),
    )
    assert closed_form_kl(q, prior) is None
    z = q.rsample(torch.Generator().manual_seed(0))
    estimate = kl_units(q, prior, z, q.log_prob(z))  # (B, 1)
    assert estimate.shape == (100_000, 1)
    exact = kl_divergence(Normal(q.mu[0], q.std[0]), Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(estimate.mean(), exact, atol=0.03, rtol=0)


# -- likelihoods -------------------------------------------------------------------------------------------
def test_bernoulli_nll_matches_torch_distributions():
    logits = torch.randn(6, 1, 4, 4) * 3
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.4))
    torch.testing.assert_close(bernoulli_nll(logits, x), -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1))


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_bernoulli_nll_of_several_draws_matches_torch_distributions_for_binary_and_grey_pixels(scale):
    """nll_draws' identity softplus(l) - x . l against float64 log-densities, also where large logits cancel their
    softplus: torch.distributions' Bernoulli for the binary image, the cross-entropy for grey ones."""
    k, logits = 5, torch.randn(5 * 3, 2, 4, 4, dtype=torch.float64) * scale
    x = torch.rand(3, 2, 4, 4, dtype=torch.float64)
    x[0] = x[0].round()
    got = BernoulliLikelihood().nll_draws(logits.float(), x.float(), k).double()
    repeated = x.repeat(k, 1, 1, 1)
    cross_entropy = -(repeated * F.logsigmoid(logits) + (1 - repeated) * F.logsigmoid(-logits)).flatten(1).sum(1)
    binary = slice(0, None, 3)  # image 0 of each draw
    bernoulli = -Bernoulli(logits=logits[binary]).log_prob(repeated[binary]).flatten(1).sum(1)
    torch.testing.assert_close(got[binary], bernoulli, rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(got, cross_entropy, rtol=1e-6, atol=1e-3)


def test_bernoulli_nll_of_several_draws_keeps_float32_under_bf16_autocast():
    """Under autocast its dot product stays in float32: in bf16 it would round sums of hundreds of nats to 1."""
    logits, x = (torch.randn(8 * 2, 1, 28, 28) * 4).bfloat16(), torch.rand(2, 1, 28, 28).round()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = BernoulliLikelihood().nll_draws(logits, x, 8)
    torch.testing.assert_close(got, BernoulliLikelihood().nll_draws(logits.float(), x, 8), rtol=0, atol=1e-3)


def test_gaussian_nll_matches_torch_distributions():
    mean, x = torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4)
    torch.testing.assert_close(gaussian_nll(mean, x, 0.1), -Normal(mean, 0.1).log_prob(x).flatten(1).sum(1))


# -- KL weights --------------------------------------------------------------------------------------------
def test_kl_weight_is_beta_times_warm_up_times_the_floored_kl():
    units = torch.tensor([0.5, 3.0, 0.1])
    assert KLWeight()(units, 7).item() == pytest.approx(3.6)
    assert KLWeight(beta=4.0)(units, 7).item() == pytest.approx(14.4)
    assert KLWeight(warmup_steps=100)(units, 25).item() == pytest.approx(0.9)
    assert KLWeight(free_bits=1.0)(units, 7).item() == pytest.approx(1.0 + 3.0 + 1.0)


def test_capacity_weight_is_gamma_times_the_distance_to_the_ramp_capped_at_its_limit():
    units = torch.tensor([2.0, 1.0])
    capacity = Capacity(gamma=10.0, c_max=8.0, steps=100)
    assert KLWeight(capacity=capacity)(units, 50).item() == pytest.approx(10 * abs(3.0 - 4.0))
    capped = Capacity(gamma=1.0, c_max=50.0, steps=10, limit=math.log(2))
    assert capped.target(10) == pytest.approx(math.log(2)) and capped.target(0) == 0.0


# -- latent spec and noise ---------------------------------------------------------------------------------
def test_latent_spec_joins_and_splits_codes():
    spec = LatentSpec(3, (4, 2))
    z = spec.join(torch.randn(5, 3), torch.tensor([[0, 1], [3, 0], [1, 1], [2, 0], [0, 0]]))
    assert z.shape == (5, spec.code_size) == (5, 9)
    continuous, blocks = spec.split(z)
    assert continuous.shape == (5, 3) and [b.shape[-1] for b in blocks] == [4, 2]
    assert spec.codes(z).tolist() == [[0, 1], [3, 0], [1, 1], [2, 0], [0, 0]]
    assert spec.describe() == "3 continuous + categorical 4 x 2"


def test_shards_draw_the_rows_of_the_global_batch():
    like = torch.zeros(())
    whole = randn_like_rows((10, 3), like, torch.Generator().manual_seed(0))
    parts = [randn_like_rows((stop - start, 3), like, BatchShard(torch.Generator().manual_seed(0), 10, start, stop))
             for start, stop in [(0, 4), (4, 10)]]  # fmt: skip
    assert torch.equal(torch.cat(parts), whole)


# -- flows -------------------------------------------------------------------------------------------------
def flow_log_det_by_autograd(flow, z, context=None):
    """log |det J| of z -> flow(z) for one point z (D,), from autograd's Jacobian."""
    jacobian = torch.autograd.functional.jacobian(lambda v: flow(v, context)[0], z)
    return torch.linalg.slogdet(jacobian)[1]


def planar(size=4, seeds=(0,)):
    """PlanarFlows of one layer per seed, its parameters away from the near-identity start (a determinant not ~1)."""
    layers = []
    for seed in seeds:
        torch.manual_seed(seed)
        layer = PlanarFlow(size)
        with torch.no_grad():
            layer.u.normal_(), layer.w.normal_(), layer.b.normal_()
        layers.append(layer)
    return PlanarFlows(layers)


def planar_by_hand(flows, z):
    """Rezende & Mohamed's eqs. 10-12 one layer at a time, for one point z (D,)."""
    with torch.no_grad():
        for layer in flows:
            wu = (layer.w @ layer.u).item()
            u = layer.u + (math.log1p(math.exp(wu)) - 1 - wu) * layer.w / (layer.w @ layer.w)
            z = z + u * torch.tanh(layer.w @ z + layer.b)
    return z


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)], ids=["one layer", "three layers"])
def test_planar_flows_follow_the_formulas_and_their_log_determinant_matches_autograds_jacobian(seeds):
    flows = planar(seeds=seeds).double()
    points = torch.randn(5, 4, dtype=torch.float64)
    z, log_det = flows(points)  # a batch at once
    for i, point in enumerate(points):
        torch.testing.assert_close(z[i], planar_by_hand(flows, point))
        torch.testing.assert_close(log_det[i], flow_log_det_by_autograd(flows, point))


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "affine"])
@pytest.mark.parametrize("reverse", [False, True])
def test_iaf_step_is_autoregressive_and_its_log_determinant_matches_autograds_jacobian(reverse, gated):
    torch.manual_seed(1)
    step = IAFStep(5, hidden=16, context=3, reverse=reverse, gated=gated).double()
    with torch.no_grad():
        for p in step.parameters():
            p.normal_(0, 0.5)
    z, h = torch.randn(5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: step(v, h)[0], z)
    order = torch.arange(5).flip(0) if reverse else torch.arange(5)
    permuted = jacobian[order][:, order]  # in the step's order: lower triangular
    assert torch.equal(permuted.triu(1), torch.zeros(5, 5, dtype=torch.float64))
    assert (permuted.diagonal() != 1).all()  # each output does move with its own input
    torch.testing.assert_close(step(z, h)[1], torch.linalg.slogdet(jacobian)[1])


def test_a_flows_density_integrates_to_one():
    """E_{z ~ q}[N(z; 0, I) / q(z)] = 1 when q is normalised: the Monte Carlo mean over 200,000 draws."""
    torch.manual_seed(2)
    base = DiagonalGaussian(torch.zeros(1, 2), torch.zeros(1, 2))
    q = Flowed(base, planar(2, seeds=(3, 4)))
    with torch.no_grad():
        z, log_q = q.rsample_log_prob(torch.Generator().manual_seed(5), k=200_000)  # (k, 1, 2), (k, 1)
        ratio = (GaussianPrior(2).log_prob(z) - log_q).exp()
    torch.testing.assert_close(ratio.mean(), torch.tensor(1.0), atol=0.02, rtol=0)


# -- mixture priors ----------------------------------------------------------------------------------------
def test_mixture_prior_log_prob_and_moments_match_torch_distributions():
    prior = MixturePrior(3, components=4)
    with torch.no_grad():
        prior.logits.normal_(), prior.logvar.normal_(0, 0.5)
    mu, logvar, log_w = prior.components()
    reference = MixtureSameFamily(Categorical(logits=log_w), Independent(Normal(mu, (0.5 * logvar).exp()), 1))
    z = torch.randn(6, 3)
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    mean, std = prior.moments()
    torch.testing.assert_close(mean, reference.mean)
    torch.testing.assert_close(std, reference.variance.sqrt())
    draws = prior.sample(200_000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(draws.std(0), std, atol=0.03, rtol=0)


def test_a_mixture_of_many_components_keeps_its_log_prob_far_from_and_near_its_means_and_under_bf16_autocast():
    torch.manual_seed(0)
    mu, logvar, log_w = torch.randn(500, 32), torch.rand(500, 32) * 4 - 4, torch.log_softmax(torch.randn(500), 0)
    reference = MixtureSameFamily(Categorical(logits=log_w), Independent(Normal(mu, (0.5 * logvar).exp()), 1))
    z = torch.cat([torch.randn(64, 32) * 3, mu[:64] + 1e-3 * torch.randn(64, 32)])  # far and at the means
    torch.testing.assert_close(mixture_log_prob(z, mu, logvar, log_w), reference.log_prob(z), rtol=1e-5, atol=2e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        in_bf16 = mixture_log_prob(z, mu, logvar, log_w)
    assert in_bf16.dtype == torch.float32
    torch.testing.assert_close(in_bf16, reference.log_prob(z), rtol=1e-5, atol=2e-3)


def test_vamp_prior_is_the_mixture_of_the_posteriors_of_its_pseudo_inputs():
    from vaelab.config import load_config
    from vaelab.models import build_model

    config = load_config(None, ["model.name=vamp-vae", "model.latent_dim=3", "model.hidden=[16]", "model.components=7"])
    model = build_model(config.model, (1, 5, 5))
    pseudo = model.prior["z"].pseudo_inputs.clamp(0, 1)
    mu, logvar = model.encoder_head(model.encoder(pseudo)).chunk(2, -1)  # (7, 3) each
    reference = MixtureSameFamily(Categorical(logits=torch.zeros(7)), Independent(Normal(mu, (0.5 * logvar).exp()), 1))
    z = torch.randn(4, 3)
    torch.testing.assert_close(model.prior.log_prob(z), reference.log_prob(z))


# -- the ladder ------------------------------------------------------------------------------------------
def ladder(sizes=(3, 2, 2), batch=4, seed=0):
    """A ladder posterior with random bottom-up estimates and a random prior, in float64."""
    from vaelab.parts.ladder import LadderHead, LadderPrior

    torch.manual_seed(seed)
    prior = LadderPrior(list(sizes), hidden=8).double()
    head = LadderHead(prior, hidden=8).double()
    with torch.no_grad():
        for p in [*prior.parameters(), *head.parameters()]:
            p.normal_(0, 0.5)
    return head(torch.randn(batch, head.n_params, dtype=torch.float64)), prior


def reference_ladder_layers(q, z):
    """Each layer's posterior and prior given z's layers above, by the residual formula (Vahdat & Kautz 2020,
    eq. 2) with torch.distributions: [(q_l, p_l, z_l)], bottom first."""
    layers = q.prior.layers(z)
    top = q.estimates[-1]
    steps = [(Normal(top.mu, top.std), Normal(torch.zeros_like(layers[-1]), 1.0), layers[-1])]
    for i in reversed(range(len(layers) - 1)):
        delta, p = q.estimates[i], q.prior.top_down[i](layers[i + 1])
        steps.insert(0, (Normal(p.mu + delta.mu, p.std * delta.std), Normal(p.mu, p.std), layers[i]))
    return steps


def test_ladder_log_densities_match_the_residual_formulas_with_torch_distributions():
    q, prior = ladder()
    z, log_q = q.rsample_log_prob(torch.Generator().manual_seed(1), k=3)  # (3, 4, 7), (3, 4)
    steps = reference_ladder_layers(q, z)
    torch.testing.assert_close(log_q, sum(ql.log_prob(zl).sum(-1) for ql, _, zl in steps))
    torch.testing.assert_close(q.log_prob(z), log_q)
    torch.testing.assert_close(prior.log_prob(z), sum(pl.log_prob(zl).sum(-1) for _, pl, zl in steps))


def test_ladder_kl_is_per_layer_closed_form_given_the_draw_and_estimates_the_kl_without_bias():
    q, prior = ladder(batch=2)
    z, log_q = q.rsample_log_prob(torch.Generator().manual_seed(2), k=1)
    units = kl_units(q, prior, z, log_q)  # (1, 2, 7): one unit per dimension
    reference = torch.cat([kl_divergence(ql, pl) for ql, pl, _ in reference_ladder_layers(q, z)], -1)
    torch.testing.assert_close(units, reference)
    with torch.no_grad():  # E_q[sum_l KL_l] = E_q[log q - log p]: Monte Carlo over 100,000 draws
        z, log_q = q.rsample_log_prob(torch.Generator().manual_seed(3), k=100_000)
        closed, ratio = kl_units(q, prior, z, log_q).sum(-1), log_q - prior.log_prob(z)
    stderr = (ratio.std(0) / math.sqrt(len(ratio))).max().item()
    torch.testing.assert_close(closed.mean(0), ratio.mean(0), atol=4 * stderr, rtol=0)
    assert (closed.std(0) < ratio.std(0)).all()  # and with less variance


def test_ladder_prior_and_posterior_are_normalised_densities():
    """E_{z ~ q}[p(z) / q(z)] = 1 and E_{z ~ p}[q(z) / p(z)] = 1 when both are normalised, and each draws from
    its own density (the other one's ratio would not average to one otherwise)."""
    q, prior = ladder(sizes=(1, 1), batch=1)
    one = torch.tensor(1.0, dtype=torch.float64)
    with torch.no_grad():
        z, log_q = q.rsample_log_prob(torch.Generator().manual_seed(4), k=200_000)
        torch.testing.assert_close((prior.log_prob(z) - log_q).exp().mean(), one, atol=0.03, rtol=0)
        z = prior.sample(200_000, torch.Generator().manual_seed(5))
        torch.testing.assert_close((q.log_prob(z) - prior.log_prob(z)).exp().mean(), one, atol=0.03, rtol=0)


def test_ladder_mean_path_and_moments():
    q, prior = ladder()
    steps = reference_ladder_layers(q, q.mean)
    torch.testing.assert_close(q.mean, torch.cat([ql.mean for ql, _, _ in steps], -1))  # each layer at its mean
    torch.testing.assert_close(q.std, torch.cat([ql.stddev for ql, _, _ in steps], -1))
    mean, std = prior.moments()
    draws = prior.sample(200_000, torch.Generator().manual_seed(6))
    torch.testing.assert_close(mean, draws.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(std, draws.std(0), atol=0.05, rtol=0.05)
    torch.testing.assert_close(std[-2:], torch.ones(2).double(), atol=0.05, rtol=0)  # the top layer is N(0, I)
