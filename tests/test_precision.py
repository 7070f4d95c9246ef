"""Devices and precision: bf16 autocast with float32 loss terms, the auto probe, clear errors, bf16 IW-NLL."""

import subprocess
import sys

import pytest
import torch

import vaelab.evaluate.likelihood as likelihood_module
import vaelab.precision as precision_module
from vaelab import DeviceError, train
from vaelab.config import load_config
from vaelab.devices import resolve_device
from vaelab.evaluate.likelihood import evaluate_run, iw_nll_per_image
from vaelab.models import build_model
from vaelab.precision import autocast, bf16_supported, choose_precision

needs_bf16 = pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="this CPU has no native bf16")


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="device cuda was requested but torch .* sees no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_bf16_on_a_device_without_it_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: False)
    model = torch.nn.Linear(4, 4)
    with pytest.raises(DeviceError, match="precision bf16 was requested but this cpu has no native bfloat16"):
        choose_precision("bf16", torch.device("cpu"), model, lambda: None)
    choice = choose_precision("auto", torch.device("cpu"), model, lambda: None)
    assert choice.precision == "fp32" and "no native bfloat16" in choice.reason


@needs_bf16
def test_under_bf16_the_networks_run_in_bf16_and_the_loss_terms_in_float32():
    model = build_model(load_config(None, ["model.hidden=[64]", "model.latent_dim=4"]).model, (1, 8, 8))
    x = torch.rand(16, 1, 8, 8).bernoulli()
    seen = []
    model.decoder[0].register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    with autocast("bf16", torch.device("cpu")):
        terms = model.loss(x)
    assert seen == [torch.bfloat16]
    assert all(t.dtype == torch.float32 for t in terms.named().values())
    assert model.log_importance_weights(x, k=3).dtype == torch.float32


@needs_bf16
def test_auto_takes_what_the_probe_finds_and_the_run_log_says_so(tiny_overrides, capsys, monkeypatch):
    monkeypatch.setattr(precision_module, "probe", lambda model, device, run_model: (2.0, 1.0))  # bf16 2x faster
    run = train(None, tiny_overrides + ["train.precision=auto", "train.epochs=1"])
    assert "precision bf16 (auto: the model's layers ran 2.00x faster in bf16 than fp32" in capsys.readouterr().err
    monkeypatch.setattr(precision_module, "probe", lambda model, device, run_model: (1.0, 1.0))
    train(None, ["train.epochs=2"], resume=run.path)  # a resumed run keeps the precision its probe chose
    assert "precision bf16 (auto: as chosen when the run started)" in capsys.readouterr().err


@needs_bf16
def test_the_probe_runs_every_layer_at_its_training_shape_in_each_precision_alternately():
    """What the probe times (its speed-up for the default MLP is printed by bench/train_throughput.py: no test
    asserts a time)."""
    model = build_model(load_config(None, []).model, (1, 28, 28))
    x = torch.rand(512, 1, 28, 28)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    calls = []
    for layer in layers:
        layer.register_forward_hook(lambda m, args, out: calls.append((m, args[0].shape, out.dtype)))
    fp32, bf16 = precision_module.probe(model, torch.device("cpu"), lambda: model.loss(x))
    assert 0 < fp32 < float("inf") and 0 < bf16 < float("inf")
    recorded, timed = calls[: len(layers)], calls[len(layers) :]  # one forward of the model, then the passes
    passes = [timed[i : i + len(layers)] for i in range(0, len(timed), len(layers))]
    assert len(passes) == 2 * (precision_module.PROBE_REPEATS + 1)
    for i, one_pass in enumerate(passes):
        assert [(m, shape) for m, shape, _ in one_pass] == [(m, shape) for m, shape, _ in recorded]
        assert {dtype for _, _, dtype in one_pass} == {torch.float32 if i % 2 == 0 else torch.bfloat16}


@needs_bf16
def test_bf16_training_learns(tiny_overrides):
    run = train(None, tiny_overrides + ["train.precision=bf16", "train.epochs=6"])
    losses = [row["val_loss"] for row in run.metrics]
    assert losses[-1] < losses[0] - 5


@needs_bf16
def test_bf16_iw_nll_is_within_005_nats_of_fp32(tmp_path):
    run = train(None, ["data.name=mnist-5k", "model.hidden=[256]", "model.latent_dim=16", "train.epochs=1",
                       "train.progress=never", "train.frames=false", "train.report=false", "train.device=cpu",
                       f"train.out_dir={tmp_path}"])  # fmt: skip
    x, _ = run.data.split("test")
    nll = {p: iw_nll_per_image(run.model, x[:300], None, "dynamic", 100, precision=p) for p in ("fp32", "bf16")}
    assert abs(nll["bf16"].mean() - nll["fp32"].mean()) < 0.05
    results = evaluate_run(run, iw_samples=10, precision="auto")
    assert results["iw_nll"]["precision"] in ("fp32", "bf16")


@needs_bf16
def test_auto_keeps_bf16_for_the_iw_nll_only_where_its_estimate_is_within_the_tolerance(tiny_overrides, monkeypatch):
    run = train(None, tiny_overrides + ["train.epochs=1", "train.precision=fp32"])
    monkeypatch.setattr(precision_module, "probe", lambda model, device, run_model: (2.0, 1.0))  # bf16 2x faster
    x, _ = run.data.split("test")
    n = min(len(x), likelihood_module.BF16_CHECK_IMAGES)
    mean = {p: iw_nll_per_image(run.model, x[:n], None, run.data.binarize, 20, precision=p).mean().item()
            for p in ("bf16", "fp32")}  # fmt: skip
    difference = f"{mean['bf16'] - mean['fp32']:+.3f} nats from fp32's"
    monkeypatch.setattr(likelihood_module, "BF16_TOLERANCE", 1e9)
    kept = evaluate_run(run, iw_samples=20, precision="auto")["iw_nll"]
    assert kept["precision"] == "bf16"
    assert kept["precision_reason"].endswith(f"on the first {n} images bf16's estimate is {difference}")
    monkeypatch.setattr(likelihood_module, "BF16_TOLERANCE", 0.0)  # no difference accepted: fp32, with the reason
    fallen_back = evaluate_run(run, iw_samples=20, precision="auto")["iw_nll"]
    assert fallen_back["precision"] == "fp32"
    assert fallen_back["precision_reason"] == (
        f"fp32 (auto: on the first {n} images bf16's estimate is {difference}, beyond the 0.0 accepted)"
    )
    assert evaluate_run(run, iw_samples=20, precision="bf16")["iw_nll"]["precision"] == "bf16"  # asked: not checked


@pytest.mark.slow
def test_the_cli_names_a_missing_gpu_in_one_line(tiny_overrides):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run([sys.executable, "-m", "vaelab", "train", *tiny_overrides, "train.device=cuda"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error: device cuda was requested")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_compiled_training_raises_no_deprecation_warning(tiny_overrides):
    """torch.compile's inductor imports a torch module that uses the deprecated torch.jit.script_method: vaelab
    imports it under a filter, so `-W error::DeprecationWarning` trains (in a fresh process: imports happen once)."""
    code = f"from vaelab import train; train(None, {[*tiny_overrides, 'train.epochs=1', 'train.compile=true']!r})"
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_compiled_training_takes_the_steps_of_eager_training(tiny_overrides):
    """train.compile=true draws the same noise (ahead of the compiled objective) and computes the same loss."""
    eager = train(None, tiny_overrides + ["train.name=eager", "train.epochs=2"])
    compiled = train(None, tiny_overrides + ["train.name=compiled", "train.epochs=2", "train.compile=true"])
    for a, b in zip(eager.metrics, compiled.metrics, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
