"""The disentangling objectives on `shapes` at one budget: each model of --models trained from
configs/<name>-shapes.yaml (disentanglement_lib's conv nets, 10 latents, 240,000 training images, 3 epochs of
batch 64: 11,250 steps, Adam 5e-4, fp32 on every host: PROTOCOL; ``vae`` is configs/beta-vae-shapes.yaml with
beta = 1), then scored on what the papers claim: the five disentanglement metrics (`vaelab eval
--disentanglement`, --points training points each), the test split's reconstruction NLL and KL (at equal
reconstruction, does the objective raise MIG?), active units, and how correlated the active units' posterior
means are over the test images (DIP-VAE's aim: uncorrelated), with their covariance.
Writes bench/results/disentangling-*.json after each model (an interrupted run keeps what it measured) and prints
a markdown table.
Run: .venv/bin/python bench/disentangling.py --threads 1   (about 40 minutes per model on one AMD EPYC thread)
"""

from __future__ import annotations

import argparse
import tempfile

from common import ROOT, write_result
from vaelab import train
from vaelab.evaluate.disentanglement import HEADLINE
from vaelab.evaluate.factors import evaluate_disentanglement
from vaelab.evaluate.latents import active_correlation, encode_split, means_covariance
from vaelab.evaluate.likelihood import evaluate_run, split_images
from vaelab.loop import set_threads

MODELS = "vae,beta-vae,beta-tcvae,factor-vae,dip-vae-i,dip-vae-ii"
# fp32 on every host: the table gathers runs from several machines, and `auto` would take bf16 on those with it
PROTOCOL = ["train.precision=fp32"]


def config_and_overrides(name: str) -> tuple:
    """configs/<name>-shapes.yaml; ``vae`` is the beta-VAE's config with beta = 1 (the same network and budget)."""
    if name == "vae":
        return ROOT / "configs" / "beta-vae-shapes.yaml", ["model.beta=1"]
    return ROOT / "configs" / f"{name}-shapes.yaml", []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="comma-separated: configs/<name>-shapes.yaml of each")
    parser.add_argument("--points", type=int, default=2000, help="training points of each metric (protocol: 10,000)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    parser.add_argument("--keep", help="a folder to keep the runs in (default: deleted after scoring)")
    parser.add_argument("--override", action="append", default=[], help="KEY=VALUE for every model (smoke runs)")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    rows: dict[str, dict] = {}
    figures = {"points": args.points, "threads": threads, "protocol": PROTOCOL, "overrides": args.override,
               "models": rows}  # fmt: skip
    path = write_result("disentangling", figures)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            config, overrides = config_and_overrides(name)
            run = train(config, [*PROTOCOL, *overrides, *args.override, "train.progress=never", "train.frames=false",
                                 "train.report=false", f"train.out_dir={args.keep or tmp}", f"train.name={name}",
                                 f"train.threads={threads}"])  # fmt: skip
            elbo = evaluate_run(run, "test", iw_samples=0, progress=False)
            x, y = split_images(run, "test")
            latents = encode_split(run.model, x, y, run.data.binarize)
            cov = means_covariance(latents.continuous_means)
            correlation = active_correlation(cov)  # its active units: unit_activity's, from the covariance's diagonal
            metrics = evaluate_disentanglement(run, args.points)["disentanglement"]
            rows[name] = {
                "config": config.relative_to(ROOT).as_posix(),
                "overrides": overrides,
                "training_seconds": sum(r["seconds"] for r in run.metrics),
                "neg_elbo": elbo["neg_elbo"]["mean"],
                "recon": elbo["recon"]["mean"],
                "kl": elbo["kl"]["mean"],
                "active_units": correlation["active_units"],
                "active_correlation": correlation,
                "covariance": cov.tolist(),
                "scores": {metric: metrics[metric][key] for metric, key in HEADLINE.items()},
                "dci_completeness": metrics["dci"]["completeness"],
                "mig_per_factor": dict(zip(metrics["factors"], metrics["mig"]["per_factor"], strict=True)),
            }
            path = write_result("disentangling", figures, path)
            print(f"{name}: {rows[name]['scores']}", flush=True)
    print(f"shapes, {args.points} points per metric, {threads} threads")
    print("| model | recon | KL | active | mean abs corr | " + " | ".join(HEADLINE) + " |")
    print("| --- " * (5 + len(HEADLINE)) + "|")
    for name, r in rows.items():
        scores = " | ".join(f"{r['scores'][m]:.3f}" for m in HEADLINE)
        corr = r["active_correlation"]["mean_abs"]
        print(f"| `{name}` | {r['recon']:.2f} | {r['kl']:.2f} | {r['active_units']} | "
              f"{'-' if corr is None else f'{corr:.3f}'} | {scores} |")  # fmt: skip


if __name__ == "__main__":
    main()
