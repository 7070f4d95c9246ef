"""One run as the explorer sees it: its latent spec, the dimensions ranked by KL and which are active (as
``vaelab eval`` counts them: ``unit_activity``), the latent map, and the
operations behind the API (decode, encode a test image or an upload, interpolate), built on ``Run`` and
``vaelab.viz``. Model calls hold the run's lock: requests run in a thread pool and torch modules are not
meant to be called from several threads at once."""

from __future__ import annotations

import base64
import threading

import numpy as np
import torch

from ..evaluate.latents import split_activity
from ..run import Run
from ..viz.grids import image_grid, png_bytes
from ..viz.interpolate import interpolation_grid
from ..viz.latent_map import latent_points
from ..viz.plotting import TAB10, class_colours
from ..viz.traverse import split_float
from .schemas import DecodeRequest, Encoded, LatentMap, RequestError, RunInfo
from .uploads import border_mean, read_upload

PNG_COMPRESSION = 1  # tiny images: level 1 is as small as 6 and faster
BACKGROUND_IMAGES = 1000  # test images whose border pixels give an upload's background (read_upload)


def png(images: torch.Tensor) -> bytes:
    """Images (N, C, H, W) in [0, 1] side by side, as PNG bytes (no border)."""
    return png_bytes(image_grid(images, ncols=len(images), pad=0), compress_level=PNG_COMPRESSION)


def data_url(images: torch.Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(png(images)).decode()


def css_colour(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb)


class Explorer:
    """A loaded run with what the page needs precomputed: dimension ranking and activity, prior moments, the
    latent map."""

    def __init__(self, run: Run, run_id: int = 0, name: str | None = None):
        self.run, self.id, self.name = run, run_id, name or run.path.name
        self.lock = threading.Lock()
        model = run.model
        self.discrete = list(model.spec.discrete)
        self.num_classes = int(model.num_classes or 0) if run.conditional else 0
        self.test_x, self.test_y = split_float(run, "test")  # what the encoder sees (evaluation binarisation)
        self.test_uint8 = run.data.split("test")[0]
        self.background = border_mean(self.test_uint8[:BACKGROUND_IMAGES].float() / 255)  # see read_upload
        self.activity = split_activity(run, "test")
        with torch.no_grad():
            self.prior_mean, self.prior_std = (t.double().cpu().numpy() for t in model.prior.moments())
            self.points = latent_points(run, "test")

    @property
    def n_test(self) -> int:
        return len(self.test_x)

    def labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return self.run.as_labels(y) if self.num_classes and y is not None else None

    def info(self) -> RunInfo:
        a = self.activity
        return RunInfo(
            id=self.id, name=self.name, model=self.run.config.model.name, image_shape=list(self.run.model.image_shape),
            latent_dim=self.run.model.spec.continuous, discrete=self.discrete, num_classes=self.num_classes,
            class_names=self.run.class_names if self.num_classes else None,
            prior_mean=self.prior_mean.tolist(), prior_std=self.prior_std.tolist(), order=a.order,
            kl=None if a.kl is None else a.kl.tolist(), active=a.active.tolist(), active_summary=a.summary(),
            n_test=self.n_test,
        )  # fmt: skip

    def latent_map(self) -> LatentMap:
        p = self.points
        k = 0 if p.labels is None else int(p.labels.max()) + 1
        colours = [css_colour(c) for c in class_colours(k)] if k else [TAB10[0]]
        origin, basis = p.inverse
        return LatentMap(
            points=np.round(p.points, 4).tolist(), labels=None if p.labels is None else p.labels.tolist(),
            axes=list(p.axes), method=p.method, origin=origin.tolist(), basis=basis.tolist(), colours=colours,
            class_names=self.run.class_names,
        )  # fmt: skip

    def check_index(self, index: int) -> int:
        if index >= self.n_test:
            raise RequestError(f"image {index} is out of range: the test split of {self.name} has {self.n_test}")
        return index

    def check_label(self, label: int | None) -> torch.Tensor | None:
        if not self.num_classes:
            if label is not None:
                raise RequestError(f"{self.name} is not a conditional model: send no label (null)")
            return None
        if label is None or label >= self.num_classes:
            raise RequestError(f"{self.name} is conditional: label must be 0..{self.num_classes - 1}; got {label}")
        return torch.tensor([label], device=self.run.model.device)

    def code(self, request: DecodeRequest) -> torch.Tensor:
        """The decoder input (1, code size): z and a one-hot per categorical, after checking both against the run."""
        d = self.run.model.spec.continuous
        if len(request.z) != d:
            raise RequestError(f"z must hold {d} numbers (the latent size of {self.name}); got {len(request.z)}")
        if len(request.codes) != len(self.discrete):
            raise RequestError(f"codes must hold {len(self.discrete)} categories (one per categorical of {self.name}); "
                               f"got {len(request.codes)}")  # fmt: skip
        for i, (c, k) in enumerate(zip(request.codes, self.discrete, strict=True)):
            if c >= k:
                raise RequestError(f"codes[{i}] = {c} is out of range: categorical {i} has categories 0..{k - 1}")
        z = torch.tensor(request.z, dtype=torch.float32, device=self.run.model.device)
        return self.run.model.spec.join(z, request.codes)[None]

    def decode_png(self, request: DecodeRequest) -> bytes:
        code, label = self.code(request), self.check_label(request.label)
        with self.lock:
            return png(self.run.decode(code, label).cpu())

    def encode(self, x: torch.Tensor, label: torch.Tensor | None) -> Encoded:
        """Encode images x (1, C, H, W): the posterior mean, its map position and its reconstruction."""
        spec = self.run.model.spec
        with self.lock:
            code = self.run.encode(x, label)  # (1, code size)
            reconstruction = self.run.decode(code, label).cpu()
        z = code[0, : spec.continuous].double().cpu().numpy()
        return Encoded(
            z=z.tolist(), codes=spec.codes(code[0]).tolist(), label=None if label is None else int(label[0]),
            point=self.points.to_map(z[None])[0].tolist(), image=data_url(x.cpu()),
            reconstruction=data_url(reconstruction),
        )  # fmt: skip

    def encode_test(self, index: int) -> Encoded:
        self.check_index(index)
        label = self.labels(None if self.test_y is None else self.test_y[index : index + 1])
        return self.encode(self.test_x[index : index + 1].to(self.run.model.device), label)

    def encode_upload(self, data: bytes, content_type: str, label: int | None) -> Encoded:
        x = read_upload(data, content_type, self.run.model.image_shape, self.background)
        return self.encode(x.to(self.run.model.device), self.check_label(label))

    def test_image_png(self, index: int) -> bytes:
        return png(self.test_uint8[self.check_index(index)][None].float() / 255)

    def interpolate_png(self, i: int, j: int, steps: int, slerp: bool) -> bytes:
        self.check_index(i), self.check_index(j)
        with self.lock:
            grid = interpolation_grid(self.run, i, j, steps, slerp, "test", (self.test_x, self.test_y))
        return png_bytes(grid, compress_level=PNG_COMPRESSION)
