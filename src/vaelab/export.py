"""Export a trained model's decoder and/or encoder to ONNX or TorchScript, with its description inside the file.

The graphs (N is dynamic):
- decoder: ``z`` (N, code size) [+ ``y_onehot`` (N, K) for conditional models] -> ``images`` (N, C, H, W), the
  likelihood's mean in [0, 1], exactly what ``Model.decode_mean`` gives.
- encoder: ``x`` (N, C, H, W) floats in [0, 1] [+ ``y_onehot``] -> ``mean`` (N, code size), the posterior mean
  (what ``vaelab encode`` and ``transform`` give), plus ``logvar`` (N, latent_dim) for Gaussian posteriors and
  ``logits`` (N, sum K) of the categoricals for JointVAE.

The description (model, image shape, latent spec, label count and names, likelihood, the model config, the
graph's inputs and outputs) is JSON: the ONNX metadata property ``vaelab``, or the TorchScript extra file
``vaelab.json``; ``read_metadata`` reads either without loading the graph. ONNX needs the ``export`` extra
(``pip install 'vaelab[export]'``: onnx, onnxscript, and onnxruntime to check the result); TorchScript needs only
torch, which deprecates it: prefer ONNX.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import atomic_write_bytes
from .errors import VaelabError
from .models import Model

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
PARTS = ("decoder", "encoder")
METADATA_KEY = "vaelab"
METADATA_FILE = "vaelab.json"  # the TorchScript extra file
EXPORT_DIR = "export"  # default output folder inside a run folder
FORMAT_VERSION = 1


class ExportError(VaelabError):
    """An export cannot be made: a missing optional dependency or an unknown format or part."""


def _given_one_hot(y_onehot: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Stands in for ``Model.one_hot``: the graph's input is already the one-hot label (B, K)."""
    return y_onehot.to(dtype)


class ExportGraph(nn.Module):
    """One part of a model as a traceable module. It holds a private copy of the model whose conditioning takes
    the one-hot itself: ``one_hot``'s label range check depends on the data, which a graph cannot hold."""

    def __init__(self, model: Model, part: str):
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.part = part
        if model.n_conditions:
            self.model.one_hot = _given_one_hot
        self.eval()

    def forward(self, inputs: torch.Tensor, y_onehot: torch.Tensor | None = None):
        if self.part == "decoder":
            return self.model.decode_mean(inputs, y_onehot)  # (N, C, H, W)
        return tuple(self.model.encode(inputs, y_onehot).outputs().values())


def example_inputs(model: Model, part: str, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of a part: codes (n, code size) or images (n, C, H, W) in [0, 1], and one-hots if conditional."""
    generator = torch.Generator().manual_seed(seed)
    if part == "decoder":
        first = torch.randn(n, model.spec.code_size, generator=generator)
    else:
        first = torch.rand(n, *model.image_shape, generator=generator)
    k = model.n_conditions
    if not k:
        return (first,)
    return first, torch.eye(k)[torch.randint(0, k, (n,), generator=generator)]


def describe(model: Model, part: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata that travels with an exported part."""
    from . import __version__

    k, code = model.n_conditions, model.spec.code_size
    c, h, w = model.image_shape
    if part == "decoder":
        inputs = {"z": [None, code]}
        outputs = {"images": [None, c, h, w]}
    else:
        inputs = {"x": [None, c, h, w]}
        with torch.no_grad():
            posterior = model.encode(torch.zeros(1, c, h, w), torch.zeros(1, dtype=torch.long) if k else None)
        outputs = {name: [None, t.shape[-1]] for name, t in posterior.outputs().items()}
    if k:
        inputs["y_onehot"] = [None, k]
    return {
        "format_version": FORMAT_VERSION,
        "vaelab_version": __version__,
        "part": part,
        "model": model.config.name,
        "image_shape": [c, h, w],
        "pixel_range": [0.0, 1.0],
        "latent": {"continuous": model.spec.continuous, "discrete": list(model.spec.discrete), "code_size": code},
        "conditional": bool(k),
        "num_classes": model.num_classes,
        "likelihood": model.likelihood.name,
        "inputs": inputs,
        "outputs": outputs,
        "config": dataclasses.asdict(model.config),
        **(extra or {}),
    }


def export_model(
    model: Model,
    out_dir: str | Path,
    format: str = "onnx",
    part: str = "both",
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``decoder``/``encoder`` files (``part``: decoder, encoder or both) of ``model`` into ``out_dir`` as
    ``<part>.onnx`` or ``<part>.pt``; ``extra`` joins the metadata (e.g. class names). Returns the paths."""
    _check_choices(format, part)
    if part != "encoder" and model.config.pixel_context:
        raise ExportError("this model's decoder draws its image pixel by pixel (model.pixel_context), a loop that an "
                          "exported graph does not hold; export its encoder alone: --part encoder")  # fmt: skip
    model = copy.deepcopy(model).cpu().eval()  # the caller's model keeps its device and mode
    paths = []
    for name in PARTS if part == "both" else (part,):
        graph = ExportGraph(model, name)
        metadata = describe(model, name, extra)
        inputs = example_inputs(model, name)
        data = _onnx_bytes(graph, inputs, metadata) if format == "onnx" else _torchscript_bytes(graph, inputs, metadata)
        path = Path(out_dir) / f"{name}{FORMATS[format]}"
        atomic_write_bytes(path, data)
        paths.append(path)
    return paths


def export_run(run_dir: str | Path, out_dir: str | Path | None = None, format: str = "onnx",
               part: str = "both") -> list[Path]:  # fmt: skip
    """Export a run folder's model into ``out_dir`` (default RUN/export/)."""
    from .run import load_run

    _check_choices(format, part)
    run = load_run(run_dir)
    extra = {"class_names": run.class_names, "dataset": run.metadata.get("dataset"), "run": Path(run_dir).name}
    return export_model(run.model, out_dir or run.path / EXPORT_DIR, format, part, extra)


def _check_choices(format: str, part: str) -> None:
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if part not in (*PARTS, "both"):
        raise ExportError(f"unknown part {part!r}; choose decoder, encoder or both")


def _onnx_bytes(graph: ExportGraph, inputs: tuple[torch.Tensor, ...], metadata: dict[str, Any]) -> bytes:
    """The graph as an ONNX model (torch.export-based exporter, dynamic batch) with the metadata property."""
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs the packages onnx and onnxscript ({err.name} is missing): "
            "pip install 'vaelab[export]', or choose --format torchscript"
        ) from None
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(
            graph, inputs, dynamo=True, verbose=False,
            input_names=list(metadata["inputs"]), output_names=list(metadata["outputs"]),
            dynamic_shapes=tuple({0: batch} for _ in inputs),
        )  # fmt: skip
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return proto.SerializeToString()


def _torchscript_bytes(graph: ExportGraph, inputs: tuple[torch.Tensor, ...], metadata: dict[str, Any]) -> bytes:
    """The graph traced to TorchScript and frozen (which drops the weights the part does not use), with
    ``vaelab.json``. The trace is checked on another batch size, so no batch size is baked in."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates TorchScript; it still runs
        traced = torch.jit.trace(graph, inputs, check_inputs=[example_inputs(graph.model, graph.part, n=3, seed=1)])
        torch.jit.save(torch.jit.freeze(traced), buffer, _extra_files={METADATA_FILE: json.dumps(metadata)})
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the ONNX exporter's warnings and log lines (e.g. about torchvision operators) while it runs."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The vaelab metadata of an exported file (.onnx or TorchScript .pt), read without running the graph."""
    path = Path(path)
    if zipfile.is_zipfile(path):  # TorchScript archives are zip files: <name>/extra/vaelab.json
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_FILE}")]
            if not names:
                raise ExportError(f"{path} is a TorchScript file without {METADATA_FILE}: not exported by vaelab")
            return json.loads(archive.read(names[0]))
    try:
        import onnx
    except ImportError:
        raise ExportError("reading ONNX metadata needs onnx: pip install 'vaelab[export]'") from None
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ExportError(f"{path} has no {METADATA_KEY!r} metadata: not exported by vaelab")


def check_onnx(path: str | Path, model: Model, n: int = 16) -> float:
    """Run an exported ONNX part with onnxruntime on ``n`` random inputs; returns the largest absolute difference
    from the model itself (every output)."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("checking an ONNX export needs onnxruntime: pip install 'vaelab[export]'") from None
    metadata = read_metadata(path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(model, metadata["part"], n=n, seed=2)
    got = session.run(None, {name: x.numpy() for name, x in zip(metadata["inputs"], inputs, strict=True)})
    with torch.no_grad():
        want = ExportGraph(model, metadata["part"])(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    return max(float(abs(torch.from_numpy(g) - w).max()) for g, w in zip(got, want, strict=True))
