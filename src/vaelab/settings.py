"""What each config key means, from one source: the config dataclasses declare every key with ``setting(default,
meaning)``; ``vaelab models``, ``vaelab config`` and docs/settings.md read the meanings back from them
(``settings_listing``).

A subclass that only changes a default (``name: str = "beta-vae"``) keeps its parent's meaning; one that gives
a key another sense declares it again with ``setting``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


def setting(default: Any, meaning: str) -> Any:
    """A config dataclass field with its default and its one-line meaning (a list default is copied per
    instance)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"meaning": meaning})
    return field(default=default, metadata={"meaning": meaning})


def meaning(cls: type, name: str) -> str:
    """The meaning of field ``name`` of config dataclass ``cls``: from the nearest class in its MRO that declares
    it with ``setting`` ("" when none does)."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and declared.metadata.get("meaning"):
            return declared.metadata["meaning"]
    return ""


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


@dataclass(frozen=True)
class Setting:
    """One key of a config: its dotted name, value, default and meaning; ``taken`` is false for a key the model
    inherits but refuses (its config class's ``refused``)."""

    key: str
    value: Any
    default: Any
    meaning: str
    taken: bool = True


def settings_of(config: Any, prefix: str = "") -> list[Setting]:
    """Every key of a config dataclass instance, nested sections flattened to dotted keys (``model.beta``), in
    declaration order; each default is the one of the class the value belongs to."""
    out, refused = [], getattr(config, "refused", ())
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out += settings_of(value, f"{prefix}{f.name}.")
        else:
            out.append(
                Setting(prefix + f.name, value, default_of(f), meaning(type(config), f.name), f.name not in refused)
            )
    return out


def text(value: Any) -> str:
    """A value as one writes it in a YAML config or a ``key=value`` override: fashion-mnist, 0.001, null, true."""
    return value if isinstance(value, str) else json.dumps(value)
