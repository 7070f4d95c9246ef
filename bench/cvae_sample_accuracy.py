"""How often a conditional VAE draws the class it is asked for (issue 3's acceptance, at its full budget).

Trains configs/cvae-mlp.yaml on each dataset, trains the feature classifier on the real training images, and
prints the share of 1,000 prior samples (100 per class, temperature 1) that the classifier labels as requested,
overall and per class. Not part of `make bench` (over ten minutes on 2 cores); tests/test_family_quality.py runs
a shorter budget as a regression guard.
Run: .venv/bin/python bench/cvae_sample_accuracy.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import write_result  # bench/ is on sys.path when a script in it runs
from vaelab import train
from vaelab.evaluate.conditional import conditional_sample_accuracy
from vaelab.evaluate.fid import train_classifier

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cvae-mlp.yaml"
# dataset -> (overrides of the config, classifier epochs); mnist-5k is grey-level digits on black, where the
# binarised likelihood draws cleaner classes than the grey-level one the Fashion-MNIST config uses.
BUDGETS = {
    "mnist-5k": (["data.binarize=dynamic", "train.epochs=40"], 10),
    "fashion-mnist": (["train.epochs=40"], 30),
}


def main() -> None:
    figures = {}
    for dataset, (overrides, classifier_epochs) in BUDGETS.items():
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            run = train(CONFIG, [f"data.name={dataset}", "train.progress=never", f"train.out_dir={out}", *overrides])
            classifier, meta = train_classifier(run.data, epochs=classifier_epochs)
            result = conditional_sample_accuracy(run, classifier, per_class=100)
        per_class = " ".join(f"{p:.2f}" for p in result["per_class"])
        print(
            f"{dataset}: {result['accuracy']:.3f} of {result['samples']} samples classified as requested "
            f"(classifier: {classifier_epochs} epochs, {meta['test_accuracy']:.3f} on real test images; "
            f"per class {per_class}; {' '.join(overrides)}; {time.perf_counter() - start:.0f} s)"
        )
        figures[dataset] = {"overrides": overrides, "classifier_epochs": classifier_epochs,
                            "classifier_test_accuracy": meta["test_accuracy"], **result}  # fmt: skip
    write_result("cvae_sample_accuracy", figures)


if __name__ == "__main__":
    main()
