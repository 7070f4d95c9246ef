"""Generate the bad-input corpus: each case is files written into a folder plus the vaelab command that
must reject them with one clear line. Run as a script to write the corpus to a folder and list it:

    python tests/bad_inputs/make_corpus.py /tmp/corpus
"""

from __future__ import annotations

import gzip
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vaelab.data import write_idx

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass
class Case:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (case folder, a valid run folder) -> vaelab arguments
    expect: str  # a fragment the error line must contain
    make: Callable[[Path, Path], None] = lambda folder, run: None  # writes the case's files


def _idx_set(folder: Path, n_train: int = 20, n_test: int = 10) -> None:
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (n_train, 8, 8), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 8, 8), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    ]
    for name, array in zip(IDX_NAMES, arrays, strict=True):
        write_idx(folder / f"{name}.gz", array)


def _damage_idx(edit: Callable[[bytes], bytes], raw: bool = False) -> Callable[[Path, Path], None]:
    """A valid IDX set whose training images file is rewritten by ``edit`` (on the raw bytes if ``raw``,
    else on the gzip stream)."""

    def make(folder: Path, run: Path) -> None:
        _idx_set(folder)
        path = folder / f"{IDX_NAMES[0]}.gz"
        data = path.read_bytes()
        path.write_bytes(gzip.compress(edit(gzip.decompress(data))) if raw else edit(data))

    return make


def _with_header(magic: bytes, dtype: int, dims: list[int]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        header = magic + bytes([dtype, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
        return header + data[4 + 4 * data[3] :]

    return edit


def _short_labels(folder: Path, run: Path) -> None:
    """20 training images but 19 labels."""
    _idx_set(folder)
    write_idx(folder / f"{IDX_NAMES[1]}.gz", np.zeros(19, dtype=np.uint8))


def _npz(**arrays) -> Callable[[Path, Path], None]:
    def make(folder: Path, run: Path) -> None:
        np.savez(folder / "data.npz", **arrays)

    return make


def _folder(sizes: list[tuple[int, int]], junk: bool = False) -> Callable[[Path, Path], None]:
    def make(folder: Path, run: Path) -> None:
        (folder / "images").mkdir()
        for i, size in enumerate(sizes):
            Image.fromarray(np.full(size, 100 + i, dtype=np.uint8)).save(folder / "images" / f"{i}.png")
        if junk:
            (folder / "images" / "notes.png").write_text("not an image")

    return make


def _odd_mode(name: str, array: np.ndarray, mode: str | None = None) -> Callable[[Path, Path], None]:
    """A folder of two images: a plain grey one and ``name`` holding ``array`` in ``mode``."""

    def make(folder: Path, run: Path) -> None:
        (folder / "images").mkdir()
        Image.fromarray(np.zeros(array.shape[:2], dtype=np.uint8)).save(folder / "images" / "plain.png")
        Image.fromarray(array, mode).save(folder / "images" / name)

    return make


def _copy_run(edit: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    """A copy of the valid run folder, damaged by ``edit``."""

    def make(folder: Path, run: Path) -> None:
        import shutil

        shutil.copytree(run, folder / "run")
        edit(folder / "run")

    return make


class _Payload:
    """Unpickling this would create a file: proof that the payload ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickled_checkpoint(folder: Path, run: Path) -> None:
    import shutil

    shutil.copytree(run, folder / "run")
    for checkpoint in (folder / "run" / "checkpoint").glob("epoch-*"):
        (checkpoint / "trainer.pt").write_bytes(pickle.dumps(_Payload(folder / "payload-ran")))


def _other_model_config(run: Path) -> None:
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("latent_dim: 3", "latent_dim: 5"))


def _idx_train(folder: Path, run: Path) -> list[str]:
    return ["train", "--data", "fashion-mnist", "--data-dir", str(folder), f"train.out_dir={folder / 'runs'}"]


def _npz_train(folder: Path, run: Path) -> list[str]:
    return ["train", f"data.name=npz:{folder / 'data.npz'}", f"train.out_dir={folder / 'runs'}"]


def _folder_train(folder: Path, run: Path) -> list[str]:
    return ["train", f"data.name=folder:{folder / 'images'}", f"train.out_dir={folder / 'runs'}"]


def _tiny_train(*overrides: str) -> Callable[[Path, Path], list[str]]:
    return lambda folder, run: ["train", "data.name=digits", f"train.out_dir={folder / 'runs'}", *overrides]


CASES = [
    Case("idx-truncated", _idx_train, "truncated", _damage_idx(lambda d: d[: len(d) // 2])),
    Case(
        "idx-bit-flipped",
        _idx_train,
        "train-images-idx3-ubyte.gz",
        _damage_idx(lambda d: d[:40] + bytes([d[40] ^ 0xFF]) + d[41:]),
    ),
    Case("idx-wrong-magic", _idx_train, "magic", _damage_idx(_with_header(b"\x12\x34", 8, [20, 8, 8]), raw=True)),
    Case("idx-wrong-dtype", _idx_train, "dtype", _damage_idx(_with_header(b"\x00\x00", 0x42, [20, 8, 8]), raw=True)),
    Case("idx-count-mismatch", _idx_train, "labels", _short_labels),
    Case("idx-zero-images", _idx_train, "0", _damage_idx(lambda d: d[:4] + (0).to_bytes(4, "big") + d[8:16], raw=True)),
    Case("npz-without-x", _npz_train, "x", _npz(images=np.zeros((4, 8, 8), np.uint8))),
    Case("npz-nan", _npz_train, "NaN", _npz(x=np.full((4, 8, 8), np.nan))),
    Case("npz-wrong-dtype", _npz_train, "dtype", _npz(x=np.array([["a"] * 8] * 8 * 4).reshape(4, 8, 8))),
    Case("folder-mixed-sizes", _folder_train, "size", _folder([(8, 8), (8, 8), (9, 8)])),
    Case("folder-non-image", _folder_train, "notes.png", _folder([(8, 8), (8, 8)], junk=True)),
    Case(
        "folder-transparent-png",
        _folder_train,
        "odd.png is RGBA with transparent pixels",
        _odd_mode("odd.png", np.tile(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 4), "RGBA"),
    ),
    Case(
        "folder-float-tiff", _folder_train, "odd.tif holds 32-bit floats", _odd_mode("odd.tif", np.ones((8, 8), "f4"))
    ),
    Case(
        "folder-32-bit-tiff",
        _folder_train,
        "odd.tif holds 32-bit integers",
        _odd_mode("odd.tif", np.full((8, 8), 70000, dtype=np.int32)),
    ),
    Case(
        "config-duplicate-key",
        lambda f, r: ["train", "--config", str(f / "c.yaml"), "data.name=digits", f"train.out_dir={f / 'runs'}"],
        "key 'lr' is given twice (lines 2 and 3)",
        lambda f, r: (f / "c.yaml").write_text("train:\n  lr: 0.1\n  lr: 0.01\n"),
    ),
    Case(
        "config-not-utf8",
        lambda f, r: ["train", "--config", str(f / "c.yaml"), "data.name=digits", f"train.out_dir={f / 'runs'}"],
        "c.yaml is not UTF-8 text",
        lambda f, r: (f / "c.yaml").write_bytes("# réglages\ntrain:\n  lr: 0.1\n".encode("latin-1")),
    ),
    Case(
        "config-is-a-directory",
        lambda f, r: ["train", "--config", str(f), "data.name=digits", f"train.out_dir={f / 'runs'}"],
        "is a directory",
    ),
    Case(
        "pca-more-dimensions-than-images",
        lambda f, r: [
            "train",
            f"data.name=npz:{f / 'data.npz'}",
            "model.name=pca",
            "model.latent_dim=4",
            "data.val_fraction=0",
            "data.test_fraction=0",
            f"train.out_dir={f / 'runs'}",
        ],  # fmt: skip
        "model.latent_dim=4 exceeds the 3 training images",
        _npz(x=np.zeros((3, 8, 8), np.uint8)),
    ),
    Case("model-beyond-memory", _tiny_train("model.latent_dim=100000000"), "this machine has"),
    Case(
        "npz-ids-as-labels",
        _npz_train,
        "renumber them",
        _npz(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 10**12, 1, 2])),
    ),
    Case("config-typo", _tiny_train("model.lattent_dim=4"), "did you mean model.latent_dim"),
    Case("config-wrong-type", _tiny_train("train.epochs=ten"), "train.epochs must be int"),
    Case("unknown-dataset", _tiny_train("data.name=fashion_mnist"), "fashion-mnist"),
    Case("unknown-model", _tiny_train("model.name=vea"), "did you mean vae"),
    Case(
        "run-missing-weights",
        lambda f, r: ["eval", str(f / "run")],
        "model.safetensors is missing",
        _copy_run(lambda run: (run / "model.safetensors").unlink()),
    ),
    Case(
        "run-corrupted-weights",
        lambda f, r: ["sample", str(f / "run"), "-o", str(f / "s.png")],
        "damaged",
        _copy_run(lambda run: (run / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")),
    ),
    Case(
        "run-corrupted-checkpoints",
        lambda f, r: ["train", "--resume", str(f / "run")],
        "no loadable checkpoint",
        _copy_run(lambda run: [p.write_bytes(b"junk") for p in (run / "checkpoint").glob("epoch-*/*")]),
    ),
    Case(
        "run-missing-checkpoint",
        lambda f, r: ["train", "--resume", str(f / "run")],
        "no checkpoint/ to resume",
        _copy_run(lambda run: __import__("shutil").rmtree(run / "checkpoint")),
    ),
    Case(
        "run-other-model-config",
        lambda f, r: ["eval", str(f / "run")],
        "does not match",
        _copy_run(_other_model_config),
    ),
    Case(
        "checkpoint-pickled-object",
        lambda f, r: ["train", "--resume", str(f / "run")],
        "no loadable checkpoint",
        _pickled_checkpoint,
    ),
    Case(
        "run-damaged-metrics",
        lambda f, r: ["report", str(f / "run")],
        "metrics.csv is damaged (line 2",
        _copy_run(lambda run: (run / "metrics.csv").write_text("epoch,loss\n1,abc\n")),
    ),
    Case(
        "resume-into-another-folder",
        lambda f, r: ["train", "--resume", str(f / "run"), "train.name=other"],
        "train.name names a new run's folder",
        _copy_run(lambda run: None),
    ),
    Case("config-negative-threads", _tiny_train("train.threads=-1"), "train.threads must be >= 0"),
    Case("config-infinite-lr", _tiny_train("train.lr=inf"), "train.lr must be a finite number"),
    Case("option-out-of-range", lambda f, r: ["sample", str(r), "-n", "0"], "Invalid value for '-n'"),
    Case("option-infinite", lambda f, r: ["sample", str(r), "--temperature", "inf"], "for '--temperature'"),
    Case("option-unknown", lambda f, r: ["sample", str(r), "--bogus"], "No such option: --bogus"),
    Case(
        "output-under-a-file",
        lambda f, r: ["sample", str(r), "-o", str(f / "a-file" / "s.png")],
        "a-file: File exists",
        lambda f, r: (f / "a-file").write_text("a file, not a folder"),
    ),
    Case(
        "output-is-a-folder",
        lambda f, r: ["sample", str(r), "-o", str(f / "pictures.png")],
        "Is a directory",
        lambda f, r: (f / "pictures.png").mkdir(),
    ),
    Case("output-not-png", lambda f, r: ["sample", str(r), "-o", str(f / "s.jpg")], "ending in .png"),
    Case(
        "run-is-a-file",
        lambda f, r: ["eval", str(f / "notes.txt")],
        "notes.txt is a file, not a run folder",
        lambda f, r: (f / "notes.txt").write_text("not a run"),
    ),
    Case(
        "train-out-dir-is-a-file",
        lambda f, r: ["train", "data.name=digits", f"train.out_dir={f / 'a-file'}"],
        "a-file: File exists",
        lambda f, r: (f / "a-file").write_text("a file, not a folder"),
    ),
]


def write_corpus(root: Path, valid_run: Path, only: str | None = None) -> list[tuple[Case, Path]]:
    """Write every case (or the one named ``only``) into its own subfolder of ``root``."""
    written = []
    for case in CASES if only is None else [c for c in CASES if c.name == only]:
        folder = root / case.name
        folder.mkdir(parents=True)
        case.make(folder, valid_run)
        written.append((case, folder))
    return written


if __name__ == "__main__":
    from vaelab import train

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs_corpus")
    valid = train(
        None, ["data.name=digits", "model.latent_dim=3", "train.epochs=1", f"train.out_dir={out}", "train.name=valid"]
    )
    for case, folder in write_corpus(out / "cases", valid.path):
        print(f"{case.name:<28} vaelab {' '.join(case.argv(folder, valid.path))}")
