"""Slow end-to-end checks of what the family's models learn on real data (run by make test)."""

from pathlib import Path

import pytest

from vaelab import train
from vaelab.evaluate.conditional import conditional_sample_accuracy
from vaelab.evaluate.fid import train_classifier

pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).parent.parent / "configs"


# The target is 0.9 on both datasets, met at the full budget (bench/cvae_sample_accuracy.py: mnist-5k 0.915,
# Fashion-MNIST 0.911 after 40 epochs judged by a 30-epoch classifier). On mnist-5k the judge matters: the same
# CVAE's samples scored 0.899 / 0.914 / 0.918 with a 10 / 20 / 30-epoch classifier (test accuracy 0.936 / 0.950 /
# 0.966; AMD EPYC machine, 2026-12-02), so the test trains it for 20. Fashion-MNIST is left to the bench: a budget
# that reaches its floor here (10 epochs and a 3-epoch judge: 0.788) took over two minutes of make test's 15, and
# 3 epochs reach only 0.52; mnist-5k guards the same code.
BUDGETS = {  # dataset -> (overrides, classifier epochs, floor)
    "mnist-5k": (["data.binarize=dynamic", "train.epochs=40", "train.report=false", "train.frames=false"], 20, 0.9),
}


@pytest.mark.parametrize("dataset", list(BUDGETS))
def test_cvae_draws_the_requested_class(dataset, tmp_path):
    """A classifier trained here on the real training images labels at least the budget's floor of 1,000 CVAE
    samples (100 per class) as the class that was asked for."""
    overrides, classifier_epochs, floor = BUDGETS[dataset]
    overrides = [f"data.name={dataset}", "train.progress=never", f"train.out_dir={tmp_path}", *overrides]
    run = train(CONFIGS / "cvae-mlp.yaml", overrides)
    classifier, meta = train_classifier(run.data, epochs=classifier_epochs)
    result = conditional_sample_accuracy(run, classifier, per_class=100)
    classifier_accuracy = meta["test_accuracy"]
    print(f"{dataset}: CVAE sample accuracy {result['accuracy']:.3f} (classifier: {classifier_accuracy:.3f})")
    assert result["samples"] == 1000
    assert result["accuracy"] >= floor
