"""Time to quality: test IW-NLL against seconds of training, for vaelab's configs and the textbook loop.

Every contender trains in this one process, epoch by epoch in turn, so that each sees the same machine load:
each config of --configs through vaelab's `Loop` (an epoch's training steps and its validation, what an epoch of
`vaelab train` costs short of writing files), and the textbook loop: the same MLP (784-512-512-32, ReLU),
Adam 1e-3, batch 128, a random permutation per epoch indexing one uint8 tensor, `torch.bernoulli` binarisation
per batch, the loss of pytorch/examples' VAE; it trains until its seconds reach the longest config's. Weights
are kept at the epochs of --at and at the end; afterwards, each is evaluated on the first --test-images test
images (on every core): -ELBO, and IW-NLL with k = --iw-samples (vaelab's estimator, fixed evaluation
binarisation, fp32; the textbook's weights go into vaelab's identical VAE, with its ReLU, to be evaluated the
same way).
Prints a table and writes bench/results/time_to_quality-*.json; the full curve also draws
docs/figures/time-to-quality.png (IW-NLL against seconds, one line per contender).
Run: .venv/bin/python bench/time_to_quality.py            (the full curve: k = 1000 on 10,000 test images)
     .venv/bin/python bench/time_to_quality.py --short    (3 epochs, k = 100 on 1,000 images: make bench)
     .venv/bin/python bench/time_to_quality.py --plot bench/results/time_to_quality-X.json   (redraw the figure)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common import ROOT, default_setup, write_result
from vaelab.config import load_config
from vaelab.evaluate.likelihood import elbo_per_image, iw_nll_per_image, summarise
from vaelab.loop import Loop, log_nothing, set_threads
from vaelab.models import build_model


class TextbookVAE(nn.Module):
    """The VAE as tutorials write it (Kingma & Welling 2014; pytorch/examples' loss), on the default MLP; its
    parameters in the order and shapes of vaelab's default VAE."""

    def __init__(self, pixels: int = 784, hidden: int = 512, latent: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * latent))  # fmt: skip
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, pixels))  # fmt: skip

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """-ELBO per image of binary images x (B, 784): BCE summed over pixels + analytic KL, batch mean."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, 32) each
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (recon + kl) / len(x)


class Textbook:
    """The textbook loop: one epoch per call."""

    def __init__(self, x_uint8: torch.Tensor, seed: int = 0):
        torch.manual_seed(seed)
        self.x = x_uint8.flatten(1)  # (N, 784) uint8
        self.model = TextbookVAE(self.x.shape[1])
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def epoch(self) -> None:
        self.model.train()
        for idx in torch.randperm(len(self.x)).split(128):
            x = torch.bernoulli(self.x[idx].float() / 255)
            self.optimizer.zero_grad()
            self.model.loss(x).backward()
            self.optimizer.step()

    def as_vaelab(self, config) -> nn.Module:
        """vaelab's VAE on the default network with ReLU, holding these weights (the same layers, in the same
        order)."""
        model = build_model(dataclasses.replace(config.model, activation="relu"), (1, 28, 28))
        pairs = list(zip(model.parameters(), self.model.parameters(), strict=True))
        with torch.no_grad():
            for ours, theirs in pairs:
                ours.copy_(theirs.view_as(ours))
        return model


FIGURE = ROOT / "docs" / "figures" / "time-to-quality.png"


def plot(result: dict, path: Path) -> None:
    """IW-NLL against seconds of training (on a log scale where they span more than 10x: the default's minute
    beside a preset's quarter hour), a line per contender (its points the epochs kept), error bars of one
    standard error; the title names the machine, threads and estimator."""
    from matplotlib.ticker import ScalarFormatter

    from vaelab.viz.plotting import TAB10, new_figure

    figure = new_figure(7, 4.2)
    axes = figure.add_subplot()
    for colour, (name, points) in zip(TAB10, result["curves"].items(), strict=False):  # up to 10 contenders
        seconds, nll, stderr = zip(*((p["seconds"], p["iw_nll"], p["stderr"] or 0) for p in points), strict=True)
        axes.errorbar(seconds, nll, yerr=stderr, marker="o", markersize=3, capsize=2, color=colour,
                      label=Path(name).stem)  # fmt: skip
    nll = [p["iw_nll"] for points in result["curves"].values() for p in points]
    axes.set_ylim(min(nll) - 1.5, min(max(nll), min(nll) + 30) + 1.5)  # the first epochs' hundreds of nats cut off
    seconds = [p["seconds"] for points in result["curves"].values() for p in points]
    if max(seconds) > 10 * min(seconds):
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.set_xlabel("seconds of training")
    axes.set_ylabel(f"test IW-NLL (k = {result['iw_samples']}), nats")
    axes.set_title(f"{result['machine']}, {result['threads']} thread(s), {result['test_images']} test images",
                   fontsize=9)  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    print(f"figure: {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="configs/default.yaml", help="comma-separated config files")
    parser.add_argument("--epochs", type=int, default=0, help="epochs of every config (0: each config's own)")
    parser.add_argument("--at", default="1,2,5,10,20,40,80", help="epochs whose weights are evaluated (and the last)")
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    parser.add_argument("--short", action="store_true", help="3 epochs, k = 100 on 1,000 test images")
    parser.add_argument("--plot", type=Path, help="only redraw the figure from this result JSON")
    args = parser.parse_args()
    if args.plot:
        return plot(json.loads(args.plot.read_text()), FIGURE)
    if args.short:
        args.epochs, args.iw_samples, args.test_images = 3, 100, 1000
    threads = set_threads(args.threads)
    default, data = default_setup([])
    at = {int(e) for e in args.at.split(",")}

    loops: dict[str, Loop] = {}
    for path in args.configs.split(","):
        epochs = [f"train.epochs={args.epochs}"] if args.epochs else []
        config = load_config(ROOT / path, ["train.progress=never", f"train.threads={threads}", *epochs])
        if config.data != default.data:
            raise SystemExit(f"{path}: its data settings differ from configs/vae-mlp.yaml's; compare on one protocol")
        torch.manual_seed(config.seed)
        loops[path] = Loop(config, data, build_model(config.model, data.image_shape), log=log_nothing)
    textbook = Textbook(data.train_x)

    seconds = {name: 0.0 for name in [*loops, "textbook"]}
    kept: dict[str, list[tuple[int, float, dict]]] = {name: [] for name in seconds}  # (epoch, seconds, weights)
    while any(loop.epoch < loop.config.train.epochs for loop in loops.values()) or seconds["textbook"] < max(
        seconds[name] for name in loops
    ):
        for name, loop in loops.items():
            if loop.epoch >= loop.config.train.epochs:
                continue
            start = time.perf_counter()
            loop.train_epoch(loop.epoch + 1)
            loop.validate()
            seconds[name] += time.perf_counter() - start
            loop.epoch += 1
            if loop.epoch in at or loop.epoch == loop.config.train.epochs:
                kept[name].append((loop.epoch, seconds[name], copy.deepcopy(loop.model.state_dict())))
        if seconds["textbook"] < max(seconds[name] for name in loops):
            start = time.perf_counter()
            textbook.epoch()
            seconds["textbook"] += time.perf_counter() - start
            epoch = len(kept["textbook"]) + 1
            kept["textbook"].append((epoch, seconds["textbook"], copy.deepcopy(textbook.model.state_dict())))
        print(" | ".join(f"{name} {s:.0f} s" for name, s in seconds.items()), flush=True)

    set_threads(0)  # evaluation is not timed: every core
    x, y = data.split("test")
    x = x[: args.test_images]
    every = kept["textbook"]  # each epoch's: keep the last and those nearest in seconds to each config's points
    nearest = {min(range(len(every)), key=lambda i: abs(every[i][1] - s)) for name in loops for _, s, _ in kept[name]}
    kept["textbook"] = [every[i] for i in sorted(nearest | {len(every) - 1})]
    curves: dict[str, list[dict]] = {}
    for name, points in kept.items():
        curves[name] = []
        for epoch, secs, weights in points:
            if name == "textbook":
                textbook.model.load_state_dict(weights)
                model = textbook.as_vaelab(default)
            else:
                model = loops[name].model
                model.load_state_dict(weights)
            nll = summarise(iw_nll_per_image(model, x, None, data.binarize, args.iw_samples, progress=False))
            neg_elbo = elbo_per_image(model, x, None, data.binarize)["neg_elbo"].mean().item()
            curves[name].append({"epoch": epoch, "seconds": secs, "iw_nll": nll["mean"], "stderr": nll["stderr"],
                                 "neg_elbo": neg_elbo})  # fmt: skip
            print(f"{name:<28} epoch {epoch:>3}  {secs:7.1f} s  IW-NLL {nll['mean']:.2f} ± {nll['stderr']:.2f}"
                  f"  -ELBO {neg_elbo:.2f}",
                  flush=True)  # fmt: skip
    path = write_result("time_to_quality", {"threads": threads, "iw_samples": args.iw_samples,
                                            "test_images": len(x), "curves": curves})  # fmt: skip
    if not args.short:
        plot(json.loads(path.read_text()), FIGURE)


if __name__ == "__main__":
    main()
