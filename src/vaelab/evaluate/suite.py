"""One call for everything ``vaelab eval`` measures on a split, merged into the layout of eval.json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from ..errors import ConfigError, DataError
from ..models.config import ModelConfig
from ..run import Run
from .disentanglement import HEADLINE
from .factors import PROTOCOL_POINTS, evaluate_disentanglement
from .fid import evaluate_fid
from .latents import evaluate_latents
from .likelihood import evaluate_run, plus_minus


def run_evaluation(
    run: Run,
    split: str = "test",
    iw_samples: int = 1000,
    probes: bool = True,
    fid: bool = True,
    batch_size: int = 1024,
    log: Callable[[str], None] | None = None,
    precision: str = "fp32",
    disentanglement: bool = False,
    disentanglement_points: int = PROTOCOL_POINTS,
    samplers: tuple[str, ...] = ("gmm",),
) -> dict[str, Any]:
    """-ELBO and its terms, the IW-NLL with ``iw_samples`` samples (0: skipped; models without a density:
    None), KL per dimension and active units, the probes (``probes``), clustering of discrete latents, the
    Fréchet distance of prior samples and of the post-hoc ``samplers``' (``fid``; skipped with a note on
    unlabelled data) and, with
    ``disentanglement``, the disentanglement metrics against the dataset's factors (DataError without factors,
    raised before anything else is computed). ``precision`` (fp32, bf16, auto) applies to the IW-NLL, the one
    costly part."""
    if disentanglement:
        from ..data.sources import factor_source

        factor_source(run.config.data.name)  # fail now, not after minutes of other measurements
    results = evaluate_run(run, split, batch_size, iw_samples, precision=precision)
    results |= evaluate_latents(run, split, probes)
    if fid:
        try:
            results |= evaluate_fid(run, split, log=log, samplers=samplers)
        except DataError as err:
            results["fid"] = {"skipped": str(err)}
    if disentanglement:
        results |= evaluate_disentanglement(run, disentanglement_points, log=log)
    return results


def table_lines(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, ["-" * w for w in widths], *rows]]  # fmt: skip


def report_lines(results: dict[str, Any]) -> list[str]:
    """The readable form of ``run_evaluation``'s results: a table of the terms, then one line per diagnostic."""
    terms = ["neg_elbo", "recon", "kl", *[k for k in ("kl_cont", "kl_disc") if k in results]]
    rows = [[name, f"{results[name]['mean']:.2f}", plus_minus(results[name]["stderr"])] for name in terms]
    iw = results.get("iw_nll")
    if iw:
        rows.append([f"iw_nll (k={iw['k']})", f"{iw['mean']:.2f}", plus_minus(iw["stderr"])])
    lines = table_lines(rows, ["term (nats/image)", "mean", "stderr"])
    if not results.get("has_density", True):
        lines.append("no density: neg_elbo is the reconstruction NLL alone (kl = 0), not a bound on -log p(x)")
    if "iw_nll" in results and not iw:
        lines.append("iw_nll: not defined for this model (no posterior density)")
    elif iw:
        rate = iw["images_x_samples_per_s"]
        lines.append(f"iw_nll: {iw['seconds']:.1f} s, {rate:,.0f} images x samples per second, "
                     f"{iw.get('precision_reason', iw['precision'])}")  # fmt: skip
    latent = results.get("latent")
    if latent:
        lines.append(
            f"active units: {latent['active_units']} of {latent['dims']} "
            f"(variance over images of the posterior mean > {latent['active_threshold']})"
        )
        if latent["kl_per_dim"] is not None:
            kl = latent["kl_per_dim"]
            order = sorted(range(len(kl)), key=lambda j: -kl[j])
            lines.append("KL per dim (nats, largest first): " + " ".join(f"z{j}={kl[j]:.2f}" for j in order))
    codebook = results.get("codebook")
    if codebook:
        lines.append(
            f"codebook: {codebook['used']} of {codebook['size']} codes used, perplexity {codebook['perplexity']:.1f}"
        )
    probes = results.get("probes")
    if probes and "skipped" in probes:
        lines.append(f"probes: skipped ({probes['skipped']})")
    elif probes:
        lines.append(
            f"probes on the latent means: linear {probes['linear']:.4f}, kNN(k=5) {probes['knn']:.4f} "
            f"(fitted on {probes['n_train']} training images)"
        )
    for c in results.get("clustering", []):
        lines.append(
            f"clustering ({c['categories']} categories): accuracy {c['accuracy']:.4f} (Hungarian), "
            f"NMI {c['nmi']:.4f}, {c['clusters_used']} categories used"
        )
    fid = results.get("fid")
    if fid and "skipped" in fid:
        lines.append(f"Fréchet distance: skipped ({fid['skipped']})")
    elif fid:
        lines.append(
            f"Fréchet distance, small-classifier features (not Inception FID): samples {fid['samples']:.3f}"
            + "".join(f", {k[8:].replace('_', '-')} {v:.3f}" for k, v in fid.items() if k.startswith("samples_"))
            + f", training images {fid['train_images']:.3f} (reference), n={fid['n']}"
        )
    if "disentanglement" in results:
        lines += disentanglement_lines(results["disentanglement"])
    return lines


def disentanglement_lines(results: dict[str, Any]) -> list[str]:
    """The printed form of the ``disentanglement`` results: a table of the metrics, then the discrete latents."""
    factors = ", ".join(f"{name} {size}" for name, size in results["factors"].items())
    beta, fvae, dci, p = results["beta_vae"], results["factor_vae"], results["dci"], results["points"]
    rows = [
        ["beta-VAE score", f"{beta['score']:.3f}", f"train accuracy {beta['train_accuracy']:.3f}"],
        ["FactorVAE score", f"{fvae['score']:.3f}",
         f"train accuracy {fvae['train_accuracy']:.3f}, {fvae['active_dims']} dims kept"],
        ["MIG", f"{results['mig']['score']:.3f}", _per_factor(results, "mig")],
        ["SAP", f"{results['sap']['score']:.3f}", _per_factor(results, "sap")],
        ["DCI disentanglement", f"{dci['disentanglement']:.3f}", ""],
        ["DCI completeness", f"{dci['completeness']:.3f}", ""],
        ["DCI informativeness", f"{dci['informativeness']:.3f}",
         f"test accuracy (train {dci['informativeness_train']:.3f})"],
    ]  # fmt: skip
    lines = [f"disentanglement on {results['dataset']} ({factors}; {p} training / {p // 2} evaluation points)"]
    lines += table_lines(rows, ["metric", "score", "detail"])
    for d in results.get("discrete", []):
        lines.append(
            f"discrete latent {d['latent']} ({d['categories']} categories) vs {d['factor']} ({d['factor_values']} "
            f"values): I = {d['mutual_information']:.3f} nats ({d['fraction_of_entropy']:.1%} of H), "
            f"accuracy {d['accuracy']:.4f} (Hungarian), NMI {d['nmi']:.4f}"
        )
    seconds = sum(results[name]["seconds"] for name in HEADLINE)
    table = results.get("code_table")
    encoded = f" after encoding all {table['images']:,} grid images once ({table['seconds']:.0f} s)" if table else ""
    lines.append(f"disentanglement metrics: {seconds:.0f} s{encoded}")
    return lines


def _per_factor(results: dict[str, Any], metric: str) -> str:
    pairs = zip(results["factors"], results[metric]["per_factor"], strict=True)
    return "per factor: " + " ".join(f"{name}={value:.2f}" for name, value in pairs)


COLLAPSE_REMEDIES = (  # (key, a positive value that tells whether a model takes it, what it does)
    ("kl_warmup_fraction", 0.5, "KL warm-up"),
    ("free_bits", 0.5, "free bits"),
)


def collapse_remedies(config: ModelConfig) -> list[str]:
    """What a model of ``config`` can try against posterior collapse: each of ``COLLAPSE_REMEDIES`` whose key
    its config class has and validates at a positive value, then a smaller latent_dim (every model has it)."""
    keys = {f.name for f in fields(config)}
    remedies = []
    for key, value, what in COLLAPSE_REMEDIES:
        if key not in keys:
            continue
        try:
            replace(config, **{key: value}).validate()
        except ConfigError:
            continue  # the model refuses it (e.g. free bits with a flow posterior)
        remedies.append(f"{what} (model.{key})")
    return [*remedies, f"a smaller model.latent_dim (now {config.latent_dim})"]


def collapse_warning(results: dict[str, Any], config: ModelConfig) -> str | None:
    """A warning when fewer than an eighth of the latent units are active (posterior collapse), with the
    remedies the model of ``config`` takes."""
    latent = results.get("latent")
    if not latent or not latent["collapse_warning"]:
        return None
    *first, last = collapse_remedies(config)
    return (
        f"warning: posterior collapse: only {latent['active_units']} of {latent['dims']} latent units are active; "
        f"consider {', '.join(first)}{' or ' if first else ''}{last}"
    )
