"""The model registry: ``@register("vae", VAEConfig, "...")`` on a function that composes the model feeds the
CLI, ``vaelab models``, ``vaelab.sklearn`` and run loading."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError
from ..nets import Nets
from .config import ModelConfig

Build = Callable[..., "Model"]  # (config, image_shape, num_classes, nets) -> Model  # noqa: F821


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Build
    config_cls: type[ModelConfig]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, config_cls: type[ModelConfig], description: str):
    """Decorator adding a model (a function composing it from its config) to the registry under ``name``."""

    def decorate(build: Build) -> Build:
        _REGISTRY[name] = ModelEntry(name, build, config_cls, description)
        return build

    return decorate


def model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"model.name {name!r} is not a known model{hint}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def registered_models() -> list[ModelEntry]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def build_model(config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int | None = None,
                nets: Nets | None = None):  # fmt: skip
    """The registered model named by ``config.name`` for images of ``image_shape`` (with ``nets``: on one's own
    encoder and decoder)."""
    return model_entry(config.name).build(config, tuple(image_shape), num_classes, nets)
