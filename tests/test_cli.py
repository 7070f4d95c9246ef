"""The vaelab command end to end, in real subprocesses: outputs, exit codes and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # end to end: every test runs `vaelab` in a subprocess


def vaelab(*args, cwd=None, env=None):
    """``python -m vaelab ARGS`` in a subprocess (other test files import this)."""
    return subprocess.run(
        [sys.executable, "-m", "vaelab", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def assert_user_error(result, *fragments):
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_picture(path, min_std=5.0):
    image = np.asarray(Image.open(path))
    assert image.ndim == 2 and min(image.shape) > 20
    assert image.std() > min_std  # not blank, not constant
    return image


def test_train_eval_sample_reconstruct(tiny_overrides, tmp_path):
    result = vaelab("train", *tiny_overrides)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "tiny"
    assert f"run folder: {run}" in result.stdout

    result = vaelab("eval", run)
    assert result.returncode == 0, result.stderr
    report = json.loads((run / "eval.json").read_text())["test"]
    assert report["n_images"] == 12  # 10% of 120, carved with a fixed seed
    assert report["neg_elbo"]["mean"] == pytest.approx(report["recon"]["mean"] + report["kl"]["mean"])
    assert "neg_elbo" in result.stdout

    result = vaelab("sample", run, "-n", 16, "-o", tmp_path / "s.png", "--scale", 3)
    assert result.returncode == 0, result.stderr
    samples = assert_picture(tmp_path / "s.png")
    assert samples.shape == (3 * (4 * 12 + 2), 3 * (4 * 12 + 2))  # 4x4 tiles of 10 px + 2 px borders

    result = vaelab("reconstruct", run, "-n", 8, "-o", tmp_path / "r.png", "--scale", 1)
    assert result.returncode == 0, result.stderr
    recon = assert_picture(tmp_path / "r.png")
    assert recon.shape[0] == 3 * 12 + 2  # grey originals, their binarised draws (the targets), reconstructions
    assert recon.shape[1] > 16 * 12 + 2  # ... named on the left


def test_pictures_without_an_output_leave_the_runs_own_pictures_as_they_are(tiny_overrides, tmp_path):
    assert vaelab("train", *tiny_overrides, "train.epochs=1", "--no-evaluate").returncode == 0
    images = tmp_path / "runs" / "tiny" / "images"
    record = {name: (images / name).read_bytes() for name in ("samples.png", "reconstructions.png")}
    written = []
    for command in ("sample", "sample", "reconstruct"):
        result = vaelab(command, images.parent, "--seed", len(written) + 1)
        assert result.returncode == 0, result.stderr
        written.append(result.stdout.strip().removeprefix("written: "))
    assert written == [str(images / "adhoc" / name) for name in ("samples-1.png", "samples-2.png",
                                                                  "reconstructions-1.png")]  # fmt: skip
    assert {name: (images / name).read_bytes() for name in record} == record


def test_a_model_without_a_density_reports_its_reconstruction_nll_not_an_elbo(tiny_overrides, tmp_path):
    result = vaelab("train", *tiny_overrides, "model.name=ae", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    assert "val reconstruction NLL" in result.stderr and "-ELBO" not in result.stderr
    summary = next(line for line in result.stdout.splitlines() if line.startswith("test "))
    assert summary.startswith("test reconstruction NLL: ") and "no density" in summary and "KL" not in summary
    report = (tmp_path / "runs" / "tiny" / "report.html").read_text()
    assert "val reconstruction NLL" in report and "test reconstruction NLL" in report
    assert "val -ELBO" not in report and "test -ELBO" not in report


def test_train_says_when_the_run_has_collapsed(tiny_overrides):
    result = vaelab("train", *tiny_overrides, "model.name=beta-vae", "model.beta=50", "train.report=false")
    assert result.returncode == 0, result.stderr
    assert "warning: posterior collapse: only 0 of 3 latent units are active; consider KL warm-up" in result.stderr


def test_models_lists_the_registry():
    result = vaelab("models")
    assert result.returncode == 0
    assert "vae" in result.stdout and "ae" in result.stdout and "model.latent_dim" in result.stdout


def test_datasets_lists_availability():
    result = vaelab("datasets")
    assert result.returncode == 0, result.stderr
    for name in ["fashion-mnist", "mnist", "mnist-5k", "digits"]:
        assert name in result.stdout


def test_the_usage_docs_datasets_table_lists_what_vaelab_datasets_lists():
    usage = (Path(__file__).parents[1] / "docs" / "usage.md").read_text()
    table = usage.split("$ vaelab datasets\n", 1)[1].split("```", 1)[0].splitlines()[1:]  # rows below the header
    listed = [line.split()[0] for line in vaelab("datasets").stdout.splitlines()[2:]]  # below header and rule
    assert [line.split()[0] for line in table] == listed


def wrapped_badly(lines: list[str], width: int) -> list[str]:
    """Lines of one wrapped text (a cell of ``width`` columns) that end early: the next line's first word fits."""
    pairs = zip(lines, lines[1:], strict=False)
    return [a for a, b in pairs if b.split() and len(a.rstrip()) + 1 + len(b.split()[0]) <= width]


def test_help_wraps_whole_sentences_at_80_columns(monkeypatch, capsys):
    from vaelab.cli import main

    def help_of(*command):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        return capsys.readouterr().out

    monkeypatch.setenv("COLUMNS", "80")
    panel = help_of().split("Commands")[1].split("╰")[0].splitlines()[1:]  # rows "│ name  text │"
    start = panel[0].index(panel[0].split()[2])  # where the commands' texts start
    entries: dict[str, list[str]] = {}  # command -> the lines of its text
    for row in panel:
        name, text = row[:start].strip(" │"), row[start:].rstrip(" │")
        if name:
            entries[name] = []
        entries[next(reversed(entries))].append(text)
    width = len(panel[0]) - start - 2  # up to the border and its space
    assert len(entries) == 16 and [line for lines in entries.values() for line in wrapped_badly(lines, width)] == []
    for command in entries:  # each command's own description, paragraph by paragraph
        head = "\n".join(line.strip() for line in help_of(command).split("╭")[0].splitlines())
        assert [line for p in head.strip().split("\n\n") for line in wrapped_badly(p.splitlines(), 78)] == [], command


@pytest.mark.parametrize("command", ["sample", "reconstruct", "compare"])
def test_the_seeds_range_is_never_cut_at_80_columns(command, cli, capsys, monkeypatch):
    from vaelab.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "0..2^63-1" in capsys.readouterr().out
    run = [] if command == "compare" else ["runs/x"]
    for seed in (-1, 2**63):
        code, err = cli(command, *run, "--seed", seed)
        message = f"error: Invalid value for '--seed': {seed} is not in the range 0..2^63-1"
        assert code == 2 and err == f"{message} (see vaelab {command} --help)\n"


def test_unknown_config_key_is_one_line_with_a_suggestion(tmp_path):
    result = vaelab("train", "model.lattent_dim=4", f"train.out_dir={tmp_path}")
    assert_user_error(result, "Unknown config key: model.lattent_dim", "did you mean model.latent_dim?")


def test_missing_run_folder(tmp_path):
    assert_user_error(vaelab("eval", tmp_path / "nope"), "does not exist")


def test_folder_that_is_not_a_run(tmp_path):
    assert_user_error(vaelab("sample", tmp_path), "not a run folder", "config.yaml is missing")


def test_corrupt_data_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert_user_error(vaelab("train", f"data.name=npz:{bad}", f"train.out_dir={tmp_path}"), "bad.npz")


def test_debug_shows_the_traceback(tmp_path):
    result = vaelab("--debug", "eval", tmp_path / "nope")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_conditional_sampling_by_label(tiny_overrides, tmp_path):
    result = vaelab("train", *tiny_overrides, "model.conditional=true", "train.epochs=1", "--no-evaluate")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "tiny"
    result = vaelab("sample", run, "--label", 1, "-n", 4, "-o", tmp_path / "one.png", "--scale", 1)
    assert result.returncode == 0, result.stderr
    assert assert_picture(tmp_path / "one.png").shape == (2 * 12 + 2, 2 * 12 + 2)
    result = vaelab("sample", run, "--grid-by-label", "-n", 5, "-o", tmp_path / "grid.png", "--scale", 1)
    assert result.returncode == 0, result.stderr
    grid = assert_picture(tmp_path / "grid.png")
    assert grid.shape[0] == 3 * 12 + 2 and grid.shape[1] > 5 * 12 + 2  # one row per class, named on the left
    assert_user_error(vaelab("sample", run, "--label", 7), "--label 7 is out of range", "0..2")
    assert_user_error(vaelab("sample", run), "is a conditional model", "--label")


def test_label_on_an_unconditional_run_is_an_error(tiny_overrides, tmp_path):
    assert vaelab("train", *tiny_overrides, "train.epochs=1", "--no-evaluate").returncode == 0
    assert_user_error(vaelab("sample", tmp_path / "runs" / "tiny", "--label", 1), "is not a conditional model")


def test_commands_start_without_importing_the_compiler():
    """torch._dynamo costs ~1.6 s to import; only train.compile=true needs it (it is imported then)."""
    code = "import sys, vaelab.cli; print('torch._dynamo' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
