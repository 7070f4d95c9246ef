"""A full disk on every write path: one line, exit 2, no temporaries left, earlier files whole, and the run
still resumes. The fault is injected where every write ends (``os.fsync`` of the file, as a filesystem with
delayed allocation reports it), and once for real on a small tmpfs."""

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_reliability import SRC, check_consistent
from vaelab import train
from vaelab.cli import main

pytestmark = pytest.mark.slow  # end to end: runs trained and resumed with a full disk injected

NO_SPACE = "error: no space left on the device"


@pytest.fixture
def disk_full(monkeypatch):
    """``disk_full(pattern)``: from now on, the first fsync of a file whose path matches ``pattern`` (a regex
    searched in the path of the temporary file being written) fails with ENOSPC."""
    real_fsync = os.fsync

    def arm(pattern: str) -> None:
        def fsync(fd: int) -> None:
            if re.search(pattern, os.readlink(f"/proc/self/fd/{fd}")):
                monkeypatch.setattr(os, "fsync", real_fsync)  # once: cleaning up may write again
                raise OSError(errno.ENOSPC, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return arm


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name.endswith(".tmp")]


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def trained(tiny_overrides):
    return train(None, [*tiny_overrides, "train.epochs=2", "train.keep=10"]).path


WRITES = [  # (a write while training resumes, a regex on its temporary's path, the file it replaces, if any)
    ("checkpoint-trainer-state", r"/\.epoch-0003\.[^/]*/\.trainer\.pt\.", None),
    ("checkpoint-weights", r"/\.epoch-0003\.[^/]*/\.model\.safetensors\.", None),
    ("published-weights", r"/\.model\.safetensors\.[^/]*$", "model.safetensors"),
    ("metrics", r"/\.metrics\.csv\.", "metrics.csv"),
    ("frame", r"/\.epoch-0003\.png\.", None),
    ("latent-statistics", r"/\.latent_stats\.csv\.", "latent_stats.csv"),
    ("gif", r"/\.training\.gif\.", "images/training.gif"),
    ("picture", r"/\.samples\.png\.", "images/samples.png"),
    ("report", r"/\.report\.html\.", "report.html"),
    ("eval-json", r"/\.eval\.json\.", None),
]


@pytest.mark.parametrize(("what", "pattern", "kept"), WRITES, ids=[w for w, _, _ in WRITES])
def test_a_full_disk_while_training_is_one_line_leaves_no_temporaries_and_the_run_resumes(
    what, pattern, kept, trained, disk_full, cli
):
    before = contents(trained)
    disk_full(pattern)
    code, err = cli("train", "--resume", trained, "train.epochs=4", *["--no-evaluate"] * (what != "eval-json"))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert lines[-1].startswith(NO_SPACE), err
    assert sum(line.startswith("error") for line in lines) == 1 and "Traceback" not in err
    assert temporaries(trained) == []
    after = contents(trained)
    assert set(before) <= set(after), "an earlier file was removed"
    if kept is not None:
        assert after[kept] == before[kept], f"{kept} changed though its write failed"
    check_consistent(trained)
    assert cli("train", "--resume", trained, "train.epochs=4", "--no-evaluate")[0] == 0
    assert check_consistent(trained) == 4


def test_a_full_disk_when_a_new_run_folder_is_made_leaves_nothing(tiny_overrides, tmp_path, disk_full, cli):
    disk_full(r"/\.config\.yaml\.")
    code, err = cli("train", *tiny_overrides)
    assert code == 2 and err.startswith(NO_SPACE), err
    assert list((tmp_path / "runs").iterdir()) == []


def test_an_eval_whose_eval_json_cannot_be_written_prints_its_results_first(trained, disk_full, capsys):
    before = (trained / "eval.json").read_bytes() if (trained / "eval.json").exists() else None
    disk_full(r"/\.eval\.json\.")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(trained), "--iw-samples", "0", "--no-probes", "--no-fid"])
    code, (out, err) = exit_info.value.code, capsys.readouterr()
    assert code == 2 and NO_SPACE in err, err
    assert "neg_elbo" in out, out
    assert temporaries(trained) == []
    assert ((trained / "eval.json").read_bytes() if (trained / "eval.json").exists() else None) == before


@pytest.mark.parametrize("target", ["conv.npy", "conv.labels.npy", "conv.test.npy", "conv.json"])
def test_a_full_disk_in_a_conversion_leaves_the_earlier_conversion_whole(target, tmp_path, disk_full, cli):
    rng = np.random.default_rng(0)
    for name, n in (("old", 6), ("new", 9)):
        x, y = rng.integers(0, 256, (2, n, 8, 8), dtype=np.uint8), np.arange(2 * n).reshape(2, n) % 3
        np.savez(tmp_path / f"{name}.npz", x=x[0], y=y[0], x_test=x[1], y_test=y[1])
    out = tmp_path / "data"
    assert cli("convert", f"npz:{tmp_path / 'old.npz'}", out / "conv.npy")[0] == 0
    before = contents(out)
    disk_full(r"/\.+" + re.escape(f"{target}."))
    code, err = cli("convert", f"npz:{tmp_path / 'new.npz'}", out / "conv.npy")
    assert code == 2 and err.startswith(NO_SPACE), err
    assert contents(out) == before


@pytest.mark.parametrize(
    "argv",
    [["sample", "RUN", "-n", "4", "-o", "OUT/s.png"], ["export", "RUN", "--format", "torchscript", "-o", "OUT/x"]],
    ids=["sample", "export"],
)
def test_a_full_disk_in_other_commands_is_one_line_and_leaves_no_temporaries(argv, trained, tmp_path, disk_full, cli):
    out = tmp_path / "out"
    out.mkdir()
    disk_full(r"/out/")
    code, err = cli(*[a.replace("RUN", str(trained)).replace("OUT", str(out)) for a in argv])
    assert code == 2 and err.startswith(NO_SPACE), err
    assert temporaries(out) == [] and not any(p.is_file() for p in out.rglob("*"))


def test_a_real_full_disk_stops_training_with_one_line_and_the_run_resumes_when_space_is_freed(trained, small_tmpfs):
    run_dir = small_tmpfs / "run"
    shutil.copytree(trained, run_dir)
    free = os.statvfs(small_tmpfs)
    weights = (run_dir / "model.safetensors").stat().st_size
    filler = small_tmpfs / "filler"
    filler.write_bytes(np.zeros(free.f_bavail * free.f_frsize - 3 * weights, dtype=np.uint8).tobytes())
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    command = [sys.executable, "-m", "vaelab", "train", "--resume", str(run_dir), "train.epochs=40", "--no-evaluate"]
    result = subprocess.run(command, capture_output=True, env=env, timeout=300)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.strip().splitlines()[-1].startswith(NO_SPACE) and "Traceback" not in err, err
    assert temporaries(run_dir) == []
    done = check_consistent(run_dir)
    filler.unlink()
    command[6] = f"train.epochs={done + 2}"
    result = subprocess.run(command, capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    assert check_consistent(run_dir) == done + 2
