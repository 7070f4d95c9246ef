"""Config files, overrides and the errors users see for bad keys and values."""

from pathlib import Path

import pytest

from vaelab.config import Config, apply_overrides, config_from_dict, load_config
from vaelab.errors import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_build_the_default_vae():
    config = load_config()
    assert (config.model.name, config.model.latent_dim, config.data.name) == ("vae", 32, "fashion-mnist")


def test_overrides_set_nested_keys_with_yaml_types():
    config = load_config(None, ["model.latent_dim=8", "train.lr=3e-4", "model.hidden=[64, 32]", "data.limit=100"])
    assert config.model.latent_dim == 8
    assert config.train.lr == pytest.approx(3e-4)
    assert config.model.hidden == [64, 32]
    assert config.data.limit == 100


def test_unknown_key_suggests_the_nearest_valid_one():
    with pytest.raises(ConfigError, match=r"Unknown config key: model.lattent_dim \(did you mean model.latent_dim\?\)"):
        load_config(None, ["model.lattent_dim=8"])


def test_unknown_section_is_an_error():
    with pytest.raises(ConfigError, match="Unknown config key: trian"):
        config_from_dict({"trian": {"epochs": 3}})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="train.epochs must be int; got 'many'"):
        load_config(None, ["train.epochs=many"])


def test_bad_choice_lists_the_choices():
    with pytest.raises(
        ConfigError,
        match=r"data.binarize must be one of none, static, dynamic; got 'dynamc' \(did you mean dynamic\?\)",
    ):
        load_config(None, ["data.binarize=dynamc"])


def test_non_positive_values_are_rejected():
    with pytest.raises(ConfigError, match="model.latent_dim must be positive"):
        load_config(None, ["model.latent_dim=0"])


def test_unknown_model_name_suggests_a_registered_one():
    with pytest.raises(ConfigError, match=r"'vea' is not a known model \(did you mean vae\?\)"):
        load_config(None, ["model.name=vea"])


def test_malformed_override_explains_the_form():
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        apply_overrides({}, ["train.epochs"])


def test_missing_and_invalid_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_config(None, ["model.name=ae", "model.latent_dim=5", "seed=7"])
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    assert isinstance(load_config(path), Config)


def test_shipped_configs_exist():
    assert {p.name for p in CONFIGS} >= {"vae-mlp.yaml", "vae-conv.yaml", "ae-mlp.yaml"}


CONFIG_TEXT = "# a comment: día\nmodel:\n  latent_dim: 7\ntrain:\n  lr: 0.002\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_config_files_in_the_encodings_editors_write_are_read(tmp_path, encoding):
    data = CONFIG_TEXT.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # with the byte-order mark an editor writes
        data = "\ufeff".encode(encoding) + data
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    config = load_config(path)
    assert (config.model.latent_dim, config.train.lr) == (7, 0.002)


def test_a_config_file_not_in_utf_8_says_so_with_the_fix(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(CONFIG_TEXT.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"c.yaml is not UTF-8 text \(byte \d+.*save it as UTF-8"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  lr: 0.1\n  lr: 0.2\n", "'lr' is given twice \\(lines 2 and 3\\)"),
        ("train: {}\ntrain: {}\n", "'train'"),
    ],
)
def test_a_key_given_twice_is_refused_naming_it(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"c.yaml: key {key}"):
        load_config(path)


def test_a_directory_given_as_the_config_file_is_named_as_such(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a directory"):
        load_config(tmp_path)


def test_a_run_folder_whose_config_yaml_has_a_repeated_key_is_refused(tmp_path):
    from vaelab.errors import RunError
    from vaelab.run import read_run_config

    (tmp_path / "config.yaml").write_text("seed: 1\nseed: 2\n")
    with pytest.raises(RunError, match="key 'seed' is given twice"):
        read_run_config(tmp_path)
