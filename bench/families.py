"""The model families on one protocol: each config of --models trained on Fashion-MNIST (dynamic binarisation, the
default MLP 784-512-512-32 or the family's own parts on it, the same epochs, seed 0), then on the test split:
-ELBO, the importance-weighted NLL (k = --iw-samples) where the model has a density, active units, the Fréchet
distance of its samples (evaluate_fid), and seconds per training epoch. Prints a markdown table and writes
bench/results/families-*.json (after each model, so that an interrupted run keeps what it measured).
Run: .venv/bin/python bench/families.py --epochs 5 --iw-samples 1000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from common import ROOT, write_result
from vaelab import train
from vaelab.evaluate.fid import evaluate_fid
from vaelab.evaluate.latents import evaluate_latents
from vaelab.evaluate.likelihood import evaluate_run
from vaelab.loop import set_threads

MODELS = "vae,iwae,miwae,ciwae,planar-vae,iaf-vae,mog-vae,vamp-vae,ae,rae"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="comma-separated: configs/<name>-mlp.yaml of each")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--iw-samples", type=int, default=1000)
    args = parser.parse_args()
    threads = set_threads(0)
    rows: dict[str, dict] = {}
    path = None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            config = ROOT / "configs" / ("vae-mlp.yaml" if name == "vae" else f"{name}-mlp.yaml")
            overrides = [f"train.epochs={args.epochs}", "train.progress=never", "train.frames=false",
                         "train.report=false", f"train.out_dir={tmp}", f"train.name={name}"]  # fmt: skip
            run = train(config, overrides)
            results = evaluate_run(run, "test", iw_samples=args.iw_samples, progress=False)
            latents = evaluate_latents(run, "test", probes=False)["latent"]
            rows[name] = {
                "neg_elbo": results["neg_elbo"]["mean"],
                "iw_nll": None if results["iw_nll"] is None else results["iw_nll"]["mean"],
                "iw_nll_stderr": None if results["iw_nll"] is None else results["iw_nll"]["stderr"],
                "active_units": latents["active_units"],
                "frechet": evaluate_fid(run, "test")["fid"]["samples"],
                "seconds_per_epoch": statistics.median(r["seconds"] for r in run.metrics),
                "has_density": results["has_density"],
            }
            figures = {"epochs": args.epochs, "iw_samples": args.iw_samples, "threads": threads, "models": rows}
            path = write_result("families", figures, path)
    print(f"Fashion-MNIST test split, {args.epochs} epochs, IW-NLL k = {args.iw_samples}, {threads} threads")
    print("| model | test -ELBO | test IW-NLL | active units | Fréchet distance | s / epoch |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        iw = "no density" if r["iw_nll"] is None else f"{r['iw_nll']:.2f} ± {r['iw_nll_stderr']:.2f}"
        elbo = f"{r['neg_elbo']:.2f}" if r["has_density"] else f"{r['neg_elbo']:.2f} (recon only)"
        print(f"| `{name}` | {elbo} | {iw} | {r['active_units']} | {r['frechet']:.2f} | {r['seconds_per_epoch']:.1f} |")


if __name__ == "__main__":
    main()
