"""Ctrl+C (SIGINT) and SIGTERM at any moment, start-up included: one line, exit code 130, nothing torn, and the
line gives the exact command that resumes the run."""

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from tests.test_disk_full import temporaries
from tests.test_reliability import SRC, check_consistent, read_stderr_until

pytestmark = pytest.mark.slow  # end to end: signals sent to `vaelab train` processes

ENV = {**os.environ, "PYTHONPATH": str(SRC.parent)}
PYTHON_VAELAB = [sys.executable, "-m", "vaelab"]
EPOCHS = 40


def default_sigint() -> None:
    """In the child before exec: SIGINT to its default, so that Python installs its KeyboardInterrupt handler also
    when the tests run as a background job (whose shell starts them with SIGINT ignored, which children inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [*PYTHON_VAELAB, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, preexec_fn=default_sigint
    )


def finish(process: subprocess.Popen, log: bytes = b"") -> str:
    _, err = process.communicate(timeout=300)
    return (log + err).decode()


def resume_command(line: str) -> list[str]:
    """The command an "interrupted; resume with: vaelab train --resume RUN" line gives, run as python -m vaelab."""
    words = shlex.split(line.split("resume with: ", 1)[1])
    assert words[:3] == ["vaelab", "train", "--resume"], line
    return [*PYTHON_VAELAB, *words[1:]]


@pytest.mark.parametrize("which", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_training_is_one_line_exit_130_and_the_printed_command_resumes_it(
    which, tiny_overrides, tmp_path
):
    overrides = [o for o in tiny_overrides if not o.startswith("train.epochs")]
    process = start("train", *overrides, f"train.epochs={EPOCHS}", "train.threads=1", "--no-evaluate")
    log = read_stderr_until(process, b"\nepoch ", times=2)
    process.send_signal(which)
    err = finish(process, log)
    run_dir = tmp_path / "runs" / "tiny"
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        f"interrupted; resume with: vaelab train --resume {shlex.quote(str(run_dir))}"
    ), err
    assert temporaries(run_dir) == []
    check_consistent(run_dir)
    assert not (run_dir / ".lock").exists()
    resumed = subprocess.run(resume_command(err.strip().splitlines()[-1]), capture_output=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert check_consistent(run_dir) == EPOCHS


@pytest.mark.parametrize("delay", [0.25, 0.6, 1.5])  # not the interpreter's own first ~50 ms, before any of ours
@pytest.mark.parametrize("which", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_is_one_line_and_exit_130(which, delay, tiny_overrides, tmp_path):
    process = start("train", *tiny_overrides, "--no-evaluate")
    time.sleep(delay)  # in the interpreter's imports, torch's, the data's loading or the first epoch
    process.send_signal(which)
    err = finish(process)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("interrupted"), err
    run_dir = tmp_path / "runs" / "tiny"
    if run_dir.exists():  # made before the signal: resumable, and the line says how
        assert "resume with" in last, err
        resumed = subprocess.run(resume_command(last), capture_output=True, env=ENV, timeout=300)
        assert resumed.returncode == 0, resumed.stderr.decode()
        assert check_consistent(run_dir) == 3
    else:
        assert last == "interrupted"


INTERRUPTED_IN_EXEC = """
import os, signal
import vaelab.data
from vaelab.__main__ import run

def available_datasets(data_dir):
    exec("os.kill(os.getpid(), signal.SIGTERM)\\nwhile True:\\n    pass")  # the handler raises inside the exec'd string

vaelab.data.available_datasets = available_datasets
run()
"""


def test_an_interrupt_that_lands_in_exec_d_code_still_exits_130_under_python_m(tmp_path):
    """dataclasses and namedtuple exec their methods' source, and torch imports such modules lazily mid-run: a signal
    landing there made `python -m vaelab` die by SIGINT (exit -2) after printing its line."""
    (tmp_path / "interrupted_in_exec.py").write_text(INTERRUPTED_IN_EXEC)
    env = {**ENV, "PYTHONPATH": f"{SRC.parent}{os.pathsep}{tmp_path}"}
    done = subprocess.run(
        [sys.executable, "-m", "interrupted_in_exec", "datasets"], capture_output=True, env=env, timeout=300
    )
    assert done.returncode == 130, done.stderr.decode()
    assert done.stderr.decode().strip().splitlines()[-1] == "interrupted"
