"""How well a conditional model draws the class it is asked for: a classifier trained on real images
labels its samples, and the share labelled as requested is reported."""

from __future__ import annotations

import torch

from ..run import Run


@torch.no_grad()
def conditional_sample_accuracy(run: Run, classifier: torch.nn.Module, per_class: int = 100, seed: int = 0) -> dict:
    """Draw ``per_class`` prior samples of every class; return the fraction the classifier assigns to the
    requested class, overall and per class."""
    labels = run.sampling_labels(per_class, None, grid_by_label=True)  # (classes * per_class,)
    samples = run.sample(len(labels), seed=seed, y=labels)
    classifier.eval()
    predicted = classifier(samples.cpu()).argmax(1)
    hits = (predicted == labels.cpu()).float()
    return {
        "accuracy": hits.mean().item(),
        "per_class": hits.view(-1, per_class).mean(1).tolist(),
        "samples": len(labels),
    }
