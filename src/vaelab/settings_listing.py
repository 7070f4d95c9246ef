"""Listings of the settings: ``vaelab models`` and ``vaelab config`` as text, docs/settings.md as markdown, from
the meanings the config dataclasses declare (``vaelab.settings``)."""

from __future__ import annotations

import textwrap

from .config import Config
from .models import registered_models
from .models.config import ModelConfig
from .settings import Setting, settings_of, text

WIDTH = 80  # terminal columns of the text listings
TERM_COLUMN = 34  # where a meaning starts when its key (and value) fit before it
MARKDOWN_INTRO = (
    "Every config key, its default and its meaning. Keys are set in a YAML config (`--config configs/vae-mlp.yaml`) "
    "or as overrides (`train.epochs=5`); `vaelab config --config FILE [key=value ...]` prints a resolved config with "
    "these meanings, `vaelab models [NAME]` the keys of the models. This page is generated from the config "
    "dataclasses (`vaelab config --markdown > docs/settings.md`; a test fails when it is out of date)."
)


def wrap(words: str, first: str = "", indent: str = "") -> list[str]:
    """``words`` wrapped to ``WIDTH`` columns after ``first``, later lines indented by ``indent``; never broken at
    a hyphen."""
    return textwrap.wrap(words, WIDTH, initial_indent=first, subsequent_indent=indent, break_on_hyphens=False)


def definition_lines(terms: list[tuple[str, str]], indent: int = 2) -> list[str]:
    """Terms and their descriptions as a two-column listing at most ``WIDTH`` columns wide: the description
    beside its term where the term fits before ``TERM_COLUMN``, else on the next line."""
    lines = []
    for term, description in terms:
        head = " " * indent + term
        if len(head) + 2 > TERM_COLUMN:  # the description starts on the next line
            lines.append(head)
            head = ""
        lines += wrap(description, head.ljust(TERM_COLUMN), " " * TERM_COLUMN)
    return lines


def default_lines(settings: list[Setting]) -> list[str]:
    """``key = default`` and the meaning of each setting the model takes (for ``vaelab models``)."""
    return definition_lines([(f"{s.key} = {text(s.default)}", s.meaning) for s in settings if s.taken])


def resolved_lines(settings: list[Setting]) -> list[str]:
    """``key = value`` and the meaning of each setting, with the default where the value differs from it (for
    ``vaelab config``); a key the model refuses says so."""
    terms = []
    for s in settings:
        description = s.meaning if s.taken else f"not taken by this model (keep {text(s.default)}): {s.meaning}"
        if s.value != s.default:
            description += f" [default {text(s.default)}]"
        terms.append((f"{s.key} = {text(s.value)}", description))
    return definition_lines(terms, indent=0)


def markdown_rows(settings: list[Setting]) -> list[str]:
    """A Markdown table of the settings: key, default, meaning."""
    cell = lambda s: s.replace("|", "\\|")  # noqa: E731
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    return rows + [f"| `{s.key}` | `{cell(text(s.default))}` | {cell(s.meaning)} |" for s in settings]


def own_settings(config_cls: type) -> list[Setting]:
    """The keys a model's config class adds to the common model keys, or whose default it changes, with their
    defaults (``model.name`` left out)."""

    common = {s.key: s.default for s in settings_of(ModelConfig(), "model.")}
    return [
        s for s in settings_of(config_cls(), "model.")
        if s.taken and s.key != "model.name" and (s.key not in common or s.default != common[s.key])
    ]  # fmt: skip


def reference_markdown() -> str:
    """docs/settings.md: every key of the data, train and common model sections and each registered model's own
    keys, with default and meaning."""

    everything = settings_of(Config(model=ModelConfig()))
    section = lambda prefix: markdown_rows([s for s in everything if s.key.startswith(prefix)])  # noqa: E731
    parts = [
        "# Settings",
        "",
        *textwrap.wrap(MARKDOWN_INTRO, 115, break_on_hyphens=False, break_long_words=False),
        "",
        "## Top level",
        "",
        *markdown_rows([s for s in everything if "." not in s.key]),
        "",
        "## Data (`data.*`)",
        "",
        *section("data."),
        "",
        "## Training (`train.*`)",
        "",
        *section("train."),
        "",
        "## Model keys every model takes (`model.*`)",
        "",
        *section("model."),
        "",
        "## Each model's own keys",
        "",
        "The keys a model adds to the common ones, or whose default it changes.",
    ]
    for entry in registered_models():
        own = own_settings(entry.config_cls)
        parts += ["", f"### {entry.name}", "", entry.description + ("" if own else ": no keys of its own.")]
        parts += ["", *markdown_rows(own)] if own else []
    return "\n".join(parts).rstrip("\n") + "\n"
