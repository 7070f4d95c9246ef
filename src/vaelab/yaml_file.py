"""YAML files as common editors write them: UTF-8 with or without a byte-order mark, UTF-16 or UTF-32 with one;
a key given twice in one mapping is refused (PyYAML would keep the last one silently)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

_BOMS = [  # longest first: UTF-32 LE starts with UTF-16 LE's mark
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


_SCALARS = (str, int, float, bool, type(None))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, _SCALARS):
                if key in seen:
                    raise ConfigError(f"key {key!r} is given twice (lines {seen[key]} and {line}); keep one")
                seen[key] = line
        return super().construct_mapping(node, deep)


def decode_text(data: bytes, path: Path) -> str:
    """The text of a file's bytes: by its byte-order mark if it has one, else UTF-8."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not {encoding.upper().removesuffix('-SIG')} text (byte {err.start}: {err.reason}); "
            "save it as UTF-8"
        ) from None


def load_yaml_text(text: str) -> Any:
    """yaml.safe_load, refusing repeated keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)


def read_yaml_file(path: Path, what: str = "config file") -> Any:
    """The YAML document in ``path``; a ConfigError for a missing path, a folder, bad text or bad YAML."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; give the YAML file in it (e.g. {path}/config.yaml)")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; the shipped ones are in configs/")
    text = decode_text(path.read_bytes(), path)
    try:
        return load_yaml_text(text)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
