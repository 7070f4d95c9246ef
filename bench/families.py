"""The model families on one protocol: each config of --models trained on Fashion-MNIST (dynamic binarisation, the
default MLP 784-512-512-32 or the family's own parts on it, the same epochs, seed 0, and the same optimisation:
PROTOCOL's ReLU and constant Adam 1e-3 without averaging, whatever the config's own), then on the test split:
-ELBO, the importance-weighted NLL (k = --iw-samples) where the model has a density, active units, the Fréchet
distance of its prior samples and of its samples through the post-hoc GMM and two-stage samplers (evaluate_fid),
and seconds per training epoch; and, first, each model's seconds per training step against the VAE's,
the median of paired ratios over interleaved rounds (a ratio that holds on a loaded machine). Last, the VAE
again for as many epochs as the --equal-time model's training took (its step ratio times --epochs): the two at
equal wall time.
Prints a markdown table and writes bench/results/families-*.json (after each model, so that an interrupted run
keeps what it measured).
Run: .venv/bin/python bench/families.py --epochs 5 --iw-samples 1000   (--step-ratios-only: the ratios alone)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from common import ROOT, default_setup, write_result
from vaelab import train
from vaelab.config import load_config
from vaelab.evaluate.fid import evaluate_fid
from vaelab.evaluate.latents import evaluate_latents
from vaelab.evaluate.likelihood import evaluate_run
from vaelab.loop import Loop, log_nothing, set_threads
from vaelab.models import build_model

# what every family trains under here (and the peers' benches, on their side), so that the rows differ by the family
# alone: the default config's ELU, schedule and precision are measured against this by bench/time_to_quality.py
PROTOCOL = ["model.activation=relu", "train.lr=1e-3", "train.lr_schedule=constant", "train.warmup_steps=0",
            "train.ema=0", "train.precision=fp32"]  # fmt: skip
MODELS = "vae,ladder-vae,iwae,planar-vae,iaf-vae,mog-vae,vamp-vae,ae,rae,miwae,piwae,ciwae"


def config_path(name: str):
    return ROOT / "configs" / ("vae-mlp.yaml" if name == "vae" else f"{name}-mlp.yaml")


def step_ratios(names: list[str], overrides: list[str], rounds: int = 8, steps: int = 10) -> dict[str, float]:
    """Each model's seconds per training step divided by the default VAE's: in each of ``rounds`` rounds, every
    model's ``steps`` steps next to as many of the VAE's, the median of those paired ratios (a ratio that holds
    while other work comes and goes on the machine; the VAE against itself is the control)."""
    data = default_setup([])[1]
    loops = {}
    for name in dict.fromkeys(["vae", *names]):
        config = load_config(config_path(name), ["train.progress=never", *PROTOCOL, *overrides])
        torch.manual_seed(0)
        loops[name] = Loop(config, data, build_model(config.model, data.image_shape), log=log_nothing)
        loops[name].train_epoch(1, max_steps=5)  # warm-up

    def seconds(loop: Loop, epoch: int) -> float:
        start = time.perf_counter()
        loop.train_epoch(epoch, max_steps=steps)
        return time.perf_counter() - start

    paired: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names:  # the VAE first in even rounds, second in odd ones: the order's own effect cancels
            pair = [loops["vae"], loops[name]][:: 1 if r % 2 == 0 else -1]
            first, second = (seconds(loop, 2 + r) for loop in pair)
            paired[name].append(second / first if r % 2 == 0 else first / second)
    return {name: statistics.median(ratios) for name, ratios in paired.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="comma-separated: configs/<name>-mlp.yaml of each")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--equal-time", default="ladder-vae", help="train the VAE as long as this model trained")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    parser.add_argument("--override", action="append", default=[], help="KEY=VALUE for every model")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--step-ratios-only", action="store_true", help="time the steps, train nothing")
    timing.add_argument("--no-step-ratios", action="store_true", help="train and evaluate only (no equal-time row)")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    names = args.models.split(",")
    ratios = {} if args.no_step_ratios else step_ratios(names, args.override)
    for name, ratio in ratios.items():
        print(f"{name:<12} seconds per training step: {ratio:5.2f}x the VAE's (median of paired rounds)", flush=True)
    rows: dict[str, dict] = {name: {"step_vs_vae": ratios.get(name)} for name in names}
    path = write_result("families", {"threads": threads, "overrides": args.override, "models": rows})
    if args.step_ratios_only:
        return
    runs = [(name, name, args.epochs) for name in names]
    if args.equal_time in ratios:  # right after that model's own run
        epochs = round(args.epochs * ratios[args.equal_time])
        row = f"vae ({epochs} epochs: {args.equal_time}'s time)"
        runs.insert(names.index(args.equal_time) + 1, (row, "vae", epochs))
        rows[row] = {"step_vs_vae": 1.0}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (row, name, epochs) in enumerate(runs):
            overrides = [*PROTOCOL, f"train.epochs={epochs}", "train.progress=never", "train.frames=false",
                         "train.report=false", f"train.out_dir={tmp}", f"train.name=run{i}",
                         f"train.threads={threads}", *args.override]  # fmt: skip
            run = train(config_path(name), overrides)
            results = evaluate_run(run, "test", iw_samples=args.iw_samples, progress=False)
            latents = evaluate_latents(run, "test", probes=False)["latent"]
            fid = evaluate_fid(run, "test", samplers=("gmm", "two-stage"))["fid"]
            rows[row] |= {
                "epochs": epochs,
                "neg_elbo": results["neg_elbo"]["mean"],
                "iw_nll": None if results["iw_nll"] is None else results["iw_nll"]["mean"],
                "iw_nll_stderr": None if results["iw_nll"] is None else results["iw_nll"]["stderr"],
                "kl_parts": {k: v["mean"] for k, v in results.items() if k.startswith("kl_")},
                "active_units": latents["active_units"],
                "frechet": fid["samples"],
                "frechet_gmm": fid["samples_gmm"],
                "frechet_two_stage": fid["samples_two_stage"],
                "seconds_per_epoch": statistics.median(r["seconds"] for r in run.metrics),
                "has_density": results["has_density"],
            }
            figures = {"epochs": args.epochs, "iw_samples": args.iw_samples, "threads": threads,
                       "overrides": args.override, "models": rows}  # fmt: skip
            path = write_result("families", figures, path)
    print(f"Fashion-MNIST test split, {args.epochs} epochs, IW-NLL k = {args.iw_samples}, {threads} threads")
    print("| model | test -ELBO | test IW-NLL | active units | Fréchet: prior / GMM / two-stage | s / epoch "
          "| s / step vs VAE |\n| --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for name, r in rows.items():
        iw = "no density" if r["iw_nll"] is None else f"{r['iw_nll']:.2f} ± {r['iw_nll_stderr']:.2f}"
        elbo = f"{r['neg_elbo']:.2f}" if r["has_density"] else f"{r['neg_elbo']:.2f} (recon only)"
        frechet = " / ".join(f"{r[k]:.1f}" for k in ("frechet", "frechet_gmm", "frechet_two_stage"))
        ratio = "not timed" if r["step_vs_vae"] is None else f"{r['step_vs_vae']:.2f}"
        print(f"| `{name}` | {elbo} | {iw} | {r['active_units']} | {frechet} | {r['seconds_per_epoch']:.1f} | "
              f"{ratio} |")  # fmt: skip


if __name__ == "__main__":
    main()
