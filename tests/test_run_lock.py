"""A run folder has one writer: a second process that would write into a run folder in use is refused with one
line naming the holder, and a holder killed with SIGKILL leaves no stale lock."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.test_bad_inputs import tree_hash
from tests.test_reliability import SRC, read_stderr_until
from vaelab import train

pytestmark = pytest.mark.slow  # end to end: `vaelab` processes contending for a run folder

ENV = {**os.environ, "PYTHONPATH": str(SRC.parent)}


def vaelab(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vaelab", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=ENV)  # fmt: skip


@pytest.fixture
def trained(tiny_overrides):
    return train(None, tiny_overrides).path


@pytest.fixture
def held(trained):
    """Another process holding ``trained``'s lock (as a training would): its Popen."""
    code = textwrap.dedent(f"""
        import sys, time
        from vaelab.lock import run_lock
        with run_lock({str(trained)!r}):
            print("held", file=sys.stderr, flush=True)
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, env=ENV)
    assert holder.stderr.readline() == b"held\n"
    yield holder
    holder.kill()
    holder.wait()


def rows(run_dir) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def test_a_resume_while_the_run_trains_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(
    tiny_overrides, tmp_path
):
    overrides = [o for o in tiny_overrides if not o.startswith("train.epochs")]
    first = vaelab("train", *overrides, "train.epochs=100000", "train.threads=1", "--no-evaluate")
    run_dir = tmp_path / "runs" / "tiny"
    try:
        read_stderr_until(first, b"\nepoch ", times=2)  # two checkpoints written: it is training
        second = vaelab("train", "--resume", run_dir, "train.lr=0.5", "train.epochs=3", "--no-evaluate")
        _, err = second.communicate(timeout=120)
        lines = err.decode().strip().splitlines()
        assert second.returncode == 2, err
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert f"pid {first.pid}" in lines[0] and "vaelab train" in lines[0], lines[0]
        assert first.poll() is None, "the first training stopped"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        first.kill()
        first.wait()
    assert "lr: 0.5" not in (run_dir / "config.yaml").read_text()
    assert (run_dir / ".lock").exists()  # left by the killed holder: the system has freed its lock
    done = len(rows(run_dir))
    resumed = vaelab("train", "--resume", run_dir, f"train.epochs={done + 1}", "--no-evaluate", "train.report=false")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    assert rows(run_dir) == list(range(1, done + 2))
    assert not (run_dir / ".lock").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--resume", "RUN"],
        ["eval", "RUN", "--iw-samples", "0", "--no-probes", "--no-fid"],
        ["report", "RUN"],
        ["sample", "RUN", "-n", "4"],
        ["sample", "RUN", "-n", "4", "--prior", "gmm", "-o", "OUT/s.png"],
        ["reconstruct", "RUN", "-n", "4", "-o", "RUN/images/mine.png"],
        ["export", "RUN", "--format", "torchscript"],
    ],
    ids=lambda argv: "-".join(a for a in argv if not a.startswith(("RUN", "OUT", "-")) and not a.isdigit()),
)
def test_commands_that_write_into_a_run_in_use_are_refused_and_change_nothing(argv, trained, held, cli, tmp_path):
    before = tree_hash(trained)
    code, err = cli(*[a.replace("RUN", str(trained)).replace("OUT", str(tmp_path)) for a in argv])
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and f"is being written by pid {held.pid}" in lines[0], err
    assert tree_hash(trained) == before


def test_commands_that_only_read_a_run_in_use_still_work(trained, held, cli, tmp_path):
    assert cli("sample", trained, "-n", "4", "-o", tmp_path / "s.png")[0] == 0
    assert cli("reconstruct", trained, "-n", "4", "-o", tmp_path / "r.png")[0] == 0
    assert (tmp_path / "s.png").exists() and (tmp_path / "r.png").exists()


def test_the_lock_is_released_and_its_file_removed_when_a_command_ends(trained, cli):
    assert cli("report", trained)[0] == 0
    assert not (trained / ".lock").exists()
    assert cli("report", trained)[0] == 0


def test_a_run_on_a_read_only_filesystem_is_evaluated_its_results_printed_then_one_line(trained, small_tmpfs, capsys):
    from vaelab.cli import main

    run_dir = small_tmpfs / "run"
    shutil.copytree(trained, run_dir)
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], capture_output=True)
    if remounted.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remounted.stderr.decode().strip()}")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(run_dir), "--iw-samples", "0", "--no-probes", "--no-fid"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, err
    assert "neg_elbo" in out
    assert err.strip().splitlines()[-1] == (
        f"error: cannot use {run_dir / 'eval.json'}: Read-only file system; check the path and its permissions"
    )
    assert sum(line.startswith("error") for line in err.splitlines()) == 1
