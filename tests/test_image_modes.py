"""Folder datasets read every image mode PIL opens faithfully (bit depth scaled, alpha only when opaque) or
refuse the file by name and mode: the data never changes silently."""

import numpy as np
import pytest
from PIL import Image

from vaelab.data import load_dataset
from vaelab.data.images import read_image
from vaelab.errors import DataError

RAMP = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)  # every 8-bit value once


def saved(tmp_path, image: Image.Image, name: str, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_16_bit_grey_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    path = saved(tmp_path, Image.fromarray(RAMP.astype(np.uint16) * 257), "deep.png")  # 0..65535
    assert Image.open(path).mode in ("I;16", "I")
    np.testing.assert_array_equal(read_image(path), RAMP)


def test_a_folder_of_16_bit_pngs_trains_on_the_same_pixels_as_its_8_bit_copy(tmp_path):
    rng = np.random.default_rng(0)
    for i, pixels in enumerate(rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)):
        for depth, folder in ((8, "eight"), (16, "sixteen")):
            (tmp_path / folder).mkdir(exist_ok=True)
            array = pixels if depth == 8 else pixels.astype(np.uint16) * 257
            Image.fromarray(array).save(tmp_path / folder / f"{i}.png")
    eight, sixteen = (load_dataset(f"folder:{tmp_path / f}", val_fraction=0.2, test_fraction=0.2)
                      for f in ("eight", "sixteen"))  # fmt: skip
    np.testing.assert_array_equal(eight.train_x, sixteen.train_x)
    assert sixteen.train_x.shape[1] == 1


@pytest.mark.parametrize(("mode", "dtype"), [("I;16", "<u2"), ("I;16B", ">u2")])
def test_16_bit_tiff_is_scaled(tmp_path, mode, dtype):
    image = Image.frombytes(mode, (16, 16), (RAMP.astype(dtype) * 257).tobytes())
    np.testing.assert_array_equal(read_image(saved(tmp_path, image, "deep.tif")), RAMP)


def test_bilevel_images_read_as_0_and_255(tmp_path):
    bits = RAMP >= 128
    path = saved(tmp_path, Image.fromarray(bits), "bits.png")
    assert Image.open(path).mode == "1"
    np.testing.assert_array_equal(read_image(path), np.where(bits, 255, 0))


@pytest.mark.parametrize(("mode", "channels"), [("LA", 1), ("RGBA", 3)])
def test_opaque_alpha_is_dropped_and_any_transparency_is_refused_by_name_and_mode(tmp_path, mode, channels):
    colour = np.stack([RAMP] * channels, axis=-1) if channels == 3 else RAMP[..., None]
    alpha = np.full((16, 16, 1), 255, dtype=np.uint8)
    opaque = saved(tmp_path, Image.fromarray(np.concatenate([colour, alpha], -1), mode), "opaque.png")
    np.testing.assert_array_equal(read_image(opaque), colour[..., 0] if channels == 1 else colour)
    alpha[0, 0] = 254
    clear = saved(tmp_path, Image.fromarray(np.concatenate([colour, alpha], -1), mode), "clear.png")
    with pytest.raises(DataError, match=f"clear.png is {mode} with transparent pixels"):
        read_image(clear)


def test_palette_images_read_as_their_colours(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[:2] = (200, 10, 30)
    rgb[2:] = (5, 250, 90)
    path = saved(tmp_path, Image.fromarray(rgb).quantize(2), "palette.png")
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_image(path), rgb)


def test_a_palette_with_a_transparent_colour_in_use_is_refused(tmp_path):
    image = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 255, 255])
    path = saved(tmp_path, image, "clear.png", transparency=0)
    with pytest.raises(DataError, match="clear.png is RGBA with transparent pixels"):
        read_image(path)


def test_cmyk_is_converted_to_rgb(tmp_path):
    cmyk = np.zeros((2, 2, 4), dtype=np.uint8)
    cmyk[0, 0] = (255, 0, 0, 0)  # cyan
    cmyk[1, 1] = (0, 0, 0, 255)  # black
    pixels = read_image(saved(tmp_path, Image.fromarray(cmyk, "CMYK"), "print.tif"))
    assert pixels[0, 0].tolist() == [0, 255, 255] and pixels[1, 1].tolist() == [0, 0, 0]
    assert pixels[0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    ("array", "expect"),
    [
        (RAMP.astype(np.float32) / 255, "holds 32-bit floats \\(mode F\\)"),
        (RAMP.astype(np.int32) - 100, "holds 32-bit integers \\(mode I"),
    ],
    ids=["F", "I-32-bit"],
)
def test_images_of_unknown_range_are_refused_by_name_and_mode(tmp_path, array, expect):
    path = saved(tmp_path, Image.fromarray(array), "odd.tif")
    with pytest.raises(DataError, match="odd.tif " + expect):
        read_image(path)


def test_a_multi_frame_file_is_refused(tmp_path):
    frames = [Image.fromarray(RAMP), Image.fromarray(255 - RAMP)]
    path = tmp_path / "pages.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="pages.tif holds 2 frames"):
        read_image(path)
