"""Training: run folder contents, exact resume, NaN handling, early stopping."""

import csv
import json
import math
import os
import pathlib
import pickle
import re
import warnings

import pytest
import torch

import vaelab.loop as loop_module
from vaelab import ConfigError, RunError, TrainingError, load_run, train
from vaelab.checkpoint import list_checkpoints, load_latest_checkpoint, read_trainer_state, read_weights
from vaelab.cli import main
from vaelab.data.batches import epoch_permutation

pytestmark = pytest.mark.slow  # end to end: every test trains a run folder


def weights(run_dir):
    return read_weights(run_dir / "model.safetensors")[0]


def test_training_writes_a_complete_run_folder(tiny_overrides):
    run = train(None, tiny_overrides + ["train.keep=2"])
    names = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "model.safetensors", "metrics.csv", "checkpoint", "images"} <= names
    with open(run.path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for column in [
        "train_loss",
        "train_recon",
        "train_kl",
        "val_loss",
        "val_recon",
        "val_kl",
        "seconds",
        "samples_per_s",
    ]:
        assert float(rows[-1][column]) == float(rows[-1][column])  # present and not NaN
    assert float(rows[-1]["train_loss"]) == pytest.approx(
        float(rows[-1]["train_recon"]) + float(rows[-1]["train_kl"]), rel=1e-5
    )
    assert len(list_checkpoints(run.path)) == 2  # train.keep=2


def test_loss_goes_down(tiny_overrides):
    run = train(None, tiny_overrides + ["train.epochs=6"])
    losses = [row["val_loss"] for row in run.metrics]
    assert losses[-1] < losses[0]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_overrides, tmp_path):
    full = train(None, tiny_overrides + ["train.name=full", "data.binarize=dynamic"])
    part = train(None, tiny_overrides + ["train.name=part", "data.binarize=dynamic", "train.epochs=1"])
    resumed = train(None, ["train.epochs=3"], resume=part.path)
    assert resumed.path == part.path
    a, b = weights(full.path), weights(resumed.path)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["epoch"] for r in resumed.metrics] == [1, 2, 3]
    assert [r["train_loss"] for r in resumed.metrics] == [r["train_loss"] for r in full.metrics]


def test_resume_refuses_to_change_the_model(tiny_overrides):
    run = train(None, tiny_overrides + ["train.epochs=1"])
    with pytest.raises(Exception, match="only train.\\* keys may change"):
        train(None, ["model.latent_dim=5"], resume=run.path)


def test_a_nan_in_a_batch_stops_training_and_keeps_the_last_checkpoint(tiny_overrides, monkeypatch):
    run = train(None, tiny_overrides + ["train.epochs=1"])
    before = weights(run.path)
    original = loop_module.Loop.batches

    def poisoned(self, epoch):
        for i, batch in enumerate(original(self, epoch)):
            if i == 2:
                batch.x = batch.x.clone()
                batch.x[0, 0, 0, 0] = float("nan")
            yield batch

    monkeypatch.setattr(loop_module.Loop, "batches", poisoned)
    with pytest.raises(
        TrainingError,
        match=r"non-finite recon and kl terms \(latent dimensions \[0, 1, 2\]\) at step \d+ \(epoch 2, batch 2\)"
        r".*checkpoint \(epoch 1\) is kept.*failure.json",
    ):
        train(None, ["train.epochs=2"], resume=run.path)
    after = weights(run.path)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.name for p in list_checkpoints(run.path)] == ["epoch-0001"]
    assert len(load_run(run.path).metrics) == 1


def test_early_stopping_stops_when_val_loss_stalls(tiny_overrides):
    run = train(None, tiny_overrides + ["train.epochs=30", "train.early_stopping=1", "train.lr=0.5"])
    assert len(run.metrics) < 30


def test_run_api_encodes_decodes_and_samples(tiny_overrides):
    run = train(None, tiny_overrides)
    x, _ = run.data.split("test")
    z = run.encode(x[:5])
    assert z.shape == (5, 3)
    assert run.decode(z).shape == (5, 1, 10, 10)
    assert run.reconstruct(x[:5].reshape(5, -1)).shape == (5, 1, 10, 10)
    assert run.sample(4).shape == (4, 1, 10, 10)
    with pytest.raises(ValueError, match="expected images of shape"):
        run.encode(torch.zeros(2, 7))


def poison_batches(monkeypatch, bad_batches):
    """Make the given (epoch, batch) pairs contain a NaN pixel."""
    original = loop_module.Loop.batches

    def poisoned(self, epoch):
        for i, batch in enumerate(original(self, epoch)):
            if (epoch, i) in bad_batches:
                batch.x = batch.x.clone()
                batch.x[:, 0, 0, 0] = float("nan")
            yield batch

    monkeypatch.setattr(loop_module.Loop, "batches", poisoned)


def test_failure_json_names_the_step_and_the_batch_indices(tiny_overrides, monkeypatch):
    poison_batches(monkeypatch, {(1, 3)})
    with pytest.raises(TrainingError):
        train(None, tiny_overrides + ["train.epochs=1"])
    failure = json.loads((pathlib.Path(tiny_overrides[-2].split("=")[1]) / "tiny" / "failure.json").read_text())
    assert failure["epoch"] == 1 and failure["batch"] == 3 and failure["where"] == "loss"
    expected = epoch_permutation(97, 0, 1)[48:64].tolist()  # batch 3 of size 16, seed 0
    assert failure["batch_indices"] == expected
    assert "recon" in failure["terms"]


def test_skip_policy_drops_bad_batches_and_counts_them(tiny_overrides, monkeypatch):
    poison_batches(monkeypatch, {(1, 1), (2, 0), (2, 4)})
    run = train(None, tiny_overrides + ["train.on_nonfinite=skip"])
    assert [row["skipped"] for row in run.metrics] == [1, 2, 0]
    assert all(math.isfinite(v) for row in run.metrics for v in row.values())


def test_skip_policy_stops_after_max_skips_in_a_row(tiny_overrides, monkeypatch):
    poison_batches(monkeypatch, {(1, 2), (1, 3), (1, 4)})
    with pytest.raises(TrainingError, match=r"3 batches in a row"):
        train(None, tiny_overrides + ["train.on_nonfinite=skip", "train.max_skips=3"])


def test_non_finite_gradient_names_the_parameter(tiny_overrides, monkeypatch):
    original = loop_module.Loop.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.model.decoder[0].weight.register_hook(lambda grad: grad * float("inf"))

    monkeypatch.setattr(loop_module.Loop, "__init__", init)
    with pytest.raises(TrainingError, match=r"non-finite decoder.0.weight gradient at step 1"):
        train(None, tiny_overrides + ["train.epochs=1"])


def test_gradient_clipping_bounds_the_update_and_the_steps_it_cut_are_counted(tiny_overrides, capsys):
    clipped = train(None, tiny_overrides + ["train.name=clipped", "train.grad_clip=1e-6", "train.epochs=1"])
    line = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch")][-1]
    free = train(None, tiny_overrides + ["train.name=free", "train.epochs=1"])
    assert clipped.metrics[0]["train_loss"] > free.metrics[0]["train_loss"]  # tiny steps learn less
    steps = int(clipped.metrics[0]["step"])
    assert clipped.metrics[0]["clipped"] == steps > 0 and line.endswith(f"| {steps} steps clipped")
    assert free.metrics[0]["clipped"] == 0 and "clipped" not in capsys.readouterr().err
    loose = train(None, tiny_overrides + ["train.name=loose", "train.grad_clip=1e9", "train.epochs=1"])
    assert loose.metrics[0]["clipped"] == 0 and loose.metrics[0]["train_loss"] == free.metrics[0]["train_loss"]


def test_resume_clears_stale_temporaries(tiny_overrides):
    run = train(None, tiny_overrides + ["train.epochs=2"])
    stale = run.path / "checkpoint" / ".epoch-0003.abc.tmp"
    stale.mkdir()
    (run.path / ".model.safetensors.xyz.tmp").write_bytes(b"half")
    train(None, ["train.epochs=3"], resume=run.path)
    assert not stale.exists() and not list(run.path.glob(".*.tmp"))


def test_resume_skips_a_damaged_checkpoint_and_says_so(tiny_overrides, capsys):
    run = train(None, tiny_overrides + ["train.epochs=2", "train.keep=2"])
    damaged = run.path / "checkpoint" / "epoch-0002" / "trainer.pt"
    damaged.write_bytes(damaged.read_bytes()[:200])  # cut short, as by a full disk
    train(None, ["train.epochs=3"], resume=run.path)
    err = capsys.readouterr().err
    assert "skipped damaged checkpoint epoch-0002" in err and "from epoch-0001" in err
    assert [r["epoch"] for r in load_run(run.path).metrics] == [1, 2, 3]


def test_a_trainer_state_of_pickled_objects_is_refused_in_our_words_alone(tmp_path):
    path = tmp_path / "trainer.pt"
    path.write_bytes(pickle.dumps(pathlib.Path("x"), protocol=4))  # an object safe loading refuses
    with warnings.catch_warnings(record=True) as caught, pytest.raises(RunError, match="safe loading refuses"):
        warnings.simplefilter("always")
        read_trainer_state(path)
    assert [str(w.message) for w in caught] == []


def test_resume_before_the_first_checkpoint_starts_from_the_beginning(tiny_overrides):
    reference = train(None, tiny_overrides + ["train.name=reference"])
    interrupted = reference.path.parent / "interrupted"
    interrupted.mkdir()
    (interrupted / "config.yaml").write_text((reference.path / "config.yaml").read_text())
    resumed = train(None, [], resume=interrupted)
    a, b = weights(reference.path), weights(resumed.path)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_a_kill_between_the_last_checkpoint_and_the_weights_file_publishes_the_checkpoint(
    tiny_overrides,
):
    """A kill after checkpoint/epoch-0003 is renamed into place and before model.safetensors is replaced
    leaves it at epoch 2: resuming the finished run must bring it forward."""
    reference = train(None, tiny_overrides + ["train.name=reference"])
    killed = train(None, tiny_overrides + ["train.name=killed", "train.keep=2"])
    checkpoint = killed.path / "checkpoint"
    assert load_latest_checkpoint(killed.path)[2]["epochs_since_best"] == 0  # epoch 3 is also the best
    (killed.path / "model.safetensors").write_bytes((checkpoint / "epoch-0002" / "model.safetensors").read_bytes())
    assert not torch.equal(weights(killed.path)["decoder.0.weight"], weights(reference.path)["decoder.0.weight"])
    train(None, [], resume=killed.path)
    a, b = weights(reference.path), weights(killed.path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (checkpoint / "best.safetensors").exists()  # the best weights are model.safetensors


@pytest.fixture
def val_losses(monkeypatch):
    """Validation losses 3, 1, 2, 4 in epochs 1-4: epoch 2 sets the best."""
    losses = {1: 3.0, 2: 1.0, 3: 2.0, 4: 4.0}
    monkeypatch.setattr(
        loop_module.Loop, "validate", lambda self: {"loss": losses[self.epoch + 1], "recon": 0.0, "kl": 0.0}
    )


def test_a_finished_run_keeps_one_checkpoint_and_prints_the_folders_size(tiny_overrides, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *tiny_overrides])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    run_dir = tmp_path / "runs" / "tiny"
    assert load_latest_checkpoint(run_dir)[2]["epochs_since_best"] == 0  # the last epoch is the best
    assert len(list(run_dir.rglob("trainer.pt"))) == 1  # one optimizer state
    weight_files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.safetensors"))
    assert weight_files == ["checkpoint/epoch-0003/model.safetensors", "model.safetensors"]
    printed = re.search(r"run folder size: ([\d.]+) MB, of which checkpoint/ \(for --resume\) ([\d.]+) MB", out)
    assert printed, out
    for folder, megabytes in ((run_dir, printed[1]), (run_dir / "checkpoint", printed[2])):
        size = sum(len(p.read_bytes()) for p in folder.rglob("*") if p.is_file())
        assert abs(float(megabytes) - size / 1e6) <= 0.005, (folder, megabytes, size)


def test_best_weights_are_kept_only_while_an_earlier_epoch_has_them(tiny_overrides, val_losses):
    run = train(None, tiny_overrides + ["train.epochs=2", "train.keep=4"])
    best = run.path / "checkpoint" / "best.safetensors"
    assert not best.exists()  # epoch 2 is the best: model.safetensors holds its weights
    train(None, ["train.epochs=4"], resume=run.path)
    assert best.read_bytes() == (run.path / "checkpoint" / "epoch-0002" / "model.safetensors").read_bytes()
    assert (run.path / "model.safetensors").read_bytes() != best.read_bytes()


def test_resume_after_a_kill_before_publishing_keeps_the_best_weights_of_the_epoch_before(tiny_overrides, val_losses):
    """A kill after checkpoint/epoch-0003 and before it is published leaves model.safetensors at epoch 2, the
    best, and no best.safetensors: resuming writes epoch 2's weights as best.safetensors, then epoch 3's."""
    run = train(None, tiny_overrides + ["train.keep=2"])
    checkpoint = run.path / "checkpoint"
    epoch_2, epoch_3 = ((checkpoint / f"epoch-000{e}" / "model.safetensors").read_bytes() for e in (2, 3))
    (run.path / "model.safetensors").write_bytes(epoch_2)
    (checkpoint / "best.safetensors").unlink()
    train(None, [], resume=run.path)
    assert (checkpoint / "best.safetensors").read_bytes() == epoch_2
    assert (run.path / "model.safetensors").read_bytes() == epoch_3


def test_resume_keeps_best_weights_of_an_earlier_epoch(tiny_overrides):
    """When the checkpoint resumed from did not set the best validation loss, best.safetensors stays."""
    run = train(None, tiny_overrides + ["train.keep=2"])
    last = run.path / "checkpoint" / "epoch-0003"
    state = torch.load(last / "trainer.pt", weights_only=True)
    state["epochs_since_best"] = 1  # as if epoch 2 had the best validation loss
    torch.save(state, last / "trainer.pt")
    best = run.path / "checkpoint" / "best.safetensors"
    best.write_bytes((run.path / "checkpoint" / "epoch-0002" / "model.safetensors").read_bytes())
    kept = best.read_bytes()
    train(None, [], resume=run.path)
    assert best.read_bytes() == kept
    assert (run.path / "model.safetensors").read_bytes() == (last / "model.safetensors").read_bytes()


def test_resume_with_a_new_learning_rate_uses_it(tiny_overrides, tmp_path):
    part = train(None, [*tiny_overrides, "train.epochs=1"])
    resumed = train(None, ["train.epochs=2", "train.lr=0.0005"], resume=part.path)
    trainer_state = load_latest_checkpoint(resumed.path)[2]
    assert trainer_state["optimizer"]["param_groups"][0]["lr"] == 0.0005
    assert resumed.metrics[-1]["lr"] == 0.0005


@pytest.mark.parametrize("override", ["train.out_dir=/tmp/elsewhere", "train.name=other", "train.name =other"])
def test_resume_refuses_keys_that_name_a_new_folder(tiny_overrides, tmp_path, override):
    part = train(None, [*tiny_overrides, "train.epochs=1"])
    with pytest.raises(ConfigError, match=f"{override.split('=')[0].strip()} names a new run's folder"):
        train(None, ["train.epochs=2", override], resume=part.path)


def test_run_folders_and_files_get_the_permissions_mkdir_and_open_would_give(tiny_overrides):
    """Atomic writes go through mkstemp (0600) and mkdtemp (0700); the renamed results follow the umask."""
    run = train(None, [*tiny_overrides, "train.epochs=1"])
    mask = os.umask(0)
    os.umask(mask)
    paths = [run.path, run.path / "config.yaml", run.path / "model.safetensors", run.path / "metrics.csv",
             *run.path.glob("checkpoint/epoch-*"), *run.path.glob("checkpoint/epoch-*/*")]  # fmt: skip
    assert len(paths) >= 6
    for path in paths:
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~mask, path


def test_a_warm_up_longer_than_the_run_is_named_with_where_its_ramp_stops(tiny_overrides, capsys):
    run = train(None, tiny_overrides + ["train.epochs=2", "model.kl_warmup_steps=1000", "train.warmup_steps=5"])
    err = capsys.readouterr().err
    steps = int(run.metrics[-1]["step"])
    assert f"model.kl_warmup_steps (1000) is longer than this run ({steps} steps)" in err
    assert f"stops at {steps / 1000:.2f} of the full value" in err
    assert "train.warmup_steps" not in err  # 5 steps end within the run


def test_a_kl_warmup_shows_each_epochs_mean_kl_weight(tiny_overrides, capsys):
    run = train(None, tiny_overrides + ["train.epochs=2", "model.kl_warmup_fraction=1.0"])
    weights = [row["train_kl_weight"] for row in run.metrics]
    assert 0 < weights[0] < 0.5 < weights[1] < 1  # the mean of a linear ramp over each half of the run
    err = capsys.readouterr().err
    assert f"at weight {weights[0]:.2f}" in err and f"at weight {weights[1]:.2f}" in err
