"""The model registry: ``@register("vae", VAEConfig, "...")`` feeds the CLI, ``vaelab models`` and run loading."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields

from ..config import ModelConfig
from ..errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    config_cls: type[ModelConfig]
    description: str

    def config_keys(self) -> list[str]:
        return [f.name for f in fields(self.config_cls)]


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, config_cls: type[ModelConfig], description: str):
    """Class decorator adding a model to the registry under ``name``."""

    def decorate(cls: type) -> type:
        _REGISTRY[name] = ModelEntry(name, cls, config_cls, description)
        cls.registry_name = name
        return cls

    return decorate


def model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"model.name {name!r} is not a known model{hint}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_config_class(name: str) -> type[ModelConfig]:
    return model_entry(name).config_cls


def registered_models() -> list[ModelEntry]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def build_model(config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int | None = None):
    """Instantiate the registered model named by ``config.name`` for images of ``image_shape``."""
    return model_entry(config.name).cls(config, tuple(image_shape), num_classes)
