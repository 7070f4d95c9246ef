"""An uploaded PNG or JPEG, checked and turned into a model input: its type, byte size and dimensions are bounded,
then it is converted to the model's channels, resized to its input and inverted if its background is the
opposite of the training images' (dark digits on white paper for a model of white digits on black)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .schemas import RequestError

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4096  # pixels per side: bounds the memory a decoded upload takes (4096^2 RGBA = 64 MiB)
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
REDUCIBLE = {"L", "LA", "RGB", "RGBA", "I", "F"}  # modes whose pixel values may be averaged
KEEP_SIDE = 512  # uploads are reduced only to this many pixels per side or more (a 512^2 RGBA copy is 1 MiB)


def read_upload(data: bytes, content_type: str, image_shape: tuple[int, int, int], background: float) -> torch.Tensor:
    """The upload as a float image (1, C, H, W) in [0, 1]; ``background`` is the training images' mean border
    value in [0, 1]. Raises RequestError (413, 415 or 422) with the reason."""
    kind = FORMATS.get(content_type.split(";")[0].strip().lower())
    if kind is None:
        raise RequestError(f"send a PNG or JPEG (Content-Type image/png or image/jpeg); got {content_type!r}", 415)
    if len(data) > MAX_UPLOAD_BYTES:
        raise RequestError(f"the upload has {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES} (2 MiB)", 413)
    if not data:
        raise RequestError("the upload is empty: send the image's bytes as the request body")
    c, h, w = image_shape
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            if max(image.size) > MAX_SIDE:
                width, height = image.size
                raise RequestError(f"the image is {width}x{height} pixels; at most {MAX_SIDE} per side")
            image.draft(image.mode, (4 * w, 4 * h))  # JPEG: decode at a reduced scale; PNG: no effect
            image = flatten_alpha(reduced(image, (w, h)), background)
            image = image.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.LANCZOS)
    except RequestError:
        raise
    except UnidentifiedImageError:
        raise RequestError(f"the upload is not a {kind} image") from None
    except Exception as err:  # noqa: BLE001 (PIL's decoders raise many kinds of errors on malformed data)
        raise RequestError(f"the {kind} image is damaged or unsupported: {err}") from None
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)  # (H, W) or (H, W, 3)
    x = pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)  # (C, H, W)
    if (border_mean(x[None]) > 0.5) != (background > 0.5):
        x = 1 - x
    return x[None]


def border_mean(x: torch.Tensor) -> float:
    """Mean value of the outermost pixels of images x (N, C, H, W) in [0, 1]: their background."""
    return float(torch.cat([x[..., [0, -1], :].flatten(), x[..., :, [0, -1]].flatten()]).mean())


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def reduced(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` shrunk by an integer factor (the mean of each block) to no less than four times ``size`` (w, h)
    and ``KEEP_SIDE`` pixels per side, before any other copy is made: flattening a 4096^2 RGBA upload then
    copies 1 MiB images, not 64 MiB ones. Palette and colour-key transparency become an alpha channel first;
    other modes whose values are not intensities (1-bit, 16-bit, palette) are small when decoded and stay."""
    factor = min(image.width // max(4 * size[0], KEEP_SIDE), image.height // max(4 * size[1], KEEP_SIDE))
    if factor < 2:
        return image
    if has_alpha(image) and image.mode not in ("LA", "RGBA"):
        image = image.convert("RGBA")
    elif image.mode not in REDUCIBLE:
        return image
    return image.reduce(factor)


def flatten_alpha(image: Image.Image, background: float) -> Image.Image:
    """Transparent pixels take the training images' background grey (a drawing on a transparent canvas)."""
    if not has_alpha(image):
        return image
    rgba = image.convert("RGBA")
    grey = round(background * 255)
    flat = Image.new("RGBA", rgba.size, (grey, grey, grey, 255))
    return Image.alpha_composite(flat, rgba)
