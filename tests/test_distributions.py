"""Every formula in distributions.py against torch.distributions or a Monte Carlo estimate."""

import math

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaelab.distributions import (
    LOGVAR_MAX,
    DiagonalGaussian,
    bernoulli_nll,
    gaussian_nll,
    standard_normal_log_prob,
)

torch.manual_seed(0)


def random_gaussian(batch=5, dim=7):
    return DiagonalGaussian(torch.randn(batch, dim), torch.randn(batch, dim))


def test_kl_to_standard_normal_matches_torch_distributions():
    q = random_gaussian()
    reference = kl_divergence(Normal(q.mu, (0.5 * q.logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(q.kl_to_standard_normal(), reference)


def test_kl_per_dim_sums_to_the_kl():
    q = random_gaussian()
    torch.testing.assert_close(q.kl_per_dim().sum(-1), q.kl_to_standard_normal())


def test_log_prob_matches_torch_distributions():
    q = random_gaussian()
    z = torch.randn(5, 7)
    reference = Normal(q.mu, (0.5 * q.logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), reference)


def test_standard_normal_log_prob_matches_torch_distributions():
    z = torch.randn(4, 3)
    torch.testing.assert_close(standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_bernoulli_nll_matches_torch_distributions():
    logits = torch.randn(6, 1, 4, 4) * 3
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.4))
    reference = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x), reference)


def test_gaussian_nll_matches_torch_distributions():
    mean, x = torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4)
    reference = -Normal(mean, 0.1).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(mean, x, 0.1), reference)


def test_rsample_has_the_posterior_moments():
    q = DiagonalGaussian(
        torch.tensor([[1.0, -2.0]]).expand(200_000, 2),
        torch.tensor([[0.0, math.log(4.0)]]).expand(200_000, 2),
    )
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
    q = DiagonalGaussian(mu.expand(n, 2), logvar.expand(n, 2))
    z = q.rsample(torch.Generator().manual_seed(3))
    (z.pow(2).sum() / n).backward()
    torch.testing.assert_close(mu.grad, 2 * mu.detach(), atol=0.01, rtol=0)
    torch.testing.assert_close(logvar.grad, logvar.detach().exp(), atol=0.01, rtol=0)


def test_huge_encoder_logvar_is_bounded_so_the_kl_stays_finite():
    params = torch.tensor([[0.0, 1e4]])  # mu = 0, logvar = 1e4 would overflow exp
    q = DiagonalGaussian.from_params(params)
    assert q.logvar.item() == LOGVAR_MAX
    assert torch.isfinite(q.kl_to_standard_normal()).all()
