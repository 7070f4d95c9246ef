"""Will it fit? Memory a training needs, estimated before anything is allocated, against what the machine has.

The model is built on PyTorch's meta device (shapes, no storage): its parameters cost 16 bytes each in training
(fp32 weights, gradients and Adam's two moments), buffers 4, and one forward pass of a meta image, hooked at every leaf
module, gives the activations kept for the backward pass (4 bytes per element per image of a batch)."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import ConfigError, DataError, VaelabError

TRAINING_BYTES_PER_PARAMETER = 16  # weights, gradients, Adam's exp_avg and exp_avg_sq, all fp32
HEADROOM = 0.9  # refuse above this share of the available memory


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo, lowered to the cgroup's memory.max less its current use; None where
    neither can be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def gigabytes(n: float) -> str:
    """Bytes as people read them: 25.3 GB, 412 MB, 96 kB."""
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _activation_elements(model: torch.nn.Module, image_shape: tuple[int, ...], num_classes: int | None) -> int:
    """Elements of every leaf module's output for one image (an encoder and a decoder pass on the meta device)."""
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        for t in output if isinstance(output, tuple | list) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            x = torch.zeros(1, *image_shape, device="meta")
            y = torch.zeros(1, dtype=torch.long, device="meta") if getattr(model, "n_conditions", 0) else None
            posterior = model.encode(x, y)
            model.decode_mean(posterior.mean, y)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def training_estimate(config, image_shape, num_classes) -> tuple[int, int, int] | None:
    """(parameters, bytes of parameters in training, bytes of activations of one batch), or None for a model
    that cannot be built on the meta device (then nothing is estimated)."""
    from .models import build_model

    try:
        with torch.device("meta"):
            model = build_model(config.model, tuple(image_shape), num_classes)
    except VaelabError:
        raise
    except Exception:  # a part that needs real storage to be built: no estimate
        return None
    parameters = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())  # e.g. PCA's components, fitted rather than trained
    try:
        activations = _activation_elements(model, tuple(image_shape), num_classes)
    except Exception:  # a forward that needs real values (e.g. .item()): parameters alone
        activations = 0
    batch = config.train.batch_size
    return parameters, parameters * TRAINING_BYTES_PER_PARAMETER + buffers * 4, activations * batch * 4 * 2


def check_training_fits(config, image_shape, num_classes, available: int | None = None) -> None:
    """A ConfigError with the estimate and what to change when training ``config`` on images of ``image_shape``
    needs more memory than is available (nothing is checked where that is unknown)."""
    available = available_bytes() if available is None else available
    estimate = training_estimate(config, image_shape, num_classes) if available is not None else None
    if estimate is None:
        return
    parameters, parameter_bytes, activation_bytes = estimate
    if parameter_bytes + activation_bytes <= HEADROOM * available:
        return
    m = config.model
    sizes = f"model.latent_dim={m.latent_dim}" + (f", model.hidden={m.hidden}" if hasattr(m, "hidden") else "")
    raise ConfigError(
        f"{m.name} with {sizes} on {'x'.join(map(str, image_shape))} images needs about "
        f"{gigabytes(parameter_bytes + activation_bytes)} to train ({parameters:,} parameters x "
        f"{TRAINING_BYTES_PER_PARAMETER} bytes for weights, gradients and Adam's moments = {gigabytes(parameter_bytes)}"
        f", + {gigabytes(activation_bytes)} of activations for a batch of {config.train.batch_size}); this machine has "
        f"{gigabytes(available)} available: lower model.latent_dim or model.hidden, train.batch_size, or the image size"
    )


def check_data_fits(n_images: int, image_bytes: int, where: str, available: int | None = None) -> None:
    """A DataError when ``n_images`` of ``image_bytes`` each, read one by one and then stacked (twice their size),
    cannot be held in memory."""
    what = f"{where}: {n_images:,} images of {image_bytes:,} bytes (and their stacked copy)"
    check_memory(2 * n_images * image_bytes, what, "use smaller or fewer images", available)


def check_memory(need: int, what: str, remedy: str, available: int | None = None) -> None:
    """A DataError "WHAT need N GB in memory; this machine has M GB available: REMEDY" when ``need`` bytes do not
    fit in the available memory (nothing is checked where that is unknown)."""
    available = available_bytes() if available is None else available
    if available is not None and need > HEADROOM * available:
        raise DataError(
            f"{what} need {gigabytes(need)} in memory; this machine has {gigabytes(available)} available: {remedy}"
        )
