"""Every registered model: shapes, finite loss, learning, save -> load, sampling, every consumer; the net builders;
networks of one's own; a new model as one file."""

import json
import math

import pytest
import torch

from vaelab.checkpoint import read_weights, weights_bytes
from vaelab.config import load_config
from vaelab.errors import ConfigError
from vaelab.models import build_model, registered_models
from vaelab.parts import ImageTerms

MODEL_NAMES = [entry.name for entry in registered_models()]
POINT_CODES = ("ae", "pca", "rae", "rae-gp", "vq-vae", "wae")  # deterministic encoders: no posterior density
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
    if model.closed_form_kls(model.encode(x))[0] is not None or not model.has_density:  # Monte Carlo KLs can dip < 0
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


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_model_activation_is_the_nonlinearity_after_every_hidden_layer(net):
    """model.activation: every hidden layer of encoder and decoder is followed by it, and by nothing else; the
    network's output (logits) and the encoder's head take none."""
    from torch import nn

    for name, kind in [("elu", nn.ELU), ("silu", nn.SiLU), ("relu", nn.ReLU)]:
        config = load_config(None, [f"model.net={net}", f"model.activation={name}", "model.hidden=[16, 8]"])
        model = build_model(config.model, (1, 12, 12))
        for part in (model.encoder, model.decoder):
            layers = [m for m in part.modules() if not list(m.children())]
            weighted = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d)]
            follow = [type(layers[i + 1]) for i in weighted[: len(weighted) - (part is model.decoder)]]
            assert follow and all(f is kind for f in follow), (name, net, follow)
            assert not any(type(m) in {nn.ELU, nn.SiLU, nn.ReLU} - {kind} for m in layers)
        x = torch.rand(3, 1, 12, 12)
        assert torch.isfinite(model.loss(x).named()["loss"]).all()
    with pytest.raises(ConfigError, match="model.activation"):
        load_config(None, ["model.activation=sigmoid"])


def test_model_residual_adds_each_equal_width_hidden_layers_input_to_its_output():
    """model.residual: in the MLP [16, 16, 8] the encoder's 16 -> 16 layer and the decoder's 16 -> 16 layer compute
    h + silu(W h + b), checked against the formula by hand; the others stay plain; the same draws of the weights
    as without it, so it changes nothing else."""
    from torch import nn

    from vaelab.nets import ResidualBlock

    overrides = ["model.hidden=[16, 16, 8]", "model.activation=silu"]
    torch.manual_seed(0)
    plain = build_model(load_config(None, overrides).model, (1, 6, 6))
    torch.manual_seed(0)
    model = build_model(load_config(None, [*overrides, "model.residual=true"]).model, (1, 6, 6))
    for part in (model.encoder, model.decoder):
        blocks = [m for m in part.modules() if isinstance(m, ResidualBlock)]
        assert len(blocks) == 1 and blocks[0].linear.in_features == 16
        h = torch.randn(4, 16)
        expected = h + nn.functional.silu(h @ blocks[0].linear.weight.T + blocks[0].linear.bias)
        torch.testing.assert_close(blocks[0](h), expected)
    torch.testing.assert_close(torch.cat([p.flatten() for p in model.parameters()]),
                               torch.cat([p.flatten() for p in plain.parameters()]))  # fmt: skip
    x = torch.rand(3, 1, 6, 6)
    z = torch.ones(1, model.spec.code_size)
    assert not torch.allclose(model.decoder(z), plain.decoder(z))
    assert torch.isfinite(model.loss(x).named()["loss"]).all()
    with pytest.raises(ConfigError, match="model.residual"):
        load_config(None, ["model.residual=true", "model.net=conv"])


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
@pytest.mark.slow
def test_every_model_trains_reloads_samples_reconstructs_evaluates_reports_and_decodes_in_the_explorer(
    name, tiny_overrides
):
    """Each registered model through every consumer, with no special case: one epoch on tiny data through
    train(), a reload to identical tensors, samples, reconstructions, eval (the IW-NLL where the model has a
    density, a clear None where it has none), the report's pictures and the explorer's decode."""
    from vaelab import load_run, train
    from vaelab.evaluate import run_evaluation
    from vaelab.viz import write_report
    from vaelab.web.explorer import Explorer
    from vaelab.web.schemas import DecodeRequest

    run = train(None, tiny_overrides + [f"model.name={name}", "train.epochs=1", "train.report=false"])
    assert len(run.metrics) == 1
    reloaded = load_run(run.path)
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, reloaded.model.state_dict()[key]), key
    x, _ = run.data.split("test")
    assert reloaded.reconstruct(x[:4]).shape == (4, 1, 10, 10)
    samples = reloaded.sample(6)
    assert samples.shape == (6, 1, 10, 10) and torch.isfinite(samples).all()
    results = run_evaluation(reloaded, "test", iw_samples=5, fid=False)
    assert math.isfinite(results["neg_elbo"]["mean"])
    assert results["latent"]["dims"] == reloaded.model.spec.continuous >= 3
    assert (results["iw_nll"] is not None) == reloaded.model.has_density == (name not in POINT_CODES)
    report = write_report(reloaded).read_text()
    assert "traversal.png" in report and "samples.png" in report
    spec = reloaded.model.spec
    png = Explorer(reloaded).decode_png(DecodeRequest(z=[0.0] * spec.continuous, codes=[0] * len(spec.discrete)))
    assert png.startswith(b"\x89PNG")


UNCONDITIONAL = {"pca": "neither model.conditional", "vamp-vae": "pseudo-inputs without labels"}


@pytest.mark.parametrize("name", list(UNCONDITIONAL))
def test_models_that_cannot_condition_on_labels_say_so(name):
    with pytest.raises(ConfigError, match=UNCONDITIONAL[name]):
        make_model(name, conditional="true")


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in UNCONDITIONAL])
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


class SmallConvEncoder(torch.nn.Module):
    """Images (B, 1, 10, 10) -> features (B, 200)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                          torch.nn.Flatten())  # fmt: skip

    def forward(self, x):
        return self.layers(x)


class SmallConvDecoder(torch.nn.Module):
    """Decoder inputs (B, 3) -> Bernoulli logits (B, 1, 10, 10)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(3, 200), torch.nn.ReLU(), torch.nn.Unflatten(1, (8, 5, 5)),
                                          torch.nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1))  # fmt: skip

    def forward(self, z):
        return self.layers(z)


@pytest.mark.slow
def test_networks_of_ones_own_train_resume_reload_evaluate_and_draw(tiny_overrides, tmp_path):
    from tests.test_cli import assert_user_error, vaelab
    from vaelab import Nets, load_run, train
    from vaelab.errors import ConfigError
    from vaelab.evaluate import evaluate_run
    from vaelab.viz import write_report

    torch.manual_seed(0)
    run = train(None, tiny_overrides + ["train.epochs=2"], nets=Nets(SmallConvEncoder(), SmallConvDecoder()))
    assert run.config.model.net == "custom" and len(run.metrics) == 2
    assert any(k.startswith("encoder.features.layers.0") for k in run.model.state_dict())  # the user's conv
    resumed = train(None, ["train.epochs=3"], resume=run.path, nets=Nets(SmallConvEncoder(), SmallConvDecoder()))
    assert [r["epoch"] for r in resumed.metrics] == [1, 2, 3]
    with pytest.raises(ConfigError, match="networks of your own"):
        load_run(run.path)
    reloaded = load_run(run.path, nets=Nets(SmallConvEncoder(), SmallConvDecoder()))
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, reloaded.model.state_dict()[key]), key
    results = evaluate_run(reloaded, "test", iw_samples=10)
    assert results["iw_nll"]["mean"] <= results["neg_elbo"]["mean"] + 1.0
    assert "traversal.png" in write_report(reloaded).read_text()
    assert_user_error(vaelab("eval", run.path), "networks of your own", "load_run(path, nets=")


@pytest.mark.slow
def test_a_new_model_is_one_short_file_that_the_cli_and_sklearn_train(tiny_overrides):
    """The worked example of docs/architecture.md: models/rae.py, found by being in models/ (named in no source
    file outside models/, where RAE-GP builds on it), listed by `vaelab models`, trained by the CLI and by
    vaelab.sklearn."""
    import re
    from pathlib import Path

    from sklearn.datasets import load_digits

    import vaelab.models
    from tests.test_cli import vaelab as run_cli
    from vaelab.sklearn import estimator

    source = Path(vaelab.models.__file__).parent / "rae.py"
    assert len(source.read_text().splitlines()) <= 40
    package = source.parent.parent
    outside = [p for p in package.rglob("*.py") if p.parent != source.parent]
    assert [p for p in outside if re.search(r"\brae\b", p.read_text())] == []
    assert "\nrae: " in run_cli("models").stdout
    trained = run_cli("train", *tiny_overrides, "model.name=rae", "train.epochs=1", "train.report=false")
    assert trained.returncode == 0, trained.stderr
    assert "train_code_norm" in (Path(tiny_overrides[-2].split("=")[1]) / "tiny" / "metrics.csv").read_text()
    x = load_digits().data[:200] / 16
    rae = estimator("rae")(latent_dim=3, hidden=(16,), epochs=2, random_state=0).fit(x)
    assert rae.transform(x[:5]).shape == (5, 3) and rae.sample(4).shape == (4, 64)


@pytest.mark.slow
def test_the_own_networks_example_of_the_api_docs_runs(tmp_path):
    """docs/api.md's small conv net, as printed, on 2,000 Fashion-MNIST images for one epoch."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    code = re.search(r"## Your own networks.*?```python\n(.*?)```", text, re.S).group(1)
    quick = f'"train.epochs=1", "data.limit=2000", "train.out_dir={tmp_path}", "train.progress=never"'
    code = code.replace('"train.epochs=5"', quick).replace("iw_samples=100", "iw_samples=2")
    code = code.replace("configs/", str(Path(__file__).parent.parent / "configs") + "/")
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)
    assert scope["run"].config.model.net == "custom" and (scope["run"].path / "report.html").is_file()


@pytest.mark.parametrize("name", ["ae", "pca"])
@pytest.mark.slow
def test_run_folders_saved_before_models_were_compositions_still_load_evaluate_sample_and_resume(name, tiny_overrides):
    """The AE's and PCA's tensors had other names (code_mean, mean_, ...) and configs held train.step: a folder
    of that form, made here from a new one, loads to the same model, evaluates, samples and resumes."""
    import yaml
    from safetensors.torch import save_file

    from vaelab import load_run, train
    from vaelab.checkpoint import read_weights
    from vaelab.evaluate import evaluate_run
    from vaelab.models.model import LEGACY_NAMES

    run = train(None, tiny_overrides + [f"model.name={name}", "train.epochs=2", "train.report=false"])
    tensors, metadata = read_weights(run.path / "model.safetensors")
    old_names = {new: old for old, new in LEGACY_NAMES.items() if (name == "ae") != old.endswith("_")}
    legacy = {old_names.get(k, k): v for k, v in tensors.items() if not (name == "pca" and k == "prior.z.mean")}
    assert set(legacy) != set(tensors)
    for path in [run.path / "model.safetensors", *run.path.glob("checkpoint/epoch-*/model.safetensors")]:
        save_file(legacy, path, metadata={k: json.dumps(v) for k, v in metadata.items()})
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    config["train"]["step"] = "auto"  # a key of the old hand-written training step
    (run.path / "config.yaml").write_text(yaml.safe_dump(config))
    old = load_run(run.path)
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, old.model.state_dict()[key]), key
    assert math.isfinite(evaluate_run(old, "test")["neg_elbo"]["mean"]) and old.sample(4).shape == (4, 1, 10, 10)
    resumed = train(None, ["train.epochs=3"], resume=run.path)
    assert len(resumed.metrics) == (1 if name == "pca" else 3)


@pytest.mark.slow
def test_an_iaf_run_folder_from_before_flow_step_loads_with_the_gated_steps_it_was_trained_with(tiny_overrides):
    """iaf-vae's steps were gated before model.flow_step (now affine by default): a run folder whose config.yaml
    lacks the key loads as gated, the same model as the one that was trained."""
    import yaml

    from vaelab import load_run, train

    overrides = ["model.name=iaf-vae", "model.flow_step=gated", "model.flow_hidden=8", "train.epochs=1"]
    run = train(None, [*tiny_overrides, *overrides, "train.report=false"])
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert config["model"].pop("flow_step") == "gated"
    (run.path / "config.yaml").write_text(yaml.safe_dump(config))
    old = load_run(run.path)
    assert old.config.model.flow_step == "gated"
    x = torch.rand(4, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    run.model.eval()
    torch.testing.assert_close(old.model.encode(x).mean, run.model.encode(x).mean, rtol=0, atol=0)
