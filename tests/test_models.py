"""Every registered model: shapes, finite loss, learning, save -> load, sampling; and the net builders."""

import pytest
import torch

from vaelab.checkpoint import read_weights, weights_bytes
from vaelab.config import load_config
from vaelab.models import build_model, registered_models
from vaelab.parts import ImageTerms

MODEL_NAMES = [entry.name for entry in registered_models()]
SHAPE = (1, 12, 12)


def make_model(name, net="mlp", shape=SHAPE, **overrides):
    extra = [f"model.{k}={v}" for k, v in overrides.items()]
    config = load_config(None, [f"model.name={name}", f"model.net={net}", "model.latent_dim=4",
                                "model.hidden=[32]", "model.channels=[4, 8]", *extra])  # fmt: skip
    torch.manual_seed(0)
    return build_model(config.model, shape, num_classes=3)


def batch(n=16, shape=SHAPE):
    return torch.bernoulli(torch.rand(n, *shape, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_shapes_and_finite_per_image_terms(name, net):
    model = make_model(name, net)
    x = batch()
    terms = model.terms(x)
    assert isinstance(terms, ImageTerms)
    assert terms.recon.shape == terms.kl.shape == (16,)
    assert torch.isfinite(terms.neg_elbo).all()
    assert (terms.kl >= 0).all()
    assert model.encode(x).mean.shape == (16, model.spec.code_size)
    assert model.decode_mean(torch.zeros(3, model.spec.code_size)).shape == (3, *SHAPE)


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if not make_model(n).closed_form])  # pca: test_pca.py
def test_a_few_steps_lower_the_loss(name):
    model = make_model(name)
    x = batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(x).total.item()
    for _ in range(20):
        optimizer.zero_grad()
        model.loss(x).total.backward()
        optimizer.step()
    assert model.loss(x).total.item() < first - 1.0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_then_load_gives_identical_tensors_and_outputs(name, tmp_path):
    model = make_model(name)
    model.train()
    model.loss(batch())  # moves any running statistics away from their initial values
    path = tmp_path / "model.safetensors"
    path.write_bytes(weights_bytes(model, {"image_shape": list(SHAPE)}))
    tensors, metadata = read_weights(path)
    assert metadata == {"image_shape": list(SHAPE)}
    clone = make_model(name)
    clone.load_state_dict(tensors)
    for key, value in model.state_dict().items():
        assert torch.equal(value, clone.state_dict()[key]), key
    model.eval(), clone.eval()
    x = batch(4)
    torch.testing.assert_close(model.reconstruct(x), clone.reconstruct(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_samples_are_images_in_the_unit_interval(name):
    model = make_model(name).eval()
    images = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, *SHAPE)
    assert images.min() >= 0 and images.max() <= 1
    again = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 27, 13), (1, 8, 8), (3, 32, 32)])
def test_conv_decoder_returns_the_exact_input_size(shape):
    model = make_model("vae", "conv", shape)
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == (2, *shape)


def test_gaussian_likelihood_uses_its_stated_std():
    model = make_model("vae", likelihood="gaussian", gaussian_std=0.5)
    x = torch.rand(8, *SHAPE)
    narrow = make_model("vae", likelihood="gaussian", gaussian_std=0.05)
    wide = model.terms(x, generator=torch.Generator().manual_seed(0)).recon
    tight = narrow.terms(x, generator=torch.Generator().manual_seed(0)).recon
    assert not torch.allclose(wide, tight)  # the std enters the NLL


def test_vae_loss_is_the_mean_negative_elbo_in_nats_per_image():
    model = make_model("vae")
    x = batch()
    torch.manual_seed(5)
    loss = model.loss(x)
    torch.manual_seed(5)
    terms = model.terms(x)
    torch.testing.assert_close(loss.total, terms.neg_elbo.mean())
    torch.testing.assert_close(loss.recon, terms.recon.mean())


def test_one_importance_weight_averages_to_the_elbo():
    """E_q[log w] with k=1 is the ELBO: the mean of many single weights matches -terms().neg_elbo."""
    model = make_model("vae").eval()
    x = batch(4)
    with torch.no_grad():
        log_w = model.log_importance_weights(x, k=20_000, generator=torch.Generator().manual_seed(0))
        kl = model.terms(x).kl
        posterior = model.encode(x)
        z = posterior.rsample(torch.Generator().manual_seed(1), 20_000)
        recon = model.likelihood.nll(model.decode(z.flatten(0, 1)), x.repeat(20_000, 1, 1, 1)).view(20_000, 4)
    assert log_w.shape == (20_000, 4)
    torch.testing.assert_close(log_w.mean(0), -(recon.mean(0) + kl), atol=0.3, rtol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_saves_reloads_samples_and_reconstructs(name, tiny_overrides):
    """One epoch on tiny data through the real trainer, then the run folder reloads to identical tensors."""
    from vaelab import load_run, train

    run = train(None, tiny_overrides + [f"model.name={name}", "train.epochs=1"])
    assert len(run.metrics) == 1
    reloaded = load_run(run.path)
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, reloaded.model.state_dict()[key]), key
    x, _ = run.data.split("test")
    assert reloaded.reconstruct(x[:4]).shape == (4, 1, 10, 10)
    samples = reloaded.sample(6)
    assert samples.shape == (6, 1, 10, 10) and torch.isfinite(samples).all()


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "pca"])
def test_conditional_models_use_the_label(name):
    model = make_model(name, conditional="true").eval()
    z = model.prior.sample(4, torch.Generator().manual_seed(0))
    a = model.decode_mean(z, torch.tensor([0, 0, 0, 0]))
    b = model.decode_mean(z, torch.tensor([2, 2, 2, 2]))
    assert not torch.allclose(a, b)
    with pytest.raises(Exception, match="label out of range"):
        model.decode_mean(z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(Exception, match="this model is conditional"):
        model.sample(2)
