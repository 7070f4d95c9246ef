"""The registered models' objectives against independent computations: schedules, beta / capacity / free-bits
objectives, the IWAE bound and JointVAE's parts (tests/test_parts.py checks each part alone)."""

import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from vaelab import train
from vaelab.augment import random_affine
from vaelab.config import load_config
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.schedules import capacity, kl_warmup, linear_ramp

SHAPE = (1, 8, 8)


def make(name, *overrides):
    config = load_config(None, [f"model.name={name}", "model.hidden=[32]", "model.latent_dim=3", *overrides])
    torch.manual_seed(0)
    return build_model(config.model, SHAPE, num_classes=3)


def batch(n=32):
    return torch.bernoulli(torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(0)))


def test_schedules_values():
    assert [linear_ramp(s, 2.0, 6.0, 4) for s in (0, 1, 2, 4, 100)] == [2.0, 3.0, 4.0, 6.0, 6.0]
    assert [capacity(s, 0.0, 5.0, 25_000) for s in (0, 12_500, 25_000, 50_000)] == [0.0, 2.5, 5.0, 5.0]
    assert [kl_warmup(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    assert kl_warmup(0, 0) == 1.0


def loss_with_fixed_noise(model, x, step=0):
    torch.manual_seed(3)
    return model.loss(x, step=step)


def test_beta_vae_weights_the_kl_by_beta():
    model = make("beta-vae", "model.beta=4")
    loss = loss_with_fixed_noise(model, batch())
    torch.testing.assert_close(loss.total, loss.recon + 4 * loss.kl)


def test_kl_warmup_scales_the_kl_by_step():
    model = make("vae", "model.kl_warmup_steps=100")
    x = batch()
    at_25 = loss_with_fixed_noise(model, x, step=25)
    torch.testing.assert_close(at_25.total, at_25.recon + 0.25 * at_25.kl)
    at_500 = loss_with_fixed_noise(model, x, step=500)
    torch.testing.assert_close(at_500.total, at_500.recon + at_500.kl)


def test_a_kl_warmup_over_a_fraction_of_the_run_scales_the_kl_by_step_over_the_runs_length():
    model = make("beta-vae", "model.beta=2", "model.kl_warmup_fraction=0.5")
    model.objective.total_steps = 200  # what the training loop sets: the warm-up ends at step 100
    x = batch()
    at_25 = loss_with_fixed_noise(model, x, step=25)
    torch.testing.assert_close(at_25.total, at_25.recon + 2 * 0.25 * at_25.kl)
    assert at_25.extras["kl_weight"].item() == 2 * 0.25  # logged: the loss is not the -ELBO during the warm-up
    at_150 = loss_with_fixed_noise(model, x, step=150)
    torch.testing.assert_close(at_150.total, at_150.recon + 2 * at_150.kl)
    assert "kl_weight" not in loss_with_fixed_noise(make("beta-vae", "model.beta=2"), x).extras  # no warm-up
    model.objective.total_steps = None
    with pytest.raises(ValueError, match="needs the run's length"):
        loss_with_fixed_noise(model, x)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.kl_warmup_fraction=1.5"], "must be in \\[0, 1\\]"),
        (["model.kl_warmup_fraction=0.5", "model.kl_warmup_steps=100"], "set one of"),
    ],
)
def test_a_kl_warmup_fraction_outside_the_run_or_beside_a_step_count_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make("vae", *overrides)


def test_free_bits_floor_each_dimensions_kl():
    model = make("vae", "model.free_bits=2.0")  # far above an untrained model's per-dimension KL
    loss = loss_with_fixed_noise(model, batch())
    torch.testing.assert_close(loss.total, loss.recon + torch.tensor(3 * 2.0))


def test_capacity_objective_is_gamma_times_distance_to_the_schedule():
    model = make("capacity-vae", "model.gamma=10", "model.c_max=8", "model.c_steps=100")
    loss = loss_with_fixed_noise(model, batch(), step=50)
    torch.testing.assert_close(loss.total, loss.recon + 10 * (loss.kl - 4.0).abs())
    assert loss.extras["capacity"].item() == 4.0


def iw_bound(model, x, k, seed):
    log_w = model.log_importance_weights(x, k=k, generator=torch.Generator().manual_seed(seed))
    return (torch.logsumexp(log_w.double(), 0) - math.log(k)).mean().item()


def test_iwae_bound_with_one_sample_is_the_elbo():
    """With k=1 the IWAE objective is the single-sample ELBO (its KL estimated by log q - log p); over many
    draws it averages to recon + analytic KL."""
    model = make("iwae", "model.k=1")
    x = batch(8).repeat(4000, 1, 1, 1)
    with torch.no_grad():
        loss = loss_with_fixed_noise(model, x)
    torch.testing.assert_close(loss.total, loss.recon + loss.kl, atol=0.02, rtol=0)


def test_iwae_bound_does_not_decrease_with_k_on_average():
    model = make("iwae").eval()
    x = batch(16)
    with torch.no_grad():
        bounds = {k: sum(iw_bound(model, x, k, seed) for seed in range(20)) / 20 for k in (1, 5, 50)}
    assert bounds[1] <= bounds[5] + 0.05 <= bounds[50] + 0.1


def test_iwae_trains_on_the_k_sample_bound():
    model = make("iwae", "model.k=5")
    x = batch()
    torch.manual_seed(3)
    loss = model.loss(x)
    torch.manual_seed(3)
    log_px_z, log_pz, log_qz, _, _ = model.sample_log_terms(x, None, 5)
    expected = -(torch.logsumexp(log_px_z + log_pz - log_qz, 0) - math.log(5)).mean()
    torch.testing.assert_close(loss.total, expected)


def test_joint_vae_kl_is_continuous_plus_discrete():
    model = make("joint-vae", "model.discrete=[4, 2]").eval()
    x = batch()
    terms = model.terms(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(terms.kl, terms.kl_parts["kl_cont"] + terms.kl_parts["kl_disc"])
    posterior = model.encode(x)
    uniform = [Categorical(probs=torch.full((32, k), 1 / k)) for k in (4, 2)]
    logits = posterior.categorical.logits
    reference = sum(kl_divergence(Categorical(logits=lg), u) for lg, u in zip(logits, uniform, strict=True))
    torch.testing.assert_close(terms.kl_parts["kl_disc"], reference)
    assert posterior.categorical.codes.shape == (32, 2)
    assert posterior.mean.shape == (32, 3 + 4 + 2)


def test_joint_vae_discrete_capacity_is_capped_at_sum_log_k():
    model = make("joint-vae", "model.discrete=[2]", "model.disc_c_max=50", "model.disc_c_steps=10", "model.gamma=1")
    x = batch()
    loss = loss_with_fixed_noise(model, x, step=10)
    c_cont = 5.0 * 10 / 25_000
    expected = loss.recon + (loss.extras["kl_cont"] - c_cont).abs() + (loss.extras["kl_disc"] - math.log(2)).abs()
    torch.testing.assert_close(loss.total, expected)


def test_joint_vae_importance_weights_average_to_its_elbo():
    model = make("joint-vae", "model.discrete=[3]").eval()
    x = batch(4)
    with torch.no_grad():
        log_w = model.log_importance_weights(x, k=20_000, generator=torch.Generator().manual_seed(0))
        samples = [model.terms(x, generator=torch.Generator().manual_seed(s)) for s in range(400)]
    elbo = -torch.stack([t.recon + t.kl for t in samples]).mean(0)
    torch.testing.assert_close(log_w.mean(0), elbo, atol=0.5, rtol=0)


def test_joint_vae_invariance_adds_the_kl_of_the_moved_images_codes_in_training_only():
    keys = ["model.discrete=[4, 2]", "model.invariance_shift=1.5", "model.invariance_rotation=20"]
    plain, invariant = make("joint-vae", *keys), make("joint-vae", *keys, "model.invariance=7")
    x = batch(16)
    loss = invariant.loss(x, step=100, generator=torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)  # the posterior noise is drawn first, then the moves
    reference = plain.loss(x, step=100, generator=generator)
    moved = random_affine(x, 1.5, 20.0, generator)
    clean, shifted = plain.encode(x).categorical.logits, plain.encode(moved).categorical.logits
    kl = sum(
        kl_divergence(Categorical(logits=a), Categorical(logits=b)).mean() for a, b in zip(clean, shifted, strict=True)
    )
    assert kl > 0.01
    torch.testing.assert_close(loss.extras["invariance"], kl)
    torch.testing.assert_close(loss.total, reference.total + 7 * kl)
    torch.testing.assert_close(loss.recon, reference.recon)
    invariant.eval(), plain.eval()
    evaluated, expected = (m.loss(x, step=100, generator=torch.Generator().manual_seed(5)) for m in (invariant, plain))
    assert "invariance" not in evaluated.extras
    torch.testing.assert_close(evaluated.total, expected.total)


def test_joint_vae_invariance_pulls_the_moved_images_codes_only():
    """The term's gradient is that of KL(q(c|x) || q(c|T x)) with q(c|x) detached, and differs from the
    gradient without the detach."""
    invariant = make("joint-vae", "model.invariance=1")
    x = batch(16)
    generator = torch.Generator().manual_seed(5)
    invariant.loss(x, generator=generator).extras["invariance"].backward()
    gradient = invariant.encoder_head.weight.grad.clone()
    noise = torch.Generator().manual_seed(5)
    invariant.encode(x).rsample(noise)  # the draws the loss made before the moves
    moves = noise.get_state()
    expected = []
    for detach in (True, False):
        model = make("joint-vae")
        moved = random_affine(x, 2.0, 10.0, torch.Generator().set_state(moves))
        clean, shifted = model.encode(x).categorical.logits[0], model.encode(moved).categorical.logits[0]
        clean = clean.detach() if detach else clean
        kl_divergence(Categorical(logits=clean), Categorical(logits=shifted)).mean().backward()
        expected.append(model.encoder_head.weight.grad)
    torch.testing.assert_close(gradient, expected[0])
    assert not torch.allclose(gradient, expected[1])


def test_joint_vae_balance_adds_the_kl_of_the_batchs_mean_code_to_uniform():
    plain, balanced = (
        make("joint-vae", "model.discrete=[4, 2]"),
        make("joint-vae", "model.discrete=[4, 2]", "model.balance=3"),
    )
    x = batch(16)
    loss, reference = (m.loss(x, step=100, generator=torch.Generator().manual_seed(5)) for m in (balanced, plain))
    means = [lg.softmax(-1).mean(0) for lg in plain.encode(x).categorical.logits]
    kl = sum(kl_divergence(Categorical(probs=m), Categorical(probs=torch.full_like(m, 1 / len(m)))) for m in means)
    assert kl > 1e-4
    torch.testing.assert_close(loss.extras["balance"], kl)
    torch.testing.assert_close(loss.total, reference.total + 3 * kl)


@pytest.mark.slow
def test_joint_vae_with_the_code_terms_trains_and_logs_them(tiny_overrides):
    keys = ["model.name=joint-vae", "model.invariance=10", "model.balance=5", "train.epochs=1"]
    row = train(None, [*tiny_overrides, *keys]).metrics[-1]
    assert row["train_invariance"] > 0 and row["train_balance"] > 0 and "val_invariance" not in row


BAD_JOINT_KEYS = [
    "model.tau=0",
    "model.discrete=[1]",
    "model.discrete=[]",
    "model.invariance=-1",
    "model.invariance_shift=-2",
    "model.invariance_rotation=-5",
    "model.balance=-1",
]


@pytest.mark.parametrize("bad", BAD_JOINT_KEYS)
def test_joint_vae_rejects_bad_latent_specs(bad):
    with pytest.raises(ConfigError):
        load_config(None, ["model.name=joint-vae", bad])


def log_weights(model, x, n, seed):
    """log w = log p(x|z) + log p(z) - log q(z|x) of n draws per image, (n, B), from the generator seeded by seed."""
    log_px_z, log_pz, log_qz, _, _ = model.sample_log_terms(x, None, n, torch.Generator().manual_seed(seed))
    return log_px_z + log_pz - log_qz


def test_miwae_averages_m_bounds_of_k_draws_each():
    model, x = make("miwae", "model.k=3", "model.m=4"), batch(8)
    loss = model.loss(x, generator=torch.Generator().manual_seed(3))
    log_w = log_weights(model, x, 12, seed=3)
    groups = [log_w[3 * g : 3 * g + 3] for g in range(4)]  # draws 0-2, 3-5, ...
    bounds = [torch.logsumexp(w, 0) - math.log(3) for w in groups]  # (B,) each
    torch.testing.assert_close(loss.total, -torch.stack(bounds).mean())
    one_bound = make("iwae", "model.k=12").loss(x, generator=torch.Generator().manual_seed(3)).total
    assert one_bound < loss.total  # one bound of 12 draws is tighter than the mean of four of 3


def test_ciwae_mixes_the_elbo_and_the_k_sample_bound_of_the_same_draws():
    model, x = make("ciwae", "model.k=6", "model.beta=0.25"), batch(8)
    loss = model.loss(x, generator=torch.Generator().manual_seed(4))
    log_w = log_weights(model, x, 6, seed=4)
    elbo, iwae = log_w.mean(0), torch.logsumexp(log_w, 0) - math.log(6)
    torch.testing.assert_close(loss.total, -(0.25 * elbo + 0.75 * iwae).mean())


def test_piwae_gives_the_decoder_the_iwae_gradient_and_the_encoder_the_miwae_gradient():
    """PIWAE(m=4, k=3): its loss is the 12-draw IWAE bound; its decoder's gradient is that bound's, its encoder's
    MIWAE(4, 3)'s, each computed here by its own model on the same 12 draws."""
    x = batch(8)

    def loss_and_grads(*keys):
        model = make(*keys)
        loss = model.loss(x, generator=torch.Generator().manual_seed(7)).total
        loss.backward()
        return loss, {n: p.grad for n, p in model.named_parameters()}

    piwae, piwae_grads = loss_and_grads("piwae", "model.k=3", "model.m=4")
    iwae, iwae_grads = loss_and_grads("iwae", "model.k=12")
    _, miwae_grads = loss_and_grads("miwae", "model.k=3", "model.m=4")
    torch.testing.assert_close(piwae, iwae)
    for name, grad in piwae_grads.items():
        reference = iwae_grads[name] if name.startswith("decoder") else miwae_grads[name]
        torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(iwae_grads["encoder_head.weight"], miwae_grads["encoder_head.weight"])
