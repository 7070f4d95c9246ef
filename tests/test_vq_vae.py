"""VQ-VAE's parts against independent computations: the nearest codebook vector (brute force), the
straight-through gradient (autograd at z_q), the codebook and commitment losses (direct formulas and where their
gradients go), the EMA codebook (a hand computation), the perplexity (counting), the code prior's autoregressive
masks and NLL; and the model's objective and samples."""

import math
import pickle
from collections import Counter

import pytest
import torch

from vaelab.config import load_config
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.parts.quantiser import (
    CodePrior,
    VectorQuantiser,
    codebook_loss,
    commitment_loss,
    nearest_codes,
    perplexity,
)

SHAPE = (1, 8, 8)


def quantiser(positions=3, dim=2, size=5, ema_decay=0.0):
    torch.manual_seed(0)
    q = VectorQuantiser(positions, dim, size, ema_decay)
    with torch.no_grad():
        q.codebook.copy_(torch.randn(size, dim))
        if ema_decay:
            q.ema_sum.copy_(q.codebook)  # m_j = N_j e_j with N_j = 1
    return q


def test_the_quantiser_picks_the_nearest_codebook_vector():
    q = quantiser()
    z_e = torch.randn(7, 3 * 2, generator=torch.Generator().manual_seed(1))
    out = q(z_e)
    for b in range(7):
        for m in range(3):
            vector = z_e[b, 2 * m : 2 * m + 2].tolist()
            distances = [sum((a - e) ** 2 for a, e in zip(vector, code, strict=True)) for code in q.codebook.tolist()]
            assert out.indices[b, m] == min(range(5), key=distances.__getitem__)
    assert torch.equal(out.z_q.view(7, 3, 2), q.codebook[out.indices])
    assert torch.equal(out.mean, out.z_q)


def test_nearest_codes_of_the_codebook_vectors_are_themselves():
    codebook = torch.randn(6, 4)
    assert torch.equal(nearest_codes(codebook, codebook), torch.arange(6))


def test_the_straight_through_gradient_is_the_gradient_at_z_q_passed_to_z_e():
    q = quantiser()
    weights = torch.randn(6)

    def f(z):
        return (torch.sin(z) * weights).sum() + z.pow(3).sum()

    z_e = torch.randn(4, 6, requires_grad=True)
    out = q(z_e)
    z = out.rsample()
    assert torch.equal(z, out.z_q)  # the decoder sees z_q
    f(z).backward()
    at_z_q = out.z_q.detach().requires_grad_()
    (expected,) = torch.autograd.grad(f(at_z_q), at_z_q)
    assert torch.allclose(z_e.grad, expected)
    assert q.codebook.grad is None  # the reconstruction does not move the codebook: its loss does


def test_codebook_and_commitment_losses_against_direct_formulas_and_where_their_gradients_go():
    q = quantiser()
    z_e = torch.randn(4, 6, requires_grad=True)
    out = q(z_e)
    direct = sum(sum((a - e) ** 2 for a, e in zip(row_e, row_q, strict=True))
                 for row_e, row_q in zip(z_e.tolist(), out.z_q.tolist(), strict=True)) / 4  # fmt: skip
    assert codebook_loss(out).item() == pytest.approx(direct, rel=1e-5)
    assert commitment_loss(out).item() == pytest.approx(direct, rel=1e-5)
    (gz,) = torch.autograd.grad(codebook_loss(out), z_e, allow_unused=True)
    assert gz is None  # ||sg[z_e] - e||^2 moves the codebook only
    (ge,) = torch.autograd.grad(commitment_loss(out), q.codebook, allow_unused=True)
    assert ge is None  # ||z_e - sg[e]||^2 moves the encoder only
    (gz,) = torch.autograd.grad(commitment_loss(out), z_e)
    assert torch.allclose(gz, 2 * (z_e - out.z_q).detach() / 4)


def test_ema_updates_the_codebook_as_computed_by_hand():
    q = VectorQuantiser(positions=1, dim=1, size=2, ema_decay=0.5)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0], [10.0]]))
        q.ema_sum.copy_(q.codebook)
    q.train()
    out = q(torch.tensor([[1.0], [2.0], [9.0]]))  # codes 0, 0, 1
    assert out.indices.flatten().tolist() == [0, 0, 1]
    # N = 0.5 * [1, 1] + 0.5 * [2, 1] = [1.5, 1]; m = 0.5 * [0, 10] + 0.5 * [1 + 2, 9] = [1.5, 9.5]
    assert q.ema_count.tolist() == [1.5, 1.0]
    assert q.codebook.flatten().tolist() == pytest.approx([1.5 / 1.5, 9.5 / 1.0])
    q.eval()
    q(torch.tensor([[100.0]]))
    assert q.codebook.flatten().tolist() == pytest.approx([1.0, 9.5])  # evaluation leaves the codebook alone


def test_an_unused_code_keeps_its_vector_under_ema():
    q = quantiser(positions=1, dim=2, size=5, ema_decay=0.9).train()
    unused = q.codebook[4].clone()
    z_e = q.codebook[:1].repeat(8, 1) + 0.01  # every vector nearest to code 0
    for _ in range(3):
        q(z_e)
    assert torch.allclose(q.codebook[4], unused)
    assert "codebook" not in dict(q.named_parameters())  # EMA: a buffer, not a parameter


def test_perplexity_against_counting():
    indices = torch.tensor([[0, 1, 1], [3, 1, 0]])
    counts = Counter(indices.flatten().tolist())
    entropy = -sum(c / 6 * math.log(c / 6) for c in counts.values())
    assert perplexity(indices, 8).item() == pytest.approx(math.exp(entropy), rel=1e-6)
    assert perplexity(torch.arange(8), 8).item() == pytest.approx(8)
    assert perplexity(torch.zeros(5, dtype=torch.long), 8).item() == pytest.approx(1)


def test_the_code_prior_is_autoregressive():
    """The logits of position m change with the indices before m and never with those at or after m."""
    torch.manual_seed(0)
    prior = CodePrior(positions=4, dim=2, size=3, hidden=16)
    base = torch.tensor([[0, 1, 2, 0]])
    logits = prior.logits(base)
    for j in range(4):
        changed = base.clone()
        changed[0, j] = (changed[0, j] + 1) % 3
        moved = (prior.logits(changed) - logits).abs().sum(-1)[0]  # (M,)
        assert moved[: j + 1].max() == 0 and (j == 3 or moved[j + 1 :].min() > 0)


def test_the_code_prior_nll_is_the_sum_of_the_conditionals():
    torch.manual_seed(0)
    prior = CodePrior(positions=3, dim=2, size=4, hidden=8)
    indices = torch.tensor([[0, 3, 1], [2, 2, 0]])
    log_p = torch.log_softmax(prior.logits(indices), -1)
    direct = [-sum(log_p[b, m, indices[b, m]].item() for m in range(3)) for b in range(2)]
    assert prior.nll(indices).tolist() == pytest.approx(direct, rel=1e-6)


def make_model(**overrides):
    extra = [f"model.{k}={v}" for k, v in overrides.items()]
    config = load_config(None, ["model.name=vq-vae", "model.latent_dim=2", "model.positions=3",
                                "model.codebook_size=6", "model.hidden=[16]", *extra])  # fmt: skip
    torch.manual_seed(0)
    return build_model(config.model, SHAPE)


def images(n=8):
    return torch.bernoulli(torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(0)))


def test_the_objective_is_recon_plus_codebook_plus_beta_commitment_plus_the_prior_nll():
    model = make_model(beta=0.25).train()
    x = images()
    terms = model.loss(x)
    extras = terms.extras
    expected = terms.recon + extras["codebook"] + 0.25 * extras["commitment"] + extras["prior_nll"]
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms.kl.item() == 0 and 1 <= extras["code_perplexity"].item() <= 6
    posterior = model.encode(x)
    assert extras["codes_used"].item() == pytest.approx(len(torch.unique(posterior.code_indices()[0])) / 6)


def test_with_an_ema_codebook_there_is_no_codebook_loss():
    terms = make_model(ema_decay=0.99).train().loss(images())
    assert "codebook" not in terms.extras and "commitment" in terms.extras


def test_prior_samples_are_codebook_vectors():
    model = make_model().eval()
    z = model.prior.sample(5, torch.Generator().manual_seed(0))  # (5, M * d)
    codebook = model.posterior["z"].codebook
    assert z.shape == (5, 6)
    for vector in z.view(-1, 2):
        assert (codebook == vector).all(-1).any()


def test_a_bad_ema_decay_is_a_config_error():
    with pytest.raises(ConfigError, match="ema_decay"):
        make_model(ema_decay=1.0)


@pytest.mark.slow
def test_eval_reports_the_codebook_usage_and_perplexity_of_the_split(tiny_overrides):
    from vaelab import train
    from vaelab.evaluate import run_evaluation
    from vaelab.evaluate.likelihood import split_images
    from vaelab.evaluate.suite import report_lines

    overrides = [
        "model.name=vq-vae",
        "model.codebook_size=16",
        "data.binarize=none",
        "train.epochs=1",
        "train.report=false",
    ]  # fmt: skip (binarize none: eval encodes the images as stored, x / 255)
    run = train(None, tiny_overrides + overrides)
    results = run_evaluation(run, "test", iw_samples=0, probes=False, fid=False)
    x, _ = split_images(run, "test")
    with torch.no_grad():
        run.model.eval()
        indices = run.model.encode(x.float() / 255).code_indices()[0].flatten().tolist()
    counts = Counter(indices)
    entropy = -sum(c / len(indices) * math.log(c / len(indices)) for c in counts.values())
    assert results["codebook"]["size"] == 16 and results["codebook"]["used"] == len(counts)
    assert results["codebook"]["perplexity"] == pytest.approx(math.exp(entropy), rel=1e-9)
    assert any(line.startswith(f"codebook: {len(counts)} of 16 codes used") for line in report_lines(results))
    assert "train_code_perplexity" in run.metrics[0] and "train_codes_used" in run.metrics[0]


def test_the_prior_log_prob_of_codebook_vectors_is_that_of_their_indices():
    model = make_model().eval()
    prior, quantiser = model.prior["z"], model.posterior["z"]
    indices = torch.tensor([[0, 5, 2], [3, 3, 1]])
    assert torch.allclose(prior.log_prob(quantiser.lookup(indices)), -prior.nll(indices))


def test_the_prior_nll_trains_the_prior_alone():
    model = make_model().train()
    model.loss(images()).extras["prior_nll"].backward()
    assert all(w.grad is None for w in [*model.encoder.parameters(), *model.decoder.parameters()])
    assert model.posterior["z"].codebook.grad is None
    assert all(w.grad is not None for w in model.prior.parameters())


def test_the_model_pickles_and_its_copy_gives_the_same_loss():
    model = make_model().eval()
    copy, x = pickle.loads(pickle.dumps(model)), images()
    assert torch.equal(copy.loss(x).total, model.loss(x).total)
