"""``report.html``: one self-contained page per run (every image embedded as a data: URI, no script, no network),
readable on a phone and a laptop: summary, evaluation, curves, reconstructions, samples, traversal, latent map,
GIFs, the metrics table and the config."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from ..checkpoint import atomic_write_text
from ..evaluate.likelihood import loss_name, plus_minus
from ..run import Run, read_eval
from .frames import frame_files
from .gif import GIFS, gif_bytes
from .pictures import PICTURES, report_traversal, write_run_pictures
from .traverse import describe

REPORT_FILE = "report.html"
MAX_GIF_BYTES = 4 * 2**20  # a bigger GIF is embedded with every k-th frame only, so the page stays light
MIN_DISPLAY_WIDTH = 480  # small pixel-art pictures are shown at least this wide (nearest-pixel upscaling)

CSS = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       max-width: 1000px; margin: 0 auto; padding: 0 1rem 3rem; }
h1 { font-size: 1.45rem; margin: 1.2rem 0 .4rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid #ddd; }
nav { font-size: .9rem; line-height: 1.9; }
nav a { margin-right: .7rem; color: #0b57a4; white-space: nowrap; }
figure { margin: 1rem 0 1.5rem; }
figure img { display: block; max-width: 100%; height: auto; }
img.pixels { image-rendering: pixelated; }
figcaption { font-size: .88rem; color: #555; margin-top: .3rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0; }
dt { color: #555; } dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-y: auto; max-height: 28rem; border: 1px solid #eee; display: flex; flex-wrap: wrap;
          align-items: flex-start; gap: 0 1.2rem; }
table { border-collapse: collapse; font-size: .82rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-size: .8rem; color: #555; padding: .3rem .4rem 0; }
th, td { padding: .2rem .4rem; text-align: right; white-space: nowrap; border-bottom: 1px solid #eee; }
th { position: sticky; top: 0; background: #f4f4f4; white-space: normal; }
pre { background: #f6f6f6; padding: .6rem .8rem; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .8rem;
      line-height: 1.4; }
details summary { cursor: pointer; color: #0b57a4; }
"""

CAPTIONS = {
    "curves": "Loss terms per epoch, in nats per image: -ELBO = reconstruction + KL. Validation terms use fixed "
    "noise and one fixed binarisation, so epochs compare.",
    "kl_per_dim": "KL of each latent dimension to the prior over training, on fixed validation images. Bright rows "
    "are the dimensions the model uses; rows that stay dark carry no information (inactive units).",
    "reconstructions": "Test images in rows named on the left: the image as stored (grey); when the data are "
    "binarised as they are read (data.binarize=dynamic), the binarised draw that the model encodes and is scored "
    "against, its target (each pixel 1 with the grey level as probability; the evaluation's fixed draw); then the "
    "reconstruction, the decoded posterior mean (for a Bernoulli likelihood each pixel's probability of a 1).",
    "samples": "Decoded draws from the prior (for a conditional model, one row per class, named on the left).",
    "traversal": "Starting from the first test image's posterior mean, each row changes one latent dimension and "
    f"keeps the others; {describe()}. JointVAE adds one row per categorical showing each category.",
    "latent_map": "Posterior means of test images, coloured by label: the 2-D latent space itself, or the first two "
    "principal components of a larger one.",
    "manifold": "The manifold grid: decoded images of a grid of the prior's quantiles over the 2-D latent space "
    "(Kingma & Welling 2014, figure 4); z0 rises left to right (its values above the columns), z1 bottom to top "
    "(its values left of the rows). Equal steps of prior probability, so the values crowd near the prior mean.",
    "training_gif": "One frame per epoch: 8 fixed validation images as the model sees them (row 1, binarised when "
    "data.binarize=dynamic) over their reconstructions (row 2), then 16 prior samples of a fixed seed (rows 3-4).",
    "latent_map_gif": "The 2-D latent means of validation images, one frame per epoch (window: prior mean +- 4 std).",
}
TITLES = {
    "curves": "Training curves",
    "kl_per_dim": "KL per dimension",
    "reconstructions": "Reconstructions",
    "samples": "Samples",
    "traversal": "Traversal",
    "latent_map": "Latent map",
    "manifold": "Manifold grid",
    "training_gif": "Training, epoch by epoch",
    "latent_map_gif": "Latent map, epoch by epoch",
}
PIXEL_ART = {"reconstructions", "samples", "traversal", "manifold", "training_gif", "latent_map_gif"}
METRIC_FORMATS = {"epoch": "{:.0f}", "step": "{:.0f}", "samples_per_s": "{:,.0f}", "batch_size": "{:.0f}",
                  "lr": "{:.2g}", "seconds": "{:.1f}", "processes": "{:.0f}", "skipped": "{:.0f}",
                  "clipped": "{:.0f}"}  # fmt: skip


def _embedded_gif(run: Run, path: Path) -> tuple[bytes, str]:
    """The GIF's bytes, or if it exceeds MAX_GIF_BYTES one rebuilt from every k-th frame; and a note."""
    data = path.read_bytes()
    if len(data) <= MAX_GIF_BYTES:
        return data, ""
    kind = GIFS[path.name]
    frames = frame_files(run.path, kind)
    step = -(-len(data) // MAX_GIF_BYTES)
    kept = frames[::step] if frames[-1] in frames[::step] else [*frames[::step], frames[-1]]
    return gif_bytes(kept), f" (every {step}th epoch shown here; {path.name} in the run folder has them all)"


def _figure(run: Run, key: str, path: Path, words: str = "") -> str:
    """A picture's section; ``words`` add to its caption what only this run can say."""
    gif = path.suffix == ".gif"
    data, note = _embedded_gif(run, path) if gif else (path.read_bytes(), "")
    uri = f"data:image/{'gif' if gif else 'png'};base64,{base64.b64encode(data).decode('ascii')}"
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    style, css_class = "", ""
    if key in PIXEL_ART:
        css_class = ' class="pixels"'
        shown = width * max(1, -(-MIN_DISPLAY_WIDTH // width)) if width < MIN_DISPLAY_WIDTH else width
        style = f' style="width: min(100%, {shown}px)"'
    alt = html.escape(TITLES[key])
    return (
        f'<section id="{key}"><h2>{html.escape(TITLES[key])}</h2><figure>'
        f'<img src="{uri}" alt="{alt}" width="{width}" height="{height}"{css_class}{style}>'
        f"<figcaption>{html.escape(CAPTIONS[key] + words + note)} <code>images/{path.name}</code></figcaption>"
        "</figure></section>"
    )


def _facts(run: Run, evaluation: dict[str, Any]) -> list[tuple[str, str]]:
    model, metrics, config = run.model, run.metrics, run.config
    name = loss_name(model.has_density)  # -ELBO, or the reconstruction NLL of a model without a density
    facts = [
        ("model", f"{config.model.name} ({config.model.net}, {config.model.likelihood} likelihood"
         + (", conditional" if run.conditional else "") + ")"),
        ("latents", model.spec.describe()),
        ("parameters", f"{sum(p.numel() for p in model.parameters()):,}"),
        ("data", f"{config.data.name} ({'x'.join(map(str, model.image_shape))}), binarize {config.data.binarize}"),
    ]  # fmt: skip
    if metrics:
        last = metrics[-1]
        minutes = sum(r.get("seconds", 0.0) for r in metrics) / 60
        facts.append(("trained", f"{int(last['epoch'])} epochs, {int(last['step']):,} steps, {minutes:.1f} min"))
        if "val_loss" in last:
            facts.append((f"val {name}", f"{last['val_loss']:.2f} nats per image (last epoch)"))
    test = evaluation.get("test", {})
    if "neg_elbo" in test:
        elbo = test["neg_elbo"]
        facts.append((f"test {name}", f"{elbo['mean']:.2f} ± {plus_minus(elbo['stderr'])} nats per image"))
    return facts


def _evaluation_html(evaluation: dict[str, Any], damaged: bool) -> str:
    if damaged:
        return (
            '<section id="evaluation"><h2>Evaluation</h2><p>This run\'s <code>eval.json</code> could not be read '
            "(damaged): run <code>vaelab eval RUN</code> again to rewrite it.</p></section>"
        )
    if not evaluation:
        return ""
    parts = ['<section id="evaluation"><h2>Evaluation</h2>']
    for split, results in evaluation.items():
        try:
            from ..evaluate.suite import report_lines

            text = "\n".join(report_lines(results))
        except Exception:  # an eval.json of another version: show it as it is
            text = json.dumps(results, indent=1)
        parts.append(f"<p>{html.escape(split)} split, from <code>eval.json</code> (<code>vaelab eval</code>):</p>")
        parts.append(f"<pre>{html.escape(text)}</pre>")
    parts.append("<details><summary>eval.json</summary>")
    parts.append(f"<pre>{html.escape(json.dumps(evaluation, indent=1))}</pre></details></section>")
    return "".join(parts)


def _metric_groups(columns: list[str]) -> list[tuple[str, list[str]]]:
    """The columns of metrics.csv (bar the epoch) in small groups, one table each, so each fits a phone."""
    train = [c for c in columns if c.startswith("train_")]
    val = [c for c in columns if c.startswith("val_")]
    time = [c for c in ("step", "seconds", "samples_per_s") if c in columns]
    counts = [c for c in ("skipped", "clipped") if c in columns]
    other = [c for c in columns if c not in {"epoch", *train, *val, *time, *counts}]
    groups = [("train: mean over the epoch's batches", train), ("val: after the epoch", val), ("time", time)]
    groups += [("settings", other), ("batches skipped (not finite), steps clipped", counts)]
    return [(title, group) for title, group in groups if group]


def _metrics_html(metrics: list[dict[str, float]]) -> str:
    if not metrics:
        return ""
    columns = list(dict.fromkeys(k for row in metrics for k in row))
    tables = []
    for title, group in _metric_groups(columns):
        shown = ["epoch", *group]
        names = [c.removeprefix("train_").removeprefix("val_").replace("_", " ") for c in shown]
        head = "".join(f"<th>{html.escape(name)}</th>" for name in names)
        rows = []
        for row in metrics:
            cells = [METRIC_FORMATS.get(c, "{:.2f}").format(row[c]) if c in row else "" for c in shown]
            rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        tables.append(
            f"<table><caption>{html.escape(title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return (
        '<section id="metrics"><h2>Metrics</h2><p>metrics.csv: one row per epoch; loss terms in nats per image.</p>'
        f'<div class="scroll">{"".join(tables)}</div></section>'
    )


def render_report(run: Run) -> str:
    """The HTML of a run's report, from the pictures that exist in its images/ folder."""
    evaluation = read_eval(run.path)
    damaged, evaluation = evaluation is None, evaluation or {}
    pictures = {key: run.images_dir / name for key, name in PICTURES.items() if (run.images_dir / name).is_file()}
    words = {}
    if "traversal" in pictures:  # which of the active dimensions its rows are, as report_traversal draws them
        rows = report_traversal(run).note
        words["traversal"] = f" {rows[0].upper()}{rows[1:]}."
    sections = [_evaluation_html(evaluation, damaged)]
    sections += [_figure(run, key, path, words.get(key, "")) for key, path in pictures.items()]
    sections += [_metrics_html(run.metrics)]
    sections.append(f'<section id="config"><h2>Config</h2><pre>{html.escape(run.config.to_yaml())}</pre></section>')
    links = [("evaluation", "evaluation")] * bool(evaluation or damaged) + [(k, TITLES[k].lower()) for k in pictures]
    links += [("metrics", "metrics")] * bool(run.metrics) + [("config", "config")]
    nav = " ".join(f'<a href="#{key}">{html.escape(text)}</a>' for key, text in links)
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in _facts(run, evaluation))
    name = html.escape(run.path.name)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>vaelab report: {name}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{name}</h1>\n<dl>{facts}</dl>\n<nav>{nav}</nav>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body>\n</html>\n"
    )


def write_report(run: Run, pictures: bool = True) -> Path:
    """Write ``report.html`` in the run folder (atomically); with ``pictures`` first (re)write the standard
    pictures (``write_run_pictures``), else embed the pictures as they are."""
    if pictures:
        write_run_pictures(run)
    path = run.path / REPORT_FILE
    atomic_write_text(path, render_report(run))
    return path
