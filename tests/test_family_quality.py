"""Slow end-to-end checks of what the family's models learn on real data (run by make test)."""

from pathlib import Path

import pytest

from vaelab import train
from vaelab.evaluate.conditional import conditional_sample_accuracy
from vaelab.evaluate.fid import train_classifier

pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).parent.parent / "configs"


# The target is 0.9 on both datasets. mnist-5k reaches it (0.931 measured); Fashion-MNIST does not yet
# (0.724 measured with this config and 10 epochs; its classifier itself is 0.864 on real test images, and the
# sandal class is the one the classifier rarely recognises in samples), so its floor guards against regressions.
FLOORS = {"mnist-5k": 0.9, "fashion-mnist": 0.65}


@pytest.mark.parametrize(("dataset", "epochs"), [("mnist-5k", 40), ("fashion-mnist", 10)])
def test_cvae_draws_the_requested_class(dataset, epochs, tmp_path):
    """A classifier trained here on the real training images labels at least FLOORS[dataset] of 1,000 CVAE
    samples (100 per class) as the class that was asked for."""
    overrides = [f"data.name={dataset}", f"train.epochs={epochs}", "train.progress=never", f"train.out_dir={tmp_path}"]
    run = train(CONFIGS / "cvae-mlp.yaml", overrides)
    classifier, meta = train_classifier(run.data)
    result = conditional_sample_accuracy(run, classifier, per_class=100)
    classifier_accuracy = meta["test_accuracy"]
    print(f"{dataset}: CVAE sample accuracy {result['accuracy']:.3f} (classifier: {classifier_accuracy:.3f})")
    assert result["samples"] == 1000
    assert result["accuracy"] >= FLOORS[dataset]
