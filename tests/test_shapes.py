"""The generated shapes datasets: the factor grid, what each image shows, the bit-packed cache and its checksum,
and loading them as a vaelab dataset whose label is the shape."""

import json

import numpy as np
import pytest
import torch

from vaelab.cache import cache_dir
from vaelab.data import load_dataset, shapes
from vaelab.data.shapes import GRIDS, SIZE, Grid, PackedImages, cache_paths, factor_data, generate
from vaelab.data.sources import factor_source
from vaelab.errors import DataError


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A fresh, empty cache folder for this test."""
    monkeypatch.setenv("VAELAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def small():
    return factor_data("shapes-small")


def pixels(data, factors) -> np.ndarray:
    """bool (SIZE, SIZE) image of one factor vector."""
    return data.observations(np.array([factors]))[0, 0] > 0


def test_the_grids_are_the_dsprites_grid_and_a_coarse_one():
    assert GRIDS["shapes"].sizes == (3, 6, 40, 32, 32) and GRIDS["shapes"].n_images == 737_280
    assert GRIDS["shapes-small"].sizes == (3, 3, 8, 8, 8) and GRIDS["shapes-small"].n_images == 4_608
    scales, angles = GRIDS["shapes"].values()[1:3]
    assert scales[0] == 0.5 and scales[-1] == 1.0
    assert np.degrees(angles[1]) == pytest.approx(9.0) and np.degrees(angles[-1]) == pytest.approx(351.0)
    assert GRIDS["shapes"].offsets().tolist() == list(range(32))  # whole-pixel positions, one apart


def test_generation_is_deterministic_and_binary(small):
    again = generate(GRIDS["shapes-small"])
    assert np.array_equal(again, np.asarray(small.images.packed))
    x = small.images[np.arange(0, 4608, 97)]
    assert x.dtype == np.uint8 and x.shape == (48, 1, SIZE, SIZE) and set(np.unique(x)) == {0, 255}


def test_every_position_of_a_finer_grid_is_a_whole_pixel_shift():
    grid = Grid("t", 2, 3, 32)
    data = PackedImages(generate(grid))
    first = data[np.array([0])][0, 0]  # square, scale 0.5, angle 0, offsets (0, 0)
    for x, y in [(0, 5), (31, 0), (17, 29)]:
        shifted = data[np.array([x * 32 + y])][0, 0]
        assert np.array_equal(shifted, np.roll(first, (y, x), axis=(0, 1)))


def test_scale_grows_the_area_and_position_moves_the_centre(small):
    areas = [pixels(small, (k, s, 0, 3, 3)).sum() for k in range(3) for s in range(3)]
    assert all(a < b for a, b in zip(areas[0::3], areas[1::3], strict=True))  # per shape, area grows with scale
    assert all(a < b for a, b in zip(areas[1::3], areas[2::3], strict=True))
    rows, cols = np.nonzero(pixels(small, (2, 1, 3, 0, 0)))
    rows_moved, cols_moved = np.nonzero(pixels(small, (2, 1, 3, 7, 2)))  # pos_x 7 (offset 31), pos_y 2 (offset 9)
    assert cols_moved.mean() - cols.mean() == pytest.approx(31) and rows_moved.mean() - rows.mean() == pytest.approx(9)


def test_orientation_turns_the_shapes_as_their_symmetries_allow(small):
    for k in range(3):  # 8 angles, 45 degrees apart: index 2 is a quarter turn, 4 a half turn
        upright, quarter, half = (pixels(small, (k, 2, o, 4, 4)) for o in (0, 2, 4))
        assert np.array_equal(upright, quarter) == (k == 0)  # only the square looks the same a quarter turn on
        assert np.array_equal(upright, half) == (k in (0, 1))  # the heart has no half-turn symmetry
    shapes = [pixels(small, (k, 2, 1, 4, 4)) for k in range(3)]
    assert not np.array_equal(shapes[0], shapes[1]) and not np.array_equal(shapes[1], shapes[2])


def test_factors_and_grid_indices_are_inverse(small):
    rng = np.random.default_rng(0)
    factors = small.sample_factors(50, rng)
    assert factors.shape == (50, 5) and (factors < np.array(small.factor_sizes)).all()
    index = np.ravel_multi_index(tuple(factors.T), small.factor_sizes)
    assert np.array_equal(small.factors_of(index), factors)
    assert np.array_equal(small.observations(factors), small.images[index])


def test_the_cache_is_written_with_its_checksum_then_reused(own_cache, capfd):
    data = factor_data("shapes-small")
    images_path, manifest_path = cache_paths("shapes-small")
    assert images_path.parent == own_cache and images_path.is_file()
    manifest = json.loads(manifest_path.read_text())
    assert manifest["sizes"] == [3, 3, 8, 8, 8] and len(manifest["sha256"]) == 64
    assert "generated shapes-small (4,608 images)" in capfd.readouterr().err
    assert images_path.stat().st_size < 4608 * 520  # bit-packed: 512 bytes per image plus the .npy header

    shapes._load_cached.cache_clear()
    again = factor_data("shapes-small")
    assert isinstance(again.images.packed, np.memmap)  # read from the cache, not generated
    assert np.array_equal(again.images.packed, data.images.packed)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_a_damaged_cache_is_regenerated_and_says_so(own_cache, capfd, damage):
    fresh = np.asarray(factor_data("shapes-small").images.packed).copy()
    images_path, manifest_path = cache_paths("shapes-small")
    raw = bytearray(images_path.read_bytes())
    if damage == "flip":
        raw[-100] ^= 0xFF
        images_path.write_bytes(bytes(raw))
    elif damage == "truncate":
        images_path.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        manifest_path.write_text("{not json")
    capfd.readouterr()
    shapes._load_cached.cache_clear()
    data = factor_data("shapes-small")
    err = capfd.readouterr().err
    assert f"{images_path} is damaged" in err and "generating it again" in err
    assert np.array_equal(data.images.packed, fresh)
    shapes._load_cached.cache_clear()
    factor_data("shapes-small")
    assert capfd.readouterr().err == ""  # repaired on disk


def test_cache_folder_follows_vaelab_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("VAELAB_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("VAELAB_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "vaelab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "vaelab"


def test_loaded_as_a_dataset_the_label_is_the_shape(small):
    data = load_dataset("shapes-small", val_fraction=0.1, test_fraction=0.1, seed=3, limit=500)
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (500, 415, 461)
    assert data.class_names == ["square", "ellipse", "heart"] and data.image_shape == (1, 64, 64)
    assert set(data.train_y.unique().tolist()) == {0, 1, 2}
    grid = torch.from_numpy(small.images[np.arange(4608)])  # find each training image in the grid
    flat = grid.flatten(1).float()
    match = torch.cdist(data.train_x[:20].flatten(1).float(), flat).argmin(1).numpy()
    assert np.array_equal(small.factors_of(match)[:, 0], data.train_y[:20].numpy())


def test_static_binarisation_leaves_binary_shapes_unchanged():
    kwargs = {"val_fraction": 0.1, "limit": 300}
    static, none = (load_dataset("shapes-small", binarize=b, **kwargs) for b in ("static", "none"))
    assert torch.equal(static.train_x, none.train_x) and torch.equal(static.test_x, none.test_x)


def test_only_generated_datasets_have_factors(small):
    assert factor_source("shapes-small").factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    with pytest.raises(DataError, match="digits has no ground-truth factors.*shapes, shapes-small"):
        factor_source("digits")
