"""The ``vaelab`` command: one entry point, a subcommand per task. User errors print one line and exit 2."""

from __future__ import annotations

import errno
import importlib
import math
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .config import MAX_SEED
from .errors import VaelabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Autoencoders from PCA to VAEs: train, evaluate and look at them.",
)
RunArg = Annotated[Path, typer.Argument(help="A run folder made by `vaelab train`, e.g. runs/vae-fashion-mnist-...")]


def _png_path(path: Path | None) -> Path | None:
    """save_png's check of the path, made when the option is read, before any work."""
    from .viz.grids import check_png_path

    if path is not None:
        try:
            check_png_path(path)
        except VaelabError as err:
            raise typer.BadParameter(str(err)) from None
    return path


def _samplers(names: str) -> tuple[str, ...]:
    """--samplers gmm,two-stage as a tuple, each checked."""
    from .samplers import POST_HOC

    chosen = tuple(n.strip() for n in names.split(",") if n.strip())
    unknown = [n for n in chosen if n not in POST_HOC]
    if unknown:
        raise typer.BadParameter(f"unknown sampler {unknown[0]!r}; choose from {', '.join(POST_HOC)}")
    return chosen


def _finite(value: float) -> float:
    """NaN passes min/max ranges (every comparison with it is false): refuse it, and infinities, here."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _seed(value: int) -> int:
    """--seed in 0..2^63-1 (torch's generators), checked here: click's own range would print all 19 digits of
    the maximum in the help, where they wrap mid-number."""
    if not 0 <= value <= MAX_SEED:
        raise typer.BadParameter(f"{value} is not in the range 0..2^63-1")
    return value


def _seed_option(help: str):
    """A --seed option: an integer in 0..2^63-1."""
    return typer.Option(metavar="0..2^63-1", callback=_seed, help=help)


def _temperature(help: str):
    """The --temperature option: T in [0, 10], finite."""
    return typer.Option(min=0.0, max=10.0, callback=_finite, help=help)


def _writing_into(run: Path, output: Path | None = None, always: bool = False):
    """The run folder's lock (vaelab.lock) when the command writes into it: ``always``, or when ``output`` is
    left to its default in the run or points inside it."""
    import contextlib

    from .lock import run_lock

    inside = output is None or output.resolve().is_relative_to(run.resolve())
    return run_lock(run) if always or inside else contextlib.nullcontext()


PngOutput = Annotated[
    Path | None,
    typer.Option("-o", "--output", callback=_png_path, help="PNG path; default a new RUN/images/adhoc/*.png"),
]


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False) -> None:
    """--debug is read from the arguments by ``main``, before typer parses them."""


@app.command()
def datasets(
    data_dir: Annotated[str | None, typer.Option(help="Folder with IDX files (also $VAELAB_DATA).")] = None,
) -> None:
    """List the datasets, whether they are available here, their sizes and where they were looked for."""
    from .data import available_datasets
    from .evaluate.suite import table_lines

    rows = []
    for info in available_datasets(data_dir):
        shape = "x".join(map(str, info.shape)) if info.shape else "-"
        counts = f"{info.n_train}/{info.n_test if info.n_test is not None else '-'}" if info.available else "-"
        rows.append([info.name, "yes" if info.available else "no", counts, shape, info.where])
    typer.echo("\n".join(table_lines(rows, ["dataset", "here", "train/test", "shape", "where"])))


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="One model: every key it takes, the common ones too.")] = None,
) -> None:
    """List the registered models with the config keys each adds, their defaults and meanings."""
    from .models import model_entry, registered_models
    from .models.config import ModelConfig
    from .settings import settings_of
    from .settings_listing import default_lines, own_settings, wrap

    entries = registered_models() if name is None else [model_entry(name)]
    if name is None:
        typer.echo("Keys every model takes (vaelab models NAME lists one model in full):")
        typer.echo("\n".join(default_lines([s for s in settings_of(ModelConfig(), "model.") if s.key != "model.name"])))
    for entry in entries:
        keys = own_settings(entry.config_cls) if name is None else settings_of(entry.config_cls(), "model.")
        typer.echo(("\n" if name is None else "") + "\n".join(wrap(entry.description, f"{entry.name}: ", "    ")))
        typer.echo("\n".join(default_lines(keys)) if keys else "  no keys of its own")


@app.command(name="config", context_settings={"ignore_unknown_options": True})
def show_config(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="A model name and/or config overrides key.sub=value ...")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config, e.g. configs/vae-mlp.yaml")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Dataset name (data.name), e.g. mnist-5k, npz:PATH")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the dataset's files (data.data_dir)")] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print docs/settings.md instead: every key of every model.")
    ] = False,
) -> None:
    """Print the config `vaelab train` would use with the same arguments: every key, its value and meaning."""
    from .config import load_config
    from .errors import ConfigError
    from .settings import settings_of
    from .settings_listing import reference_markdown, resolved_lines

    args = overrides or []
    if markdown:
        if args or config or data or data_dir:
            raise ConfigError("--markdown prints every key of every model: give it no config, model or overrides")
        typer.echo(reference_markdown(), nl=False)
        return
    names = [a for a in args if "=" not in a and "." not in a]
    if len(names) > 1:
        raise ConfigError(f"give one model name, not {len(names)} ({', '.join(names)}); overrides look like key=value")
    shortcuts = [f"data.name={data}"] * (data is not None) + [f"data.data_dir={data_dir}"] * (data_dir is not None)
    resolved = load_config(config, [f"model.name={n}" for n in names] + shortcuts + [a for a in args if a not in names])
    typer.echo(f"# the resolved config ({resolved.model.name}); [default X] marks a value other than the default")
    typer.echo("\n".join(resolved_lines(settings_of(resolved))))


@app.command(context_settings={"ignore_unknown_options": True})
def train(
    overrides: Annotated[list[str] | None, typer.Argument(help="Config overrides: key.sub=value ...")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config, e.g. configs/vae-mlp.yaml")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Dataset name (data.name), e.g. mnist-5k, npz:PATH")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the dataset's files (data.data_dir)")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this run folder from its newest checkpoint.")] = None,
    evaluate: Annotated[
        bool, typer.Option(help="Evaluate the test -ELBO and the active units (posterior collapse) when training ends.")
    ] = True,
) -> None:
    """Train a model; writes a run folder (config, weights, checkpoints, metrics, images, eval.json)."""
    import shlex

    from .errors import Interrupted
    from .lock import keep_locks

    shortcuts = [f"data.name={data}"] * (data is not None) + [f"data.data_dir={data_dir}"] * (data_dir is not None)
    try:
        with keep_locks():  # the run folder stays locked from training to its eval and report
            _train_and_report(config, shortcuts + (overrides or []), resume, evaluate)
    except Interrupted as err:
        _interrupt_notes.append(f"resume with: vaelab train --resume {shlex.quote(str(err.run_dir))}")
        raise


def _train_and_report(config: Path | None, overrides: list[str], resume: Path | None, evaluate: bool) -> None:
    from .checkpoint import CHECKPOINT_DIR
    from .evaluate import evaluate_run, write_eval
    from .evaluate.latents import evaluate_latents
    from .evaluate.likelihood import loss_name, plus_minus
    from .evaluate.suite import collapse_warning
    from .run import files_size
    from .training import train as run_training

    run = run_training(config, overrides, resume=resume)
    if run is None:  # a process other than rank 0 of a torchrun: rank 0 reports
        return
    typer.echo(f"run folder: {run.path}")
    if evaluate and len(run.data.test_x) == 0:
        typer.echo(
            f"no test images (data.test_fraction={run.config.data.test_fraction:g}, no official test split): test "
            f"evaluation skipped; measure another split with: vaelab eval {run.path} --split val",
            err=True,
        )
    elif evaluate:
        results = evaluate_run(run, "test") | evaluate_latents(run, "test", probes=False)
        write_eval(run, results)
        elbo, recon, kl = (results[k] for k in ("neg_elbo", "recon", "kl"))
        terms = f"recon {recon['mean']:.2f}, KL {kl['mean']:.2f}" if run.model.has_density else "no density"
        typer.echo(
            f"test {loss_name(run.model.has_density)}: {elbo['mean']:.2f} ± {plus_minus(elbo['stderr'])} nats per "
            f"image ({terms}; {results['n_images']} images)"
        )
        warning = collapse_warning(results, run.config.model)
        if warning:
            typer.echo(warning, err=True)
    for name in ("samples", "reconstructions"):
        typer.echo(f"{name}: {run.images_dir / (name + '.png')}")
    if run.config.train.report:
        from .viz import write_report

        typer.echo(f"report: {write_report(run, pictures=False)}")  # rewritten to include eval.json
    total, resumable = files_size(run.path) / 1e6, files_size(run.path / CHECKPOINT_DIR) / 1e6
    typer.echo(f"run folder size: {total:.2f} MB, of which {CHECKPOINT_DIR}/ (for --resume) {resumable:.2f} MB")


@app.command(name="eval")
def evaluate(
    run: RunArg,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    iw_samples: Annotated[
        int, typer.Option(min=0, help="Samples per image of the importance weighted NLL (Burda et al.: 5000); 0 skips.")
    ] = 1000,
    probes: Annotated[bool, typer.Option(help="Linear and kNN probes of the latent means.")] = True,
    fid: Annotated[bool, typer.Option(help="Fréchet distance of prior samples (small-classifier features).")] = True,
    samplers: Annotated[
        str, typer.Option(help="Post-hoc samplers whose samples' Fréchet distance is measured too: gmm, two-stage.")
    ] = "gmm",
    batch_size: Annotated[int, typer.Option(min=1)] = 1024,
    precision: Annotated[
        str, typer.Option(help="IW-NLL networks in fp32, bf16, or auto (bf16 where a probe finds it faster).")
    ] = "auto",
    device: Annotated[str, typer.Option(help="cpu, cuda, mps or auto (GPU paths untested).")] = "cpu",
    disentanglement: Annotated[
        bool,
        typer.Option(
            "--disentanglement", help="beta-VAE, FactorVAE, MIG, SAP and DCI scores against the factors (shapes data)."
        ),
    ] = False,
    disentanglement_points: Annotated[
        int, typer.Option(min=20, help="Training points of each metric (evaluation points: half); 10000 as published.")
    ] = 10_000,
) -> None:
    """-ELBO and its terms, IW-NLL, active units, probes, Fréchet distance, disentanglement; writes eval.json.

    All terms per image in nats; docs/evaluation.md and docs/metrics.md say what each number means."""
    from .devices import resolve_device
    from .evaluate import run_evaluation, write_eval
    from .evaluate.suite import collapse_warning, report_lines
    from .loop import set_threads
    from .run import load_run

    set_threads(0)
    with _writing_into(run, always=True):  # eval.json, and samplers fitted into RUN/samplers/
        loaded = load_run(run, resolve_device(device))
        log = lambda message: typer.echo(message, err=True)  # noqa: E731
        results = run_evaluation(
            loaded, split, iw_samples, probes, fid, batch_size, log=log, precision=precision,
            disentanglement=disentanglement, disentanglement_points=disentanglement_points,
            samplers=_samplers(samplers),
        )  # fmt: skip
        typer.echo(f"{loaded.path} on {split} ({results['n_images']} images, {results['likelihood']} likelihood)")
        for line in report_lines(results):  # printed before eval.json is written: kept if it cannot be
            typer.echo(line)
        warning = collapse_warning(results, loaded.config.model)
        if warning:
            typer.echo(warning, err=True)
        write_eval(loaded, results)
    typer.echo(f"written: {loaded.path / 'eval.json'}")


@app.command()
def consensus(
    runs: Annotated[
        list[Path], typer.Argument(help="Run folders of one config trained with different seeds (joint-vae).")
    ],
) -> None:
    """Keep, without labels, the restart whose discrete codes agree most with the others'.

    Agreement: the mean adjusted Rand index of the codes of the first run's training and validation images.

    Prints each run's agreement and the chosen run."""
    from .evaluate.agreement import code_agreement, recorded_accuracy
    from .evaluate.suite import table_lines
    from .loop import set_threads
    from .run import load_run

    set_threads(0)
    result = code_agreement([load_run(path) for path in runs])
    rows = []
    for i, (path, score) in enumerate(zip(result.paths, result.mean_ari, strict=True)):
        accuracy = recorded_accuracy(path)  # a labelled score, shown beside the choice, never used by it
        accuracy = "-" if accuracy is None else f"{accuracy:.3f}"
        rows.append([str(path), f"{score:.3f}", accuracy, "<- chosen" if i == result.chosen else ""])
    typer.echo(
        "\n".join(table_lines(rows, ["run", "mean ARI to the others", "test clustering accuracy (eval.json)", ""]))
    )
    chosen = result.paths[result.chosen]
    typer.echo(f"chosen: {chosen} ({result.n_images} training and validation images compared, no labels)")


@app.command()
def convert(
    source: Annotated[str, typer.Argument(help="A dataset name: fashion-mnist, mnist, npz:PATH, folder:PATH, ...")],
    destination: Annotated[Path, typer.Argument(help="The .npy file to write, e.g. data/fashion.npy")],
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the source's files.")] = None,
) -> None:
    """Write a dataset as uint8 .npy files that training streams from disk: data.name=npy:DESTINATION.

    The images in a seeded random order, the labels and the test split, read back with a bounded-memory shuffle."""
    from .data.sources import load_source
    from .data.stream import write_npy_dataset

    for path in write_npy_dataset(load_source(source, data_dir), destination):
        typer.echo(f"written: {path}")
    typer.echo(f"train on it with: vaelab train data.name=npy:{destination}")


@app.command()
def compare(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Config overrides for every trained model: key.sub=value ...")
    ] = None,
    data: Annotated[str, typer.Option(help="Dataset name, e.g. fashion-mnist, mnist-5k, digits, npz:PATH")] = (
        "fashion-mnist"
    ),
    models: Annotated[str, typer.Option(help="Comma-separated rows: registered models and fisher.")] = (
        "pca,ae,vae,fisher"
    ),
    latent_dim: Annotated[int, typer.Option(min=1, help="model.latent_dim of every model.")] = 16,
    epochs: Annotated[int, typer.Option(min=1, help="train.epochs of every neural model.")] = 10,
    iw_samples: Annotated[int, typer.Option(min=0, help="Samples per image of the IW-NLL; 0 skips it.")] = 1000,
    out: Annotated[Path | None, typer.Option(help="Output folder; default runs/compare-<data>-<time>.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the dataset's files.")] = None,
    seed: Annotated[int, _seed_option("Seed of every model and of the splits.")] = 0,
) -> None:
    """Fit several models on the same split and compare them: compare.md, compare.csv and compare.png."""
    import shlex
    from datetime import datetime

    from .evaluate.compare import compare_models, markdown_table
    from .loop import set_threads

    set_threads(0)
    safe_name = data.replace("/", "_").replace(":", "_")
    folder = out or Path("runs") / f"compare-{safe_name}-{datetime.now():%Y%m%d-%H%M%S}"
    command = shlex.join(
        ["vaelab", "compare", "--data", data, "--models", models, "--latent-dim", str(latent_dim), "--epochs",
         str(epochs), "--iw-samples", str(iw_samples), "--seed", str(seed)]
        + ["--data-dir", data_dir] * (data_dir is not None) + (overrides or [])
    )  # fmt: skip
    result = compare_models(
        data, [m.strip() for m in models.split(",") if m.strip()], folder, latent_dim, epochs, iw_samples,
        data_dir, seed, overrides or [], command,
    )  # fmt: skip
    typer.echo(markdown_table(result.rows), nl=False)
    typer.echo(f"{result.seconds:.0f} s; written: {folder / 'compare.md'}, compare.csv, compare.png")


@app.command()
def sample(
    run: RunArg,
    n: Annotated[int, typer.Option("-n", min=1, max=4096, help="Images (per class with --grid-by-label).")] = 64,
    output: PngOutput = None,
    seed: Annotated[int, _seed_option("Seed of the prior draws.")] = 0,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Upscale pixels by this factor.")] = 2,
    label: Annotated[int | None, typer.Option(help="Conditional models: draw this class.")] = None,
    grid_by_label: Annotated[
        bool, typer.Option("--grid-by-label", help="Conditional models: one row per class, named on its left.")
    ] = False,
    temperature: Annotated[
        float, _temperature("Scale the prior's std: z = mean + T * std * eps (0: the prior mean).")
    ] = 1.0,
    prior: Annotated[
        str,
        typer.Option(
            "--prior",
            "--sampler",
            help="model: the model's prior (AE, PCA: a Gaussian fit to their codes); standard: N(0, I); gmm or "
            "two-stage: a Gaussian mixture or a second VAE fitted to the training codes (kept in RUN/samplers/)",
        ),
    ] = "model",
) -> None:
    """Draw images from the model's prior into a grid PNG."""
    from .run import load_run
    from .viz import sample_grid, samples_by_label, save_png
    from .viz.pictures import adhoc_path

    with _writing_into(run, output, always=prior in ("gmm", "two-stage")):  # fitted samplers go in RUN/samplers/
        loaded = load_run(run)
        path = output or adhoc_path(loaded, "samples")
        if grid_by_label:
            path = save_png(samples_by_label(loaded, n, seed, temperature, prior).labelled(scale), path)
        else:
            path = save_png(sample_grid(loaded, n, seed, temperature, prior, label), path, scale)
        typer.echo(f"written: {path}")


@app.command()
def reconstruct(
    run: RunArg,
    n: Annotated[int, typer.Option("-n", min=1, max=1024, help="How many images.")] = 32,
    output: PngOutput = None,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    scale: Annotated[int, typer.Option(min=1, max=16)] = 2,
    temperature: Annotated[
        float, _temperature("0: the posterior mean; T > 0: a posterior draw, its std scaled by T.")
    ] = 0.0,
    seed: Annotated[int, _seed_option("Seed of the posterior draws (with --temperature).")] = 0,
) -> None:
    """The first n images of a split in named rows: the image (grey), its target and the reconstruction.

    The target is the binarised draw the model saw when data.binarize=dynamic, otherwise the image itself."""
    from .errors import ConfigError
    from .run import load_run
    from .viz import reconstructions, save_png
    from .viz.pictures import adhoc_path

    with _writing_into(run, output):
        loaded = load_run(run)
        if split not in ("train", "val", "test"):
            raise ConfigError(f"--split must be train, val or test; got {split!r}")
        rows = reconstructions(loaded, n, split, temperature, seed)
        path = save_png(rows.labelled(scale), output or adhoc_path(loaded, "reconstructions"))
        typer.echo(f"written: {path}")


@app.command()
def traverse(
    run: RunArg,
    dims: Annotated[
        str,
        typer.Option(help="auto (the active dimensions as vaelab eval counts them, largest KL first), all, or 0,3,5."),
    ] = "auto",
    range_: Annotated[
        float,
        typer.Option("--range", min=0.1, max=10.0, callback=_finite, help="Sweep from - to + this many prior std."),
    ] = 3.0,
    steps: Annotated[int, typer.Option(min=2, max=64, help="Images per row, evenly spaced over the range.")] = 11,
    index: Annotated[int, typer.Option(min=0, help="The image (of --split) whose posterior mean fixes the rest.")] = 0,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    output: PngOutput = None,
    scale: Annotated[int, typer.Option(min=1, max=16)] = 2,
) -> None:
    """One row per latent dimension, swept over evenly spaced values (JointVAE: a row per categorical too)."""
    from .run import load_run
    from .viz import save_png, traverse
    from .viz.pictures import adhoc_path
    from .viz.traverse import describe

    with _writing_into(run, output):
        loaded = load_run(run)
        result = traverse(loaded, dims, range_, steps, index, split)
        path = save_png(result.labelled(scale), output or adhoc_path(loaded, "traversal"))
        typer.echo(describe(range_, steps, ranked=dims in ("auto", "all")))
        typer.echo(f"rows: {', '.join(result.names)}")
        typer.echo(result.note)
        typer.echo(f"written: {path}")


@app.command()
def interpolate(
    run: RunArg,
    pair: Annotated[tuple[int, int], typer.Option(help="Indices I J of two images of --split.")],
    steps: Annotated[int, typer.Option(min=2, max=64, help="Decoded points from I to J, both included.")] = 10,
    slerp: Annotated[bool, typer.Option("--slerp", help="Spherical instead of linear interpolation.")] = False,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    output: PngOutput = None,
    scale: Annotated[int, typer.Option(min=1, max=16)] = 2,
) -> None:
    """Image I, the decoded path between the posterior means of I and J, image J: one row."""
    from .run import load_run
    from .viz import interpolation_grid, save_png
    from .viz.pictures import adhoc_path

    with _writing_into(run, output):
        loaded = load_run(run)
        grid = interpolation_grid(loaded, pair[0], pair[1], steps, slerp, split)
        path = save_png(grid, output or adhoc_path(loaded, "interpolation"), scale)
        typer.echo(f"written: {path}")


@app.command(name="latent-map")
def latent_map_command(
    run: RunArg,
    tsne: Annotated[
        bool, typer.Option("--tsne", help="t-SNE instead of PCA for latents of more than 2 dimensions.")
    ] = False,
    n: Annotated[int, typer.Option("-n", min=10, max=20000, help="Images of --split to place.")] = 2000,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    grid_size: Annotated[int, typer.Option(min=2, max=64, help="Manifold grid: n x n images (2-D latents).")] = 20,
    output: PngOutput = None,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Upscaling of the manifold grid.")] = 2,
) -> None:
    """Posterior means coloured by label (2-D latents directly, else PCA or t-SNE).

    For 2-D latents also the manifold grid (decoded prior quantiles), written next to the map as *-manifold.png."""
    from .run import load_run
    from .viz import latent_map, manifold_grid, save_png
    from .viz.pictures import adhoc_path

    with _writing_into(run, output):
        loaded = load_run(run)
        picture = latent_map(loaded, split, n, "tsne" if tsne else "auto")
        path = save_png(picture, output or adhoc_path(loaded, "latent_map"))
        typer.echo(f"written: {path}")
        if loaded.model.spec.continuous == 2:
            manifold = path.with_name(f"{path.stem}-manifold.png")
            typer.echo(f"written: {save_png(manifold_grid(loaded, grid_size).labelled(scale), manifold)}")


@app.command()
def report(run: RunArg) -> None:
    """Write RUN/report.html: one self-contained page (config, metrics, eval.json, curves, pictures, GIFs)."""
    from .loop import set_threads
    from .run import load_run
    from .viz import write_report

    set_threads(0)
    with _writing_into(run, always=True):
        typer.echo(f"written: {write_report(load_run(run))}")


@app.command()
def serve(
    runs: Annotated[list[Path], typer.Argument(help="One or more run folders; several are shown side by side.")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on; other than 127.0.0.1 exposes the explorer.")] = (
        "127.0.0.1"
    ),
    allow_host: Annotated[
        list[str] | None,
        typer.Option(help="Also answer requests for this host name (e.g. a proxy's); repeatable."),
    ] = None,
) -> None:
    """The latent explorer: a local web page with sliders, the latent map, interpolations and your own images."""
    import torch

    from .web import serve as run_server

    torch.set_num_threads(1)  # one image per request: a single thread is fastest and leaves cores to others

    def log(message: str) -> None:
        typer.echo(message, err=message.startswith("warning"))

    run_server(runs, host, port, log=log, extra_hosts=allow_host or [])


@app.command()
def export(
    run: RunArg,
    format: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript")] = "onnx",
    part: Annotated[str, typer.Option(help="decoder, encoder or both")] = "decoder",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Folder; default RUN/export/")] = None,
    check: Annotated[
        bool, typer.Option(help="Run each ONNX file with onnxruntime against the model (if installed; else say so).")
    ] = True,
) -> None:
    """Export the decoder and/or encoder as ONNX or TorchScript, with the model's metadata in each file.

    Inputs and outputs are listed in docs/api.md; images are floats in [0, 1]."""
    import importlib.util

    from .export import check_onnx, export_run, read_metadata
    from .run import load_run

    with _writing_into(run, output):
        paths = export_run(run, output, format, part)
    checkable = check and format == "onnx"
    if checkable and importlib.util.find_spec("onnxruntime") is None:
        typer.echo("not checked: onnxruntime is not installed (pip install 'vaelab[export]')", err=True)
        checkable = False
    model = load_run(run).model if checkable else None
    for path in paths:
        meta = read_metadata(path)
        typer.echo(f"written: {path}  ({_shapes(meta['inputs'])} -> {_shapes(meta['outputs'])})")
        if model is not None:
            typer.echo(f"  onnxruntime gives vaelab's outputs to {check_onnx(path, model):.1e} (max abs difference)")


def _shapes(tensors: dict[str, list[int | None]]) -> str:
    """``{"z": [None, 16]}`` -> ``z (N, 16)``."""
    return ", ".join(
        f"{name} ({', '.join('N' if d is None else str(d) for d in dims)})" for name, dims in tensors.items()
    )


PATH_ERRORS = {  # an OSError with these, on a file name, is the user's path (e.g. -o into a read-only folder)
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}


_interrupt_notes: list[str] = []  # what an interrupted command adds to the "interrupted" line


def _fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit 2."""
    typer.echo("error: " + "; ".join(line.strip() for line in message.splitlines() if line.strip()), err=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors (bad options, bad input, a path that cannot be read or written) print
    ``error: ...`` in one line and exit 2 (tracebacks with --debug)."""
    click = getattr(typer, "_click", None) or importlib.import_module("click")  # typer >= 0.22 has its own copy
    help_only = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2
    args = sys.argv[1:] if argv is None else argv
    _interrupt_notes.clear()
    try:
        code = app(args=args, prog_name="vaelab", standalone_mode=False)
    except help_only as err:  # `vaelab` alone: the help (typer's rich help is printed as the error is made)
        if err.format_message():
            typer.echo(err.format_message())
        sys.exit(2)
    except click.exceptions.UsageError as err:  # a bad option or argument: click's message and where the help is
        command = err.ctx.command_path if err.ctx is not None else "vaelab"
        _fail(f"{err.format_message()} (see {command} --help)")
    except VaelabError as err:
        if "--debug" in args:
            raise
        _fail(str(err))
    except OSError as err:
        if "--debug" in args:
            raise
        if err.errno in (errno.ENOSPC, errno.EDQUOT):  # every writer removes its temporaries (checkpoint.py)
            where = f" of {err.filename}" if err.filename else ""
            _fail(f"no space left on the device{where}: free some and run again (earlier files are whole)")
        if err.filename is None or err.errno not in PATH_ERRORS:
            raise
        _fail(f"cannot use {err.filename}: {err.strerror}; check the path and its permissions")
    except (typer.Abort, KeyboardInterrupt):  # Ctrl+C (typer >= 0.22 returns 130 instead)
        code = 130
    if code == 130:
        typer.echo("; ".join(["interrupted", *_interrupt_notes]), err=True)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
