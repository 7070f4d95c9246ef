"""The bad-input corpus: every case gives one clear line on stderr, exit code 2, and leaves every existing
run folder byte for byte as it was. A hypothesis test mutates valid files at random for the same property."""

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bad_inputs.make_corpus import CASES, write_corpus
from vaelab import train
from vaelab.cli import main
from vaelab.data import load_dataset, read_idx, write_idx
from vaelab.errors import VaelabError


@pytest.fixture(scope="module")
def valid_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("valid")
    overrides = ["data.name=digits", "model.latent_dim=3", "model.hidden=[32]", "train.epochs=2",
                 "train.progress=never", f"train.out_dir={out}", "train.name=valid"]  # fmt: skip
    return train(None, overrides).path


def tree_hash(*folders: Path) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_clear_line_exit_2_and_changes_nothing(case, valid_run, tmp_path, cli):
    ((_, folder),) = write_corpus(tmp_path, valid_run, only=case.name)
    before = tree_hash(valid_run, folder)
    code, err = cli(*case.argv(folder, valid_run))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.expect in lines[0], lines[0]
    assert tree_hash(valid_run, folder) == before
    assert not (folder / "payload-ran").exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_randomly_mutated_idx_bytes_load_or_raise_a_data_error(data, tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path.write_bytes(bytes(raw))
    with contextlib.suppress(VaelabError):
        read_idx(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_randomly_mutated_npz_bytes_load_or_raise_a_clear_error(data, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8), y=np.arange(4))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    with contextlib.suppress(VaelabError):
        load_dataset(f"npz:{path}", val_fraction=0.25, test_fraction=0.25)


def test_help_exits_0_and_bare_vaelab_shows_it_with_exit_2(capsys):
    for argv, code in ([["--help"], 0], [["sample", "--help"], 0], [[], 2]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == code and "Usage: vaelab" in capsys.readouterr().out, argv


def test_ctrl_c_prints_interrupted_and_exits_130(cli, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("vaelab.data.available_datasets", interrupted)
    assert cli("datasets") == (130, "interrupted\n")


def test_an_os_error_on_no_named_path_is_not_passed_off_as_a_user_error(cli, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(24, "Too many open files")  # no file name: a real fault, shown with its traceback

    monkeypatch.setattr("vaelab.data.available_datasets", broken)
    with pytest.raises(OSError, match="Too many open files"):
        cli("datasets")
