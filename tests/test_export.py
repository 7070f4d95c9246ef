"""vaelab export: ONNX and TorchScript files that give vaelab's images and codes to 1e-5, with metadata inside."""

import sys
import warnings

import numpy as np
import pytest
import torch

from vaelab import train
from vaelab.cli import main
from vaelab.config import config_from_dict
from vaelab.export import ExportError, export_model, read_metadata
from vaelab.models import build_model

pytestmark = pytest.mark.slow  # end to end: trained runs exported and run in onnxruntime

ort = pytest.importorskip("onnxruntime")

MODELS = {
    "vae": {"name": "vae"},
    "vae-conv": {"name": "vae", "net": "conv", "channels": [4, 8]},
    "cvae": {"name": "vae", "conditional": True},
    "joint-vae": {"name": "joint-vae", "discrete": [4, 2]},
    "pca": {"name": "pca"},
    "ae": {"name": "ae"},
    "planar-vae": {"name": "planar-vae", "flows": 2},
    "iaf-vae": {"name": "iaf-vae", "flow_hidden": 8, "flow_context": 4},
    "vamp-vae": {"name": "vamp-vae", "components": 5},
    "ladder-vae": {"name": "ladder-vae", "upper": [2], "ladder_hidden": 8},
    "vq-vae": {"name": "vq-vae", "positions": 2, "codebook_size": 5},  # its encoder ends in a nearest-code lookup
}


def tiny_model(key, image_shape=(1, 8, 8), num_classes=3):
    """An untrained model with random weights: export must reproduce whatever the weights are."""
    torch.manual_seed(0)
    config = config_from_dict({"model": {"latent_dim": 3, "hidden": [16], **MODELS[key]}})
    model = build_model(config.model, image_shape, num_classes).eval()
    if key == "pca":  # give PCA non-trivial parameters: fit it to random images
        model.fit_closed_form(torch.rand(50, *image_shape))
    return model


def run_onnx(path, *inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs, strict=True)})


def one_hot(labels, k):
    return torch.eye(k)[labels]


@pytest.mark.parametrize("key", list(MODELS))
def test_onnx_decoder_and_encoder_give_vaelabs_outputs_to_1e_5(key, tmp_path):
    model = tiny_model(key)
    decoder, encoder = export_model(model, tmp_path, "onnx", "both")
    z = torch.randn(7, model.spec.code_size)  # a batch size the export never saw
    x = torch.rand(7, 1, 8, 8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0]) if key == "cvae" else None
    extra = (one_hot(labels, 3),) if key == "cvae" else ()
    with torch.no_grad():
        images = model.decode_mean(z, labels)
        expected = model.encode(x, labels).outputs()  # the mean, then each factor's parameters (logvar, logits)
    (onnx_images,) = run_onnx(decoder, z, *extra)
    np.testing.assert_allclose(onnx_images, images.numpy(), atol=1e-5)
    onnx_codes = run_onnx(encoder, x, *extra)
    assert len(onnx_codes) == len(expected)
    for got, want in zip(onnx_codes, expected.values(), strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


@pytest.mark.parametrize("key", ["vae", "cvae", "pca"])
def test_torchscript_decoder_gives_vaelabs_images(key, tmp_path):
    model = tiny_model(key)
    (path,) = export_model(model, tmp_path, "torchscript", "decoder")
    z = torch.randn(5, model.spec.code_size)
    labels = torch.tensor([2, 0, 1, 1, 0]) if key == "cvae" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path))  # our own file, in a test
    inputs = (z, one_hot(labels, 3)) if key == "cvae" else (z,)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs), model.decode_mean(z, labels), atol=1e-5, rtol=0)


def test_metadata_travels_with_both_formats(tmp_path):
    model = tiny_model("joint-vae")
    for fmt in ("onnx", "torchscript"):
        decoder, encoder = export_model(model, tmp_path / fmt, fmt, "both", extra={"class_names": ["a", "b", "c"]})
        meta = read_metadata(decoder)
        assert meta["part"] == "decoder" and meta["model"] == "joint-vae"
        assert meta["image_shape"] == [1, 8, 8]
        assert meta["latent"] == {"continuous": 3, "discrete": [4, 2], "code_size": 9}
        assert meta["num_classes"] == 3 and meta["class_names"] == ["a", "b", "c"] and not meta["conditional"]
        assert meta["inputs"] == {"z": [None, 9]} and meta["outputs"] == {"images": [None, 1, 8, 8]}
        assert read_metadata(encoder)["outputs"] == {"mean": [None, 9], "logvar": [None, 3], "logits": [None, 6]}


def test_conditional_metadata_names_the_one_hot_input(tmp_path):
    (path,) = export_model(tiny_model("cvae"), tmp_path, "onnx", "decoder")
    meta = read_metadata(path)
    assert meta["conditional"] and meta["inputs"] == {"z": [None, 3], "y_onehot": [None, 3]}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z", "y_onehot"]


def test_cli_export_of_a_trained_run_matches_run_decode(tiny_overrides, capsys):
    run = train(None, tiny_overrides)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(run.path), "--format", "onnx", "--part", "both"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "z (N, 3) -> images (N, 1, 10, 10)" in out and "onnxruntime gives vaelab's outputs to" in out
    decoder = run.path / "export" / "decoder.onnx"
    assert decoder.is_file() and (run.path / "export" / "encoder.onnx").is_file()
    z = torch.randn(4, 3)
    (images,) = run_onnx(decoder, z)
    np.testing.assert_allclose(images, run.decode(z).numpy(), atol=1e-5)
    meta = read_metadata(decoder)
    assert meta["image_shape"] == [1, 10, 10] and meta["num_classes"] == 3 and meta["run"] == "tiny"


def test_cli_export_says_when_onnxruntime_is_missing_to_check_the_files(tiny_overrides, capsys, monkeypatch):
    run = train(None, [*tiny_overrides, "train.epochs=1"])
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(run.path)])
    assert exit_info.value.code in (0, None)
    captured = capsys.readouterr()
    assert captured.err == "not checked: onnxruntime is not installed (pip install 'vaelab[export]')\n"
    assert "written:" in captured.out and "onnxruntime gives" not in captured.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "tflite"], "error: unknown export format 'tflite'; choose one of onnx, torchscript"),
        (["--part", "latent"], "error: unknown part 'latent'; choose decoder, encoder or both"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == message


def test_missing_onnx_packages_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(ExportError, match=r"pip install 'vaelab\[export\]'"):
        export_model(tiny_model("vae"), tmp_path, "onnx", "decoder")
