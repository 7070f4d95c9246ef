"""Every setting is discoverable from one source: the config dataclasses give each key its default and meaning,
and `vaelab models`, `vaelab config` and docs/settings.md read them from there."""

import dataclasses
from pathlib import Path

import pytest

from vaelab.cli import main
from vaelab.config import Config, load_config
from vaelab.errors import ConfigError
from vaelab.models import model_entry, registered_models
from vaelab.models.config import ModelConfig
from vaelab.models.iwae import MIWAEConfig
from vaelab.models.vae import BetaVAEConfig, VAEConfig
from vaelab.settings import meaning, settings_of, text
from vaelab.settings_listing import reference_markdown

ROOT = Path(__file__).parent.parent
CONFIG_CLASSES = [Config] + [entry.config_cls for entry in registered_models()]  # Config: seed, data.*, train.*


def vaelab(capsys, *args) -> tuple[int, str, str]:
    """``vaelab ARGS`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda cls: cls.__name__)
def test_every_key_of_every_config_class_has_a_one_line_meaning(cls):
    """A model added without meanings fails here: each key is declared with setting(default, meaning)."""
    for s in settings_of(cls()):
        assert s.meaning.strip(), f"{cls.__name__}: {s.key} has no meaning; declare it with setting(default, meaning)"
        assert "\n" not in s.meaning and len(s.meaning) <= 110, f"{cls.__name__}: {s.key}: one short line, please"


def test_a_subclass_keeps_its_parents_meaning_unless_it_gives_its_own():
    assert meaning(BetaVAEConfig, "name") == meaning(ModelConfig, "name")  # name: str = "beta-vae" only
    assert meaning(BetaVAEConfig, "free_bits") == meaning(VAEConfig, "free_bits")
    assert meaning(MIWAEConfig, "k") == "importance samples per bound" != meaning(MIWAEConfig.__mro__[1], "k")


@pytest.mark.parametrize("entry", registered_models(), ids=lambda entry: entry.name)
def test_the_keys_a_model_marks_refused_are_refused_by_its_validation(entry):
    config = entry.config_cls()
    for key in entry.config_cls.refused:
        with pytest.raises(ConfigError, match=key):
            dataclasses.replace(config, **{key: type(getattr(config, key))(1)}).validate()


def test_vaelab_config_prints_every_key_with_its_value_meaning_and_differing_default(capsys):
    args = ["--config", ROOT / "configs/beta-vae-mlp.yaml", "train.epochs=3", "model.latent_dim=7"]
    code, out, err = vaelab(capsys, "config", *args)
    assert code == 0, err
    expected = settings_of(load_config(ROOT / "configs/beta-vae-mlp.yaml", ["train.epochs=3", "model.latent_dim=7"]))
    printed = [line.split(" = ")[0] for line in out.splitlines()[1:] if line and not line.startswith(" ")]
    assert printed == [s.key for s in expected]  # every key, once, in the config's order
    assert {"data.binarize", "train.grad_clip", "model.beta", "model.free_bits", "seed"} <= set(printed)
    assert all(len(line) <= 80 for line in out.splitlines()[1:])
    lines = out.splitlines()
    epochs = next(i for i, line in enumerate(lines) if line.startswith("train.epochs = 3 "))
    assert "passes over the training images [default 20]" in lines[epochs]
    lr = next(line for line in lines if line.startswith("train.lr = "))
    assert "Adam's learning rate" in lr and "[default" not in lr  # the config file keeps the default lr


def test_vaelab_config_takes_a_model_name_and_says_which_keys_it_refuses(capsys):
    code, out, err = vaelab(capsys, "config", "iwae", "model.k=3")
    assert code == 0, err
    assert "model.name = iwae" in out and "importance samples per image [default 5]" in out
    warmup = out[out.index("model.kl_warmup_steps = 0") :].split("\n")[0]
    assert "not taken by this model (keep 0)" in warmup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model.lattent_dim=3"], "error: Unknown config key: model.lattent_dim (did you mean model.latent_dim?)\n"),
        (["vea"], "error: model.name 'vea' is not a known model (did you mean vae?)"),
        (["--config", ROOT / "configs/vae-mlp.yaml", "train.epochs=many"], "error: train.epochs must be int"),
        (["vae", "iwae"], "error: give one model name, not 2 (vae, iwae)"),
        (["--markdown", "vae"], "error: --markdown prints every key of every model"),
    ],
)
def test_vaelab_config_refuses_bad_input_in_one_line_with_exit_2(capsys, args, message):
    code, out, err = vaelab(capsys, "config", *args)
    assert (code, out) == (2, "")
    assert err.startswith(message) and err.count("\n") == 1


def test_vaelab_models_shows_each_models_own_keys_with_default_and_meaning(capsys):
    code, out, err = vaelab(capsys, "models")
    assert code == 0, err
    assert all(len(line) <= 80 for line in out.splitlines())
    blocks = {block.split(":")[0]: block for block in out.split("\n\n")}
    assert set(blocks) == {"Keys every model takes (vaelab models NAME lists one model in full)"} | {
        entry.name for entry in registered_models()
    }
    assert "model.latent_dim = 32" in blocks["Keys every model takes (vaelab models NAME lists one model in full)"]
    assert "model.beta = 4.0                multiplies the per-image KL" in blocks["beta-vae"]
    assert "model.latent_dim = 10" in blocks["joint-vae"]  # a common key whose default it changes
    assert "model.hidden" not in blocks["vae"] and "model.free_bits = 0.0" in blocks["vae"]
    assert "model.k = 5" in blocks["iwae"] and "kl_warmup_steps" not in blocks["iwae"]  # refused: not listed
    assert blocks["ae"].rstrip().endswith("no keys of its own")


def test_vaelab_models_name_lists_every_key_of_that_model(capsys):
    code, out, err = vaelab(capsys, "models", "capacity-vae")
    assert code == 0, err
    listed = [line.split(" = ")[0].strip() for line in out.splitlines() if line.startswith("  model.")]
    keys = [f"model.{f.name}" for f in dataclasses.fields(model_entry("capacity-vae").config_cls)]
    refused = {"model.kl_warmup_steps", "model.kl_warmup_fraction"}  # capacity-vae refuses the warm-up
    assert listed == [k for k in keys if k not in refused]
    assert f"model.c_steps = {text(100_000)}" in out


def test_docs_settings_md_is_generated_from_the_config_classes():
    written = (ROOT / "docs/settings.md").read_text()
    assert written == reference_markdown(), (
        "docs/settings.md is out of date: vaelab config --markdown > docs/settings.md"
    )
    for entry in registered_models():
        assert f"\n### {entry.name}\n" in written
    assert "| `train.lr` | `0.001` | Adam's learning rate (the peak, under a warm-up or a schedule) |" in written
