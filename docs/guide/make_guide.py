"""Rebuild docs/guide.md and its figures in docs/figures/ (``make guide``).

Every experiment of the guide runs here through the ``vaelab`` command, exactly as the guide quotes it; the
numbers in the text are read back from the files those commands write (eval.json, metrics.csv,
latent_stats.csv, compare.csv) and inserted into docs/guide/guide.template.md at its ``{{name}}`` fields.
Run folders go to runs/guide/ (not committed); figures to docs/figures/.

    .venv/bin/python docs/guide/make_guide.py                 # everything, from scratch
    .venv/bin/python docs/guide/make_guide.py --reuse         # keep finished runs, redo figures and text
    .venv/bin/python docs/guide/make_guide.py --only beta     # one section (implies --reuse for the others)
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))  # the families bench's config_path

from disentangling import PROTOCOL as DISENTANGLING_PROTOCOL  # noqa: E402
from families import config_path  # noqa: E402
from vaelab import load_run  # noqa: E402
from vaelab.checkpoint import atomic_write_text  # noqa: E402
from vaelab.config import load_config  # noqa: E402
from vaelab.evaluate.fid import feature_classifier, feature_distance  # noqa: E402
from vaelab.evaluate.latents import abs_correlation, active_correlation, encode_split, means_covariance  # noqa: E402
from vaelab.viz.curves import mean_sigma  # noqa: E402
from vaelab.viz.grids import save_png  # noqa: E402
from vaelab.viz.latent_stats import read_latent_stats  # noqa: E402
from vaelab.viz.plotting import figure_to_array, new_figure  # noqa: E402
from vaelab.viz.sampling import sample_images  # noqa: E402
from vaelab.viz.traverse import split_float, traverse  # noqa: E402

RUNS = Path("runs/guide")
FIGURES = Path("docs/figures")
TEMPLATE = ROOT / "docs/guide/guide.template.md"
OUTPUT = ROOT / "docs/guide.md"
TIMINGS = RUNS / "command_seconds.json"  # seconds of each command when it last ran (reused runs keep theirs)

MNIST = "mnist-5k"
LATENT = 16  # latent size of the AE / VAE / beta-VAE runs
EPOCHS = 30  # epochs of the mnist-5k runs (4,050 training images: about 1 s per epoch on 2 cores)
BETAS = [0.5, 1.0, 2.0, 4.0, 8.0]
FASHION_EPOCHS = 10  # Fashion-MNIST runs (54,000 training images: about 4 s per epoch on 2 cores)
TRAVERSE_INDEX = 0  # the test image whose latents the traversal starts from


class SectionNotRun(Exception):
    """A section whose runs do not exist, met while only collecting (``--only`` another section)."""


class Guide:
    """Runs vaelab commands, keeps what each section ran (to quote it) and the values for the template.
    ``collect``: run nothing, only gather the commands and the values from the runs that exist."""

    def __init__(self, reuse: bool):
        self.reuse = reuse
        self.collect = False
        self.values: dict[str, str] = {}
        self.section = ""
        self.commands: dict[str, list[str]] = {}
        path = ROOT / TIMINGS
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def vaelab(self, *args: object) -> str:
        """Run ``vaelab ARGS`` in the project folder; returns its stdout; stops the guide on failure."""
        words = ["vaelab", *map(str, args)]
        command = shlex.join(words)
        self.commands.setdefault(self.section, []).append(command)
        if self.collect:
            return ""
        print(f"$ {command}", file=sys.stderr, flush=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "vaelab", *words[1:]], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            sys.exit(f"make_guide: `{command}` failed:\n{result.stderr}")
        self.seconds[command] = time.perf_counter() - start
        atomic_write_text(ROOT / TIMINGS, json.dumps(self.seconds, indent=1))
        print(f"  ({self.seconds[command]:.0f} s)", file=sys.stderr, flush=True)
        return result.stdout

    def total_minutes(self) -> float:
        """Minutes of every command the guide quotes, each as timed when it last ran: what the whole guide
        costs from scratch, also after ``--only`` or ``--reuse`` rebuilt part of it."""
        quoted = [command for commands in self.commands.values() for command in commands]
        untimed = [command for command in quoted if command not in self.seconds]
        if untimed:
            sys.exit(f"make_guide: no timing for `{untimed[0]}`; run make_guide.py without --only/--reuse once")
        return sum(self.seconds[command] for command in quoted) / 60

    def train(self, name: str, *args: object) -> Path:
        """``vaelab train ... train.out_dir=runs/guide train.name=NAME`` unless --reuse finds the run finished."""
        run = RUNS / name
        finished = (ROOT / run / "report.html").is_file() and (ROOT / run / "eval.json").is_file()
        words = ["train", *args, f"train.out_dir={RUNS}", f"train.name={name}"]
        if (self.reuse or self.collect) and finished:
            self.commands.setdefault(self.section, []).append(shlex.join(["vaelab", *map(str, words)]))
            return run
        if self.collect:
            raise SectionNotRun(name)
        shutil.rmtree(ROOT / run, ignore_errors=True)
        self.vaelab(*words)
        return run

    def eval(self, run: Path) -> None:
        """``vaelab eval RUN --iw-samples 0`` (the full evaluation, without the slow IW-NLL), unless reused."""
        path = ROOT / run / "eval.json"
        if (self.reuse or self.collect) and path.is_file() and "fid" in json.loads(path.read_text()).get("test", {}):
            self.commands.setdefault(self.section, []).append(f"vaelab eval {run} --iw-samples 0")
            return
        self.vaelab("eval", run, "--iw-samples", "0")

    def set(self, **values: object) -> None:
        self.values |= {k: str(v) for k, v in values.items()}

    def code(self, section: str) -> str:
        """The commands a section ran, as a fenced block."""
        return "```\n" + "\n".join(self.commands.get(section, [])) + "\n```"


# -- reading what the commands wrote -----------------------------------------------------------------------------


def eval_json(run: Path) -> dict:
    return json.loads((ROOT / run / "eval.json").read_text())["test"]


def metrics(run: Path) -> list[dict[str, float]]:
    with open(ROOT / run / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def seconds(run: Path) -> float:
    return sum(row["seconds"] for row in metrics(run))


def figure_path(name: str) -> Path:
    (ROOT / FIGURES).mkdir(parents=True, exist_ok=True)
    return FIGURES / name


def save_figure(figure, name: str) -> Path:
    path = figure_path(name)
    save_png(figure_to_array(figure), ROOT / path)
    return path


def panel(ax, path: Path, title: str) -> None:
    """Show a PNG written by a vaelab command in a matplotlib axis, with a title."""
    image = np.asarray(Image.open(ROOT / path))
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()


def standard_prior_distance(run_path: Path, n: int = 500) -> float:
    """Fréchet distance, in the features ``vaelab eval`` uses, between the test images and n decoded N(0, I)
    draws (``vaelab sample --prior standard``): what the AE's samples score without its fitted Gaussian."""
    run = load_run(ROOT / run_path)
    net, _ = feature_classifier(run.data)
    real = run.data.test_x[:n].float() / 255
    samples = sample_images(run, len(real), seed=0, prior="standard")
    return feature_distance(net.features(real), net.features(samples))


# -- the sections ----------------------------------------------------------------------------------------------


def ae_vs_vae(g: Guide) -> None:
    g.section = "ae_vs_vae"
    common = ["--data", MNIST, f"model.latent_dim={LATENT}", f"train.epochs={EPOCHS}"]
    ae = g.train("ae", "--config", "configs/ae-mlp.yaml", *common)
    vae = g.train("vae", "--config", "configs/vae-mlp.yaml", *common)
    for run in (ae, vae):
        g.eval(run)
    pictures = {
        "ae_recon": ["reconstruct", ae, "-n", "16"],
        "vae_recon": ["reconstruct", vae, "-n", "16"],
        "ae_standard": ["sample", ae, "-n", "36", "--prior", "standard"],
        "ae_fitted": ["sample", ae, "-n", "36"],
        "vae_samples": ["sample", vae, "-n", "36"],
    }
    paths = {}
    for key, args in pictures.items():
        paths[key] = RUNS / "pictures" / f"{key}.png"
        g.vaelab(*args, "-o", paths[key])
    figure = new_figure(10, 5.6)
    grid = figure.add_gridspec(2, 6, height_ratios=[0.42, 1])
    panel(figure.add_subplot(grid[0, :3]), paths["ae_recon"], "AE: test images, binarised targets, reconstructions")
    panel(figure.add_subplot(grid[0, 3:]), paths["vae_recon"], "VAE: test images, binarised targets, reconstructions")
    panel(figure.add_subplot(grid[1, :2]), paths["ae_standard"], "AE decoding N(0, I) draws")
    panel(figure.add_subplot(grid[1, 2:4]), paths["ae_fitted"], "AE decoding its fitted Gaussian")
    panel(figure.add_subplot(grid[1, 4:]), paths["vae_samples"], "VAE decoding N(0, I) draws")
    figure.tight_layout()
    save_figure(figure, "ae-vs-vae.png")
    e_ae, e_vae = eval_json(ae), eval_json(vae)
    g.set(
        ae_recon=f"{e_ae['recon']['mean']:.1f}",
        vae_recon=f"{e_vae['recon']['mean']:.1f}",
        vae_kl=f"{e_vae['kl']['mean']:.1f}",
        vae_elbo=f"{e_vae['neg_elbo']['mean']:.1f}",
        ae_fd_fitted=f"{e_ae['fid']['samples']:.1f}",
        vae_fd=f"{e_vae['fid']['samples']:.1f}",
        ae_fd_standard=f"{standard_prior_distance(ae):.1f}",
        fd_floor=f"{e_vae['fid']['train_images']:.1f}",
        fd_n=e_vae["fid"]["n"],
        ae_code_std=f"{load_run(ROOT / ae).model.prior['z'].var.sqrt().mean():.2f}",
        ae_seconds=f"{seconds(ae):.0f}",
        vae_seconds=f"{seconds(vae):.0f}",
        vae_active=e_vae["latent"]["active_units"],
        vae_probe=f"{e_vae['probes']['linear']:.3f}",
        ae_probe=f"{e_ae['probes']['linear']:.3f}",
    )
    shutil.copyfile(ROOT / vae / "images/training.gif", ROOT / figure_path("vae-training.gif"))
    shutil.copyfile(ROOT / vae / "images/curves.png", ROOT / figure_path("vae-curves.png"))


def no_kl(g: Guide) -> None:
    g.section = "no_kl"
    vae = RUNS / "vae"
    beta0 = g.train("beta0", "--config", "configs/beta-vae-mlp.yaml", "--data", MNIST, "model.beta=0",
                    f"model.latent_dim={LATENT}", f"train.epochs={EPOCHS}")  # fmt: skip
    g.eval(beta0)
    samples = RUNS / "pictures" / "beta0_samples.png"
    g.vaelab("sample", beta0, "-n", "36", "-o", samples)
    stats = {"VAE (beta = 1)": read_latent_stats(ROOT / vae), "beta = 0 (no KL term)": read_latent_stats(ROOT / beta0)}
    figure = new_figure(10, 3.8)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    for label, rows in stats.items():
        left.plot(*mean_sigma(rows), label=label, marker="o", markersize=3)
    left.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="prior std")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("posterior std (mean over dims and images)")
    left.set_title("the posterior's std during training (latent_stats.csv)", fontsize=10)
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    panel(right, samples, "beta = 0: decoding N(0, I) draws")
    figure.tight_layout()
    save_figure(figure, "no-kl-sigma.png")
    _, sigma_vae = mean_sigma(stats["VAE (beta = 1)"])
    _, sigma_0 = mean_sigma(stats["beta = 0 (no KL term)"])
    e0, e_ae = eval_json(beta0), eval_json(RUNS / "ae")
    g.set(
        sigma_vae=f"{sigma_vae[-1]:.2f}",
        sigma_beta0_first=f"{sigma_0[0]:.3f}",
        sigma_beta0=f"{sigma_0[-1]:.4f}",
        beta0_recon=f"{e0['recon']['mean']:.1f}",
        beta0_kl=f"{e0['kl']['mean']:.0f}",
        beta0_fd=f"{e0['fid']['samples']:.1f}",
        ae_recon_again=f"{e_ae['recon']['mean']:.1f}",
    )


def beta_tradeoff(g: Guide) -> None:
    g.section = "beta"
    runs = {}
    for beta in BETAS:
        if beta == 1.0:
            runs[beta] = RUNS / "vae"  # the VAE of the first section: beta-VAE with beta = 1 is the same objective
            continue
        name = f"beta{beta:g}"
        runs[beta] = g.train(name, "--config", "configs/beta-vae-mlp.yaml", "--data", MNIST, f"model.beta={beta:g}",
                             f"model.latent_dim={LATENT}", f"train.epochs={EPOCHS}")  # fmt: skip
        g.eval(runs[beta])
    rows = []
    for beta, run in runs.items():
        e = eval_json(run)
        sample_path = RUNS / "pictures" / f"beta{beta:g}_samples.png"
        g.vaelab("sample", run, "-n", "16", "-o", sample_path)
        rows.append((beta, e["recon"]["mean"], e["kl"]["mean"], e["neg_elbo"]["mean"], e["fid"]["samples"],
                     e["latent"]["active_units"], sample_path))  # fmt: skip
    figure = new_figure(11, 6.0)
    grid = figure.add_gridspec(2, len(rows), height_ratios=[1.0, 1.0])
    ax = figure.add_subplot(grid[0, : len(rows) // 2 + 1])
    ax.plot([r[2] for r in rows], [r[1] for r in rows], marker="o")
    for beta, recon, kl, *_ in rows:
        ax.annotate(f"beta={beta:g}", (kl, recon), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_xlabel("KL (nats per image): the rate")
    ax.set_ylabel("reconstruction (nats per image)")
    ax.set_title("reconstruction against KL on the test images", fontsize=10)
    ax.grid(alpha=0.3)
    ax2 = figure.add_subplot(grid[0, len(rows) // 2 + 1 :])
    ax2.plot([r[0] for r in rows], [r[4] for r in rows], marker="o", color="C1")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("beta")
    ax2.set_ylabel("Fréchet distance of samples")
    ax2.set_title("sample quality (lower is better)", fontsize=10)
    ax2.grid(alpha=0.3)
    for i, row in enumerate(rows):
        panel(figure.add_subplot(grid[1, i]), row[6], f"samples, beta={row[0]:g}")
    figure.tight_layout()
    save_figure(figure, "beta-tradeoff.png")
    table = [
        "| beta | recon | KL | -ELBO | Fréchet distance of samples | active units |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    table += [f"| {b:g} | {r:.1f} | {k:.1f} | {e:.1f} | {f:.1f} | {a} of {LATENT} |" for b, r, k, e, f, a, _ in rows]
    best = min(rows, key=lambda r: r[4])
    g.set(beta_table="\n".join(table), beta_best=f"{best[0]:g}", beta_best_fd=f"{best[4]:.1f}",
          beta_low_kl=f"{rows[0][2]:.1f}", beta_high_kl=f"{rows[-1][2]:.1f}",
          beta_low_recon=f"{rows[0][1]:.1f}", beta_high_recon=f"{rows[-1][1]:.1f}",
          beta_low_active=rows[0][5], beta_min_active=min(r[5] for r in rows),
          beta_min_active_beta=f"{min(rows, key=lambda r: r[5])[0]:g}")  # fmt: skip


def traversal(g: Guide) -> None:
    g.section = "traversal"
    path = figure_path("traversal-mnist.png")
    if not (ROOT / RUNS / "vae2d" / "eval.json").is_file():
        raise SectionNotRun("vae2d")
    g.vaelab("traverse", RUNS / "vae2d", "--index", TRAVERSE_INDEX, "--steps", "11", "-o", path)
    names = traverse(load_run(ROOT / RUNS / "vae2d"), index=TRAVERSE_INDEX, steps=11).names  # what the command printed
    g.set(traversal_rows=", ".join(names), traverse_index=TRAVERSE_INDEX)


def latent_2d(g: Guide) -> None:
    g.section = "latent_2d"
    mnist = g.train("vae2d", "--config", "configs/vae-mlp.yaml", "--data", MNIST, "model.latent_dim=2",
                    f"train.epochs={EPOCHS * 2}")  # fmt: skip
    fashion = g.train("vae2d-fashion", "--config", "configs/vae-mlp.yaml", "model.latent_dim=2",
                      f"train.epochs={FASHION_EPOCHS}")  # fmt: skip
    g.vaelab("latent-map", mnist, "-o", figure_path("latent-map-mnist.png"))
    g.vaelab("latent-map", fashion, "-o", figure_path("latent-map-fashion.png"))
    shutil.copyfile(ROOT / mnist / "images/latent_map.gif", ROOT / figure_path("latent-map-mnist.gif"))
    e_m, e_f = eval_json(mnist), eval_json(fashion)
    g.set(
        vae2d_elbo=f"{e_m['neg_elbo']['mean']:.1f}",
        vae2d_fashion_elbo=f"{e_f['neg_elbo']['mean']:.1f}",
        vae2d_seconds=f"{seconds(mnist):.0f}",
        vae2d_fashion_seconds=f"{seconds(fashion):.0f}",
        vae2d_epochs=EPOCHS * 2,
        fashion_epochs=FASHION_EPOCHS,
    )


def joint(g: Guide) -> None:
    g.section = "joint"
    run = g.train("joint", "--config", "configs/joint-vae-mlp.yaml")
    g.eval(run)
    path = figure_path("joint-vae-traversal.png")
    g.vaelab("traverse", run, "--index", "1", "--steps", "10", "-o", path)
    loaded = load_run(ROOT / run)
    x, y = split_float(loaded, "test")
    codes = loaded.model.encode(x).categorical.codes[:, 0].numpy()
    counts = np.zeros((10, 10), dtype=int)  # (category, label)
    np.add.at(counts, (codes, y.numpy()), 1)
    order = np.argsort(-counts.max(1) / np.maximum(counts.sum(1), 1))
    figure = new_figure(5.2, 4.4)
    ax = figure.add_subplot()
    image = ax.imshow(counts[order], cmap="Blues")
    ax.set_xticks(range(10), loaded.class_names or range(10))
    ax.set_yticks(range(10), [f"c={c}" for c in order])
    ax.set_xlabel("true digit")
    ax.set_ylabel("category of the discrete code")
    ax.set_title("test images per (category, digit)", fontsize=10)
    figure.colorbar(image, ax=ax, fraction=0.046)
    figure.tight_layout()
    save_figure(figure, "joint-vae-confusion.png")
    e = eval_json(run)
    clustering = e["clustering"][0]
    g.set(
        joint_accuracy=f"{clustering['accuracy']:.3f}",
        joint_nmi=f"{clustering['nmi']:.3f}",
        joint_used=clustering["clusters_used"],
        joint_seconds=f"{seconds(run) / 60:.1f}",
        joint_epochs=int(metrics(run)[-1]["epoch"]),
        joint_kl_disc=f"{e['kl_disc']['mean']:.2f}",
    )


def compare(g: Guide) -> None:
    g.section = "compare"
    for data, epochs in ((MNIST, EPOCHS), ("fashion-mnist", FASHION_EPOCHS)):
        out = RUNS / f"compare-{data}"
        if g.collect and not (ROOT / out / "compare.csv").is_file():
            raise SectionNotRun(out.name)
        if not ((g.reuse or g.collect) and (ROOT / out / "compare.csv").is_file()):
            g.vaelab("compare", "--data", data, "--models", "pca,ae,vae,fisher", "--latent-dim", LATENT, "--epochs",
                     epochs, "--iw-samples", "100", "--out", out)  # fmt: skip
        else:
            g.commands.setdefault(g.section, []).append(
                shlex.join(["vaelab", "compare", "--data", data, "--models", "pca,ae,vae,fisher", "--latent-dim",
                            str(LATENT), "--epochs", str(epochs), "--iw-samples", "100", "--out", str(out)])
            )  # fmt: skip
        key = data.replace("-", "_")
        text = (ROOT / out / "compare.md").read_text()
        table = text[text.index("| model") : text.index("\n\n", text.index("| model"))]
        g.set(**{f"compare_{key}": table})
        with open(ROOT / out / "compare.csv", newline="") as f:
            rows = {row["model"]: row for row in csv.DictReader(f)}
        g.set(**{f"{key}_{m}_probe": f"{float(rows[m]['linear_probe']):.3f}" for m in rows if rows[m]["linear_probe"]})
        shutil.copyfile(ROOT / out / "compare.png", ROOT / figure_path(f"compare-{data}.png"))


FAMILIES_COMMAND = ".venv/bin/python bench/families.py --epochs 5 --iw-samples 1000"
FAMILY_ORDER = ["vae", "iwae", "miwae", "piwae", "ciwae", "planar-vae", "iaf-vae", "mog-vae", "vamp-vae", "ladder-vae"]


def latest_rows(bench: str, keep) -> dict[str, dict]:
    """Each model's newest row in bench/results/BENCH-*.json for which ``keep(result, name, row)`` holds, with the file
    it is from and its machine (a bench's run, not a guide command: an hour or more on 2 cores)."""
    rows: dict[str, dict] = {}
    for path in sorted((ROOT / "bench/results").glob(f"{bench}-*.json")):  # oldest first: newer rows replace
        result = json.loads(path.read_text())
        for name, row in result["models"].items():
            if keep(result, name, row):
                rows[name] = row | {"path": path.relative_to(ROOT).as_posix(), "machine": result["machine"]}
    return rows


@functools.cache
def shipped_config(name: str):
    """The family's configs/<name>-mlp.yaml as it is now, read once."""
    return load_config(config_path(name))


def own_config(name: str, overrides: list[str]) -> bool:
    """Whether ``overrides`` leave the family's configs/<name>-mlp.yaml as it is now (a run with --override that
    changed it, such as the peers' squared-error protocol, is not the family's row)."""
    return config_path(name).is_file() and load_config(config_path(name), overrides) == shipped_config(name)


def latest_families(epochs: int = 5) -> dict[str, dict]:
    """The families bench's newest row of each model trained for ``epochs`` epochs under its own config."""
    rows = latest_rows("families", lambda result, name, row: row.get("epochs", result.get("epochs")) == epochs
                       and "neg_elbo" in row and own_config(name, result.get("overrides") or []))  # fmt: skip
    if "vae" not in rows:
        raise SectionNotRun(f"bench/results/families-*.json with the VAE ({FAMILIES_COMMAND})")
    return rows


def families(g: Guide) -> None:
    """The likelihood families against the VAE on one protocol, and the post-hoc samplers, from the bench's JSON."""
    models = latest_families()
    vae = models["vae"]
    measured = [name for name in FAMILY_ORDER if models.get(name, {}).get("iw_nll")]
    rows = ["| model | test IW-NLL (k = 1000) | vs the VAE | test -ELBO | active units | results |",
            "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name in measured:
        r = models[name]
        source = f"[{Path(r['path']).name}](../{r['path']})"
        rows.append(f"| `{name}` | {r['iw_nll']:.2f} ± {r['iw_nll_stderr']:.2f} | {r['iw_nll'] - vae['iw_nll']:+.2f} | "
                    f"{r['neg_elbo']:.2f} | {r['active_units']} | {source} |")  # fmt: skip
    sampled = [n for n in ("vae", "ae", "rae", "ladder-vae") if "frechet_gmm" in models.get(n, {})]
    fd_rows = ["| model | prior | GMM on the codes | two-stage VAE |", "| --- | --- | --- | --- |"]
    fd_rows += [f"| `{n}` | {models[n]['frechet']:.1f} | {models[n]['frechet_gmm']:.1f} | "
                f"{models[n]['frechet_two_stage']:.1f} |" for n in sampled]  # fmt: skip
    figure = new_figure(11, 4.2)
    ax = figure.add_subplot(1, 2, 1)
    for i, name in enumerate(measured):
        r = models[name]
        ax.errorbar(i, r["iw_nll"], yerr=r["iw_nll_stderr"], fmt="o", capsize=3)
    ax.set_xticks(range(len(measured)), measured, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test IW-NLL, nats (5 epochs)")
    ax.set_title("Each family against the VAE", fontsize=10)
    ax = figure.add_subplot(1, 2, 2)
    width = 0.27
    samplers = [("frechet", "prior"), ("frechet_gmm", "GMM"), ("frechet_two_stage", "two-stage")]
    for i, (key, label) in enumerate(samplers):
        ax.bar(np.arange(len(sampled)) + (i - 1) * width, [models[n][key] for n in sampled], width, label=label)
    ax.set_xticks(np.arange(len(sampled)), sampled)
    ax.set_ylabel("Fréchet distance of 10,000 samples (lower is better)")
    ax.set_title("Sampling from the codes' density instead of the prior", fontsize=10)
    ax.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, "families.png")
    lower = [n for n in measured[1:] if vae["iw_nll"] - models[n]["iw_nll"] > 2 * vae["iw_nll_stderr"]]
    g.set(
        families_command=FAMILIES_COMMAND,
        families_machine=vae["machine"],
        families_table="\n".join(rows),
        families_fd_table="\n".join(fd_rows),
        families_vae_nll=f"{vae['iw_nll']:.2f}",
        families_lower=", ".join(f"`{n}` ({models[n]['iw_nll'] - vae['iw_nll']:+.2f})" for n in lower) or "none",
        families_missing=", ".join(f"`{n}`" for n in FAMILY_ORDER if n not in measured) or "none",
    )


DISENTANGLING_COMMAND = ".venv/bin/python bench/disentangling.py --threads 1"
SHAPES_ORDER = ["vae", "beta-vae", "beta-tcvae", "factor-vae", "dip-vae-i", "dip-vae-ii"]
REPRESENTATION_ORDER = ["vae", "beta-tcvae", "factor-vae", "dip-vae-i", "dip-vae-ii", "info-vae", "wae", "rae-gp",
                        "vq-vae"]  # fmt: skip
METRIC_LABELS = {"mig": "MIG", "beta_vae": "beta-VAE", "factor_vae": "FactorVAE", "sap": "SAP", "dci": "DCI"}


def trained_as_the_bench_does(result: dict, name: str, row: dict) -> bool:
    """A disentangling result with no --override, or only the protocol's own (a run that stated it before the bench
    did)."""
    return set(result.get("overrides") or []) <= set(DISENTANGLING_PROTOCOL)


def mig_reading(shapes: dict[str, dict], scored: list[str]) -> str:
    """Which objective scores the highest MIG, and what each pays for its MIG in reconstruction."""
    best = max(scored, key=lambda n: shapes[n]["scores"]["mig"])
    others = ", ".join(f"`{n}` {shapes[n]['scores']['mig']:.3f} at {shapes[n]['recon']:.1f}"
                       for n in scored if n != best)  # fmt: skip
    return (f"The highest MIG is `{best}`'s, {shapes[best]['scores']['mig']:.3f} at a reconstruction NLL of "
            f"{shapes[best]['recon']:.1f} nats per image; the others: {others}.")  # fmt: skip


def representation(g: Guide) -> None:
    """The representation families: on shapes the disentangling objectives' scores (bench/disentangling.py's JSON),
    on Fashion-MNIST what each does to the codes (the families bench's JSON), and VQ-VAE's reconstructions and
    samples through its prior against the VAE's (run here)."""
    g.section = "representation"
    shapes = latest_rows("disentangling", trained_as_the_bench_does)
    if "vae" not in shapes:
        raise SectionNotRun(f"bench/results/disentangling-*.json with the VAE ({DISENTANGLING_COMMAND})")
    fashion = latest_families()
    common = ["--data", "fashion-mnist", f"train.epochs={FASHION_EPOCHS}"]
    runs = {name: g.train(f"fashion-{name}", "--config", f"configs/{config}", *common)
            for name, config in (("vae", "vae-mlp.yaml"), ("vq-vae", "vq-vae-mlp.yaml"),
                                 ("dip-vae-i", "dip-vae-i-mlp.yaml"))}  # fmt: skip
    pictures = {}
    for name, run in runs.items():
        g.eval(run)
        if name == "dip-vae-i":
            continue
        for kind, args in (("recon", ["reconstruct", run, "-n", "16"]), ("samples", ["sample", run, "-n", "36"])):
            pictures[name, kind] = RUNS / "pictures" / f"fashion-{name}-{kind}.png"
            g.vaelab(*args, "-o", pictures[name, kind])

    scored = [name for name in SHAPES_ORDER if name in shapes]
    figure = new_figure(11, 4.0)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(scored)
    for i, name in enumerate(scored):
        values = [shapes[name]["scores"][m] for m in METRIC_LABELS]
        left.bar(np.arange(len(METRIC_LABELS)) + (i - (len(scored) - 1) / 2) * width, values, width, label=name)
        right.plot(shapes[name]["recon"], shapes[name]["scores"]["mig"], "o", color=f"C{i}")
        right.annotate(name, (shapes[name]["recon"], shapes[name]["scores"]["mig"]), textcoords="offset points",
                       xytext=(5, 3), fontsize=8)  # fmt: skip
    left.set_xticks(range(len(METRIC_LABELS)), list(METRIC_LABELS.values()))
    left.set_ylabel("score on shapes (higher: more disentangled)")
    left.set_title("five metrics at one budget (11,250 steps)", fontsize=10)
    left.legend(fontsize=8)
    left.grid(alpha=0.3, axis="y")
    right.set_xlabel("test reconstruction NLL (nats per image)")
    right.set_ylabel("MIG")
    right.set_title("MIG against reconstruction", fontsize=10)
    right.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, "representation-shapes.png")

    figure = new_figure(7, 3.6)
    for column, name in enumerate(("vae", "dip-vae-i")):
        run = load_run(ROOT / runs[name])
        x, y = run.data.split("test")
        cov = means_covariance(encode_split(run.model, x, y, run.data.binarize).continuous_means)
        ax = figure.add_subplot(1, 2, column + 1)
        image = ax.imshow(abs_correlation(cov), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{name}\n|corr| of the 32 posterior means", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(image, ax=figure.axes, shrink=0.8)
    save_figure(figure, "representation-dip.png")

    figure = new_figure(10, 5.6)
    grid = figure.add_gridspec(2, 2, height_ratios=[0.42, 1])
    for column, name in enumerate(("vae", "vq-vae")):
        panel(figure.add_subplot(grid[0, column]), pictures[name, "recon"], f"{name}: test images, targets, "
              "reconstructions")  # fmt: skip
        panel(figure.add_subplot(grid[1, column]), pictures[name, "samples"], f"{name}: samples (its prior)")
    figure.tight_layout()
    save_figure(figure, "representation-vq-vae.png")

    table = ["| model | recon | KL | active units (of 10) | mean abs correlation of the active units | "
             + " | ".join(METRIC_LABELS.values()) + " |", "| --- " * (5 + len(METRIC_LABELS)) + "|"]  # fmt: skip
    for name in scored:
        r = shapes[name]
        corr = active_correlation(np.asarray(r["covariance"]))["mean_abs"]
        scores = " | ".join(f"{r['scores'][m]:.3f}" for m in METRIC_LABELS)
        table.append(f"| `{name}` | {r['recon']:.1f} | {r['kl']:.1f} | {r['active_units']} | "
                     f"{'-' if corr is None else f'{corr:.3f}'} | {scores} |")  # fmt: skip
    listed = [name for name in REPRESENTATION_ORDER if name in fashion]
    rows = ["| model | test -ELBO (point codes: recon) | active units (of 32) | Fréchet: prior / GMM on the codes |",
            "| --- | --- | --- | --- |"]  # fmt: skip
    for name in listed:
        r = fashion[name]
        elbo = f"{r['neg_elbo']:.2f}" + ("" if r["has_density"] else " (recon)")
        rows.append(f"| `{name}` | {elbo} | {r['active_units']} | {r['frechet']:.1f} / {r['frechet_gmm']:.1f} |")
    e = {name: eval_json(run) for name, run in runs.items()}
    g.set(
        disentangling_command=DISENTANGLING_COMMAND,
        disentangling_machine=shapes["vae"]["machine"],
        disentangling_table="\n".join(table),
        disentangling_reading=mig_reading(shapes, scored),
        disentangling_sources=", ".join(sorted({f"[{Path(r['path']).name}](../{r['path']})" for r in shapes.values()})),
        representation_fashion_table="\n".join(rows),
        representation_fashion_missing=", ".join(f"`{n}`" for n in REPRESENTATION_ORDER if n not in fashion) or "none",
        **{f"shapes_{n.replace('-', '_')}_{m}": f"{shapes[n]['scores'][m]:.3f}" for n in scored for m in METRIC_LABELS},
        **{f"shapes_{n.replace('-', '_')}_recon": f"{shapes[n]['recon']:.1f}" for n in scored},
        **{f"fashion_{n.replace('-', '_')}_active": fashion[n]["active_units"] for n in listed},
        vq_epochs=FASHION_EPOCHS,
        vq_recon=f"{e['vq-vae']['recon']['mean']:.1f}",
        vq_vae_recon=f"{e['vae']['recon']['mean']:.1f}",
        vq_vae_kl=f"{e['vae']['kl']['mean']:.1f}",
        vq_codes_used=e["vq-vae"]["codebook"]["used"],
        vq_codebook_size=e["vq-vae"]["codebook"]["size"],
        vq_perplexity=f"{e['vq-vae']['codebook']['perplexity']:.1f}",
        vq_fd=f"{e['vq-vae']['fid']['samples']:.1f}",
        vq_vae_fd=f"{e['vae']['fid']['samples']:.1f}",
    )
    for prefix, name in (("dip", "dip-vae-i"), ("dip_vae", "vae")):
        latent, correlation_of_means = e[name]["latent"], e[name]["latent"]["active_correlation"]
        g.set(**{f"{prefix}_corr": f"{correlation_of_means['mean_abs']:.3f}",
                 f"{prefix}_corr_max": f"{correlation_of_means['max_abs']:.2f}",
                 f"{prefix}_active": latent["active_units"],
                 f"{prefix}_elbo": f"{e[name]['neg_elbo']['mean']:.1f}"})  # fmt: skip


SECTIONS = {
    "ae_vs_vae": ae_vs_vae,
    "no_kl": no_kl,
    "beta": beta_tradeoff,
    "latent_2d": latent_2d,
    "traversal": traversal,
    "joint": joint,
    "compare": compare,
    "families": families,
    "representation": representation,
}


def render(g: Guide) -> str:
    """The template with every {{name}} replaced; a missing value is an error."""
    values = dict(g.values)
    values |= {f"cmd_{section}": g.code(section) for section in SECTIONS}
    missing = sorted(set(re.findall(r"\{\{(\w+)\}\}", TEMPLATE.read_text())) - set(values))
    if missing:
        sys.exit(f"make_guide: no value for {', '.join(missing)} (run those sections)")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m[1]], TEMPLATE.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in runs/guide/")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else list(SECTIONS)
    g = Guide(reuse=args.reuse or bool(args.only))
    if not g.reuse:
        shutil.rmtree(ROOT / RUNS, ignore_errors=True)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    for name, section in SECTIONS.items():
        g.collect = name not in only
        try:
            section(g)
        except SectionNotRun as missing:
            print(f"section {name}: skipped, run {missing} not found (make_guide.py --only {name})", file=sys.stderr)
    minutes = g.total_minutes()
    g.set(minutes=f"{minutes:.0f}")
    OUTPUT.write_text(render(g))
    print(f"written: {OUTPUT.relative_to(ROOT)} and {FIGURES}/ ({minutes:.1f} min of commands)", file=sys.stderr)


if __name__ == "__main__":
    main()
