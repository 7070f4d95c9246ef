"""The learning-rate schedule (train.lr_schedule, train.warmup_steps): the formula, what the loop's steps take,
and exact resume under it."""

import itertools
import math

import pytest
import torch

from vaelab import train
from vaelab.checkpoint import read_weights
from vaelab.errors import ConfigError
from vaelab.schedules import learning_rate


def test_warm_up_rises_linearly_then_constant_holds_and_cosine_falls_to_zero_at_the_last_step():
    lr, warmup, total = 2e-3, 4, 24
    assert [learning_rate(s, lr, "constant", warmup, total) for s in range(6)] == pytest.approx(
        [0.5e-3, 1e-3, 1.5e-3, 2e-3, 2e-3, 2e-3]
    )
    cosine = [learning_rate(s, lr, "cosine", warmup, total) for s in range(total + 3)]
    assert cosine[:4] == pytest.approx([0.5e-3, 1e-3, 1.5e-3, 2e-3])
    for s in range(warmup, total):  # lr (1 + cos(pi t)) / 2 written out, t the share of the decay done
        assert cosine[s] == pytest.approx(lr * (1 + math.cos(math.pi * (s - warmup) / (total - warmup))) / 2)
    assert cosine[14] == pytest.approx(lr / 2) and cosine[total:] == [0.0, 0.0, 0.0]
    assert all(later <= earlier for earlier, later in itertools.pairwise(cosine[warmup:]))
    assert learning_rate(0, lr, "constant", 0, total) == lr == learning_rate(0, lr, "cosine", 0, total)


@pytest.mark.slow
def test_every_step_of_a_run_takes_its_scheduled_rate(tiny_overrides, monkeypatch):
    seen = []
    step = torch.optim.Adam.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    run = train(None, [*tiny_overrides, "train.report=false", "train.lr_schedule=cosine", "train.warmup_steps=3"])
    total = len(seen)
    assert total > 6 and seen == pytest.approx([learning_rate(s, 1e-3, "cosine", 3, total) for s in range(total)])
    assert [row["lr"] for row in run.metrics][-1] == pytest.approx(seen[-1])


def interrupted_and_resumed(keys: list[str], at_epoch: int, monkeypatch, config=None):
    """A run of ``config`` (a file, or None: the defaults) with ``keys`` trained through, and the same run
    stopped by Ctrl+C as epoch ``at_epoch`` begins, then resumed by its folder alone."""
    from vaelab.errors import Interrupted
    from vaelab.loop import Loop

    full = train(config, [*keys, "train.name=full"])
    train_epoch = Loop.train_epoch

    def stopped(self, epoch, *args, **kwargs):
        if epoch == at_epoch:
            raise KeyboardInterrupt
        return train_epoch(self, epoch, *args, **kwargs)

    monkeypatch.setattr(Loop, "train_epoch", stopped)
    with pytest.raises(Interrupted):
        train(config, [*keys, "train.name=part"])
    monkeypatch.setattr(Loop, "train_epoch", train_epoch)
    return full, train(None, [], resume=full.path.parent / "part")


def assert_same_weights(a_run, b_run) -> None:
    a, b = (read_weights(run.path / "model.safetensors")[0] for run in (a_run, b_run))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_a_run_under_a_schedule_resumes_to_the_weights_of_an_uninterrupted_one(tiny_overrides, monkeypatch):
    keys = [*tiny_overrides, "train.report=false", "train.lr_schedule=cosine", "train.warmup_steps=5"]
    full, resumed = interrupted_and_resumed(keys, 2, monkeypatch)
    assert_same_weights(full, resumed)
    assert [r["lr"] for r in resumed.metrics] == [r["lr"] for r in full.metrics]


def test_a_bad_schedule_or_warm_up_is_refused_by_name():
    from vaelab.config import load_config

    with pytest.raises(ConfigError, match="lr_schedule"):
        load_config(None, ["train.lr_schedule=linear"])
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_config(None, ["train.warmup_steps=-1"])


@pytest.mark.slow
def test_the_saved_model_holds_the_moving_average_of_the_weights(tiny_overrides, monkeypatch):
    """train.ema: after step t, a <- a + (1 - d_t) (w - a) with d_t = min(ema, (1 + t) / (10 + t)), a starting at
    the initial weights; recomputed here from the weights around each optimizer step, it is what
    model.safetensors holds."""
    weights = []  # the initial weights, then those after each step
    step = torch.optim.Adam.step

    def recording(self, *args, **kwargs):
        current = lambda: [w.detach().clone() for g in self.param_groups for w in g["params"]]  # noqa: E731
        if not weights:
            weights.append(current())
        out = step(self, *args, **kwargs)
        weights.append(current())
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    run = train(None, [*tiny_overrides, "train.report=false", "train.ema=0.9", "train.epochs=2"])
    average = weights[0]
    for t, after in enumerate(weights[1:], start=1):
        d = min(0.9, (1 + t) / (10 + t))
        average = [a + (1 - d) * (w - a) for a, w in zip(average, after, strict=True)]
    saved = read_weights(run.path / "model.safetensors")[0]
    names = [n for n, w in run.model.named_parameters() if w.requires_grad]
    assert len(names) == len(average) and len(weights) > 10
    for name, a, last in zip(names, average, weights[-1], strict=True):
        torch.testing.assert_close(saved[name], a, rtol=0, atol=1e-6)
        assert not torch.allclose(saved[name], last), name  # the average, not the last step's weights


@pytest.mark.slow
def test_a_run_with_a_moving_average_resumes_to_the_weights_of_an_uninterrupted_one(tiny_overrides, monkeypatch):
    keys = [*tiny_overrides, "train.report=false", "train.ema=0.9"]
    full, resumed = interrupted_and_resumed(keys, 3, monkeypatch)
    assert_same_weights(full, resumed)
    assert [r["val_loss"] for r in resumed.metrics] == [r["val_loss"] for r in full.metrics]
