"""Pictures of runs: prior draws with a temperature, traversals, interpolations, latent maps, curves, per-epoch
frames and GIFs, TensorBoard events and the HTML report. Runs are trained on sklearn's 8x8 digits."""

import re
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab import ConfigError, train
from vaelab.evaluate.latents import Latents, unit_activity
from vaelab.viz import (
    interpolate,
    interpolation_grid,
    kl_heatmap,
    latent_map,
    latent_points,
    manifold_grid,
    prior_latents,
    reconstructions,
    sample_grid,
    samples_by_label,
    save_png,
    sigma_curves,
    training_curves,
    traverse,
    write_report,
)
from vaelab.viz.curves import kl_heatmap_figure
from vaelab.viz.interpolate import lerp, slerp
from vaelab.viz.labels import FONT_SIZE
from vaelab.viz.latent_map import project
from vaelab.viz.latent_stats import read_latent_stats
from vaelab.viz.sampling import sample_images
from vaelab.viz.traverse import choose_dims, describe, rows_note, split_float, sweep

pytestmark = pytest.mark.slow  # end to end: pictures drawn from trained runs

TILE = 8 + 2  # an 8x8 digit and its 2-pixel border
BAND = FONT_SIZE + 8  # the white band of column headings above a labelled grid


def overrides(out_dir, name, *extra):
    return [
        "data.name=digits",
        "model.hidden=[32]",
        "train.batch_size=64",
        "train.epochs=4",
        "train.progress=never",
        f"train.out_dir={out_dir}",
        f"train.name={name}",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small trained run per kind of model, shared by the tests of this file."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    specs = {
        "vae2": ["model.latent_dim=2"],
        "vae4": ["model.latent_dim=4"],
        "ae": ["model.name=ae", "model.latent_dim=3"],
        "pca": ["model.name=pca", "model.latent_dim=3"],
        "joint": ["model.name=joint-vae", "model.latent_dim=2", "model.discrete=[3]", "model.cont_c_steps=50",
                  "model.disc_c_steps=50"],
        "cvae": ["model.latent_dim=3", "model.conditional=true"],
    }  # fmt: skip
    return {name: train(None, overrides(out, name, *extra)) for name, extra in specs.items()}


def assert_picture(array, shape=None):
    """A uint8 picture of the expected shape that is neither blank nor constant."""
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[-1] in (1, 3)
    if shape is not None:
        assert array.shape == shape
    assert array.std() > 5.0


def has_text(region):
    """Dark pixels on a white margin: something is written there."""
    return (np.asarray(region) < 128).sum() >= 5


def tiles(grid, rows, cols):
    """The (rows, cols) tiles of a grid of 8x8 images with 2-pixel borders, as (rows, cols, 8, 8) floats."""
    return np.stack([[grid[2 + r * TILE : r * TILE + TILE, 2 + c * TILE : c * TILE + TILE, 0] for c in range(cols)]
                     for r in range(rows)]).astype(float)  # fmt: skip


# -- prior draws and temperature -------------------------------------------------------------------------------


def test_sample_grid_has_the_right_size_and_is_not_blank(runs):
    assert_picture(sample_grid(runs["vae2"], n=16), shape=(4 * TILE + 2, 4 * TILE + 2, 1))


def test_temperature_one_reproduces_run_sample(runs):
    run = runs["vae4"]
    torch.testing.assert_close(sample_images(run, 8, seed=3), run.sample(8, seed=3), rtol=0, atol=0)


def test_temperature_zero_draws_the_prior_mean_every_time(runs):
    images = sample_images(runs["vae4"], 6, seed=0, temperature=0.0)
    assert torch.allclose(images, images[:1].expand_as(images))


def test_temperature_scales_the_spread_around_the_prior_mean(runs):
    model = runs["ae"].model
    mean, std = model.prior.moments()
    z1 = prior_latents(model, 4000, torch.Generator().manual_seed(0), temperature=1.0)
    z_half = prior_latents(model, 4000, torch.Generator().manual_seed(0), temperature=0.5)
    torch.testing.assert_close(z_half - mean, 0.5 * (z1 - mean), rtol=1e-4, atol=1e-5)
    assert torch.allclose(z1.std(0), std, rtol=0.1)


def test_standard_prior_is_n01_for_the_ae_and_the_same_draws_for_a_vae(runs):
    ae = runs["ae"].model
    z = prior_latents(ae, 4000, torch.Generator().manual_seed(0), prior="standard")
    assert z.mean(0).abs().max() < 0.1 and (z.std(0) - 1).abs().max() < 0.1
    assert not torch.allclose(z, prior_latents(ae, 4000, torch.Generator().manual_seed(0)))
    vae = runs["vae4"].model
    standard = prior_latents(vae, 10, torch.Generator().manual_seed(1), prior="standard")
    torch.testing.assert_close(standard, prior_latents(vae, 10, torch.Generator().manual_seed(1)))


def test_prior_temperature_leaves_discrete_codes_one_hot(runs):
    z = prior_latents(runs["joint"].model, 50, torch.Generator().manual_seed(0), temperature=0.3)
    codes = z[:, 2:]
    assert set(codes.unique().tolist()) == {0.0, 1.0} and (codes.sum(1) == 1).all()


def test_bad_prior_options_are_user_errors(runs):
    with pytest.raises(ConfigError, match="prior must be one of model, standard"):
        sample_grid(runs["vae2"], prior="uniform")
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        sample_grid(runs["vae2"], temperature=-1)


def test_reconstruction_temperature_draws_from_the_posterior(runs):
    run = runs["vae4"]
    at_mean = reconstructions(run, n=8).grid()
    assert_picture(at_mean, shape=(3 * TILE + 2, 8 * TILE + 2, 1))
    assert not np.array_equal(reconstructions(run, n=8, temperature=1.0).grid(), at_mean)
    ae = runs["ae"]  # a point posterior has nothing to draw
    assert np.array_equal(reconstructions(ae, n=8, temperature=1.0).grid(), reconstructions(ae, n=8).grid())


def test_reconstructions_show_the_grey_image_the_binarised_target_and_the_reconstruction(runs):
    run = runs["vae4"]  # digits, binarised dynamically: the model encodes and scores a binary draw of each image
    result = reconstructions(run, n=20, ncols=10)
    assert result.names == ["original (grey)", "target (binarised)", "reconstruction"] * 2
    grey = run.data.split("test")[0][:20].float() / 255
    torch.testing.assert_close(result.images[[0, 3]].flatten(0, 1), grey)  # the images as stored, not binary
    assert ((grey > 0) & (grey < 1)).float().mean() > 0.1
    target = split_float(run, "test", 20)[0]
    torch.testing.assert_close(result.images[[1, 4]].flatten(0, 1), target)  # the evaluation's draw, in {0, 1}
    assert set(target.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(result.images[[2, 5]].flatten(0, 1), run.decode(run.encode(target)))
    picture = result.labelled(scale=4)
    for row in range(3):  # each row's name is written on the left margin
        middle = (2 + row * TILE + TILE // 2) * 4
        assert has_text(picture[middle - 6 : middle + 6, : picture.shape[1] - result.grid().shape[1] * 4])


def test_without_dynamic_binarisation_the_stored_image_is_the_target(runs, monkeypatch):
    run = runs["vae4"]
    monkeypatch.setattr(run.data, "binarize", "none")
    result = reconstructions(run, n=4)
    assert result.names == ["original = target", "reconstruction"]
    torch.testing.assert_close(result.images[0], run.data.split("test")[0][:4].float() / 255)


def test_samples_by_label_name_each_row_by_its_class(runs):
    result = samples_by_label(runs["cvae"], n=5)
    assert result.images.shape == (10, 5, 1, 8, 8) and result.names == [str(c) for c in range(10)]
    assert_picture(result.grid())
    picture = result.labelled(scale=4)
    margin = picture[:, : picture.shape[1] - result.grid().shape[1] * 4]
    for row in range(10):
        middle = (2 + row * TILE + TILE // 2) * 4
        assert has_text(margin[middle - 6 : middle + 6]), row
    with pytest.raises(ConfigError, match="not a conditional model"):
        samples_by_label(runs["vae4"])


# -- traversals ------------------------------------------------------------------------------------------------


def test_traversal_steps_are_evenly_spaced_over_plus_minus_the_range():
    steps = sweep(3.0, 11)
    assert steps[0].item() == -3.0 and steps[-1].item() == 3.0 and abs(steps[5].item()) < 1e-6
    torch.testing.assert_close(steps.diff(), torch.full((10,), 0.6))
    assert sweep(2.5, 6).diff().allclose(torch.tensor(1.0))
    assert "11 evenly spaced values of the dimension from -3 to +3 prior std, 0.6 std apart" in describe()
    assert "in order of their KL to the prior, largest first" in describe()
    assert "the dimensions asked for, in that order" in describe(2.0, 5, ranked=False)


def test_a_traversal_decodes_the_stated_steps_and_heads_each_column_with_its_value(runs):
    run = runs["vae4"]
    result = traverse(run, dims=[1], steps=5, range_=2.0)
    assert result.columns == ["-2", "-1", "0", "1", "2"] and result.corner == "prior std:"
    mean, std = run.model.prior.moments()
    z = run.encode(split_float(run, "test", 1)[0]).repeat(5, 1)
    z[:, 1] = mean[1] + std[1] * torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    torch.testing.assert_close(result.images[0], run.decode(z), atol=1e-5, rtol=0)
    picture = result.labelled(scale=4)
    margin = picture.shape[1] - result.grid().shape[1] * 4
    for k in range(5):  # each heading sits above its column
        centre = margin + (2 + k * TILE + TILE // 2) * 4
        assert has_text(picture[:BAND, centre - 12 : centre + 12]), k


def test_auto_dims_are_the_active_ones_as_eval_counts_them_largest_kl_first():
    means = np.random.default_rng(0).standard_normal((4000, 5)) * np.sqrt([0.5, 1.0, 0.001, 0.3, 0.03])
    latents = Latents(means.astype(np.float32), means, np.array([0.5, 2.0, 0.001, 1.0, 0.02]), None)
    activity = unit_activity(latents, "test")
    assert activity.active.tolist() == [True, True, False, True, True]  # dim 4: variance 0.03, only 0.02 nats
    assert choose_dims("auto", activity, 5) == [1, 3, 0, 4]
    assert choose_dims("all", activity, 5) == [1, 3, 0, 4, 2]
    assert choose_dims("2,0", activity, 5) == [2, 0]
    with pytest.raises(ConfigError, match="z0..z4"):
        choose_dims("7", activity, 5)
    criterion = "(variance of the posterior mean over the 4000 test images > 0.01, Burda et al. 2016)"
    assert (
        rows_note(activity, [1, 3])
        == f"the rows are the 2 active dimensions of largest KL, of 4 active of 5 {criterion}"
    )
    assert rows_note(activity, [1, 3, 0, 4]).startswith("the rows are all 4 active dimensions of 5, largest KL first")
    assert rows_note(activity, [2, 0]).startswith("the rows are the 2 dimensions asked for, 1 of them active (4 of 5")
    one = unit_activity(Latents(means[:, :2].astype(np.float32), means[:, [2, 1]], np.array([0.0, 2.0]), None), "val")
    assert rows_note(one, choose_dims("auto", one, 2)).startswith("the rows are the one active dimension of 2 (")


def test_traversal_has_one_varying_row_per_dimension(runs):
    result = traverse(runs["vae4"], dims="all", steps=7)
    kls = [float(name.split("KL ")[1].split()[0]) for name in result.names]
    assert kls == sorted(kls, reverse=True) and len(kls) == 4
    grid = result.grid()
    assert_picture(grid, shape=(4 * TILE + 2, 7 * TILE + 2, 1))
    first = tiles(grid, 1, 7)[0]
    assert np.abs(first[0] - first[-1]).max() > 30  # the top dimension changes the image
    assert result.labelled(scale=3).shape[0] == 3 * grid.shape[0] + BAND


def test_traversal_fixes_the_other_dimensions_at_the_posterior_mean(runs):
    run = runs["vae4"]
    result = traverse(run, dims=[0], steps=3, range_=0.001)  # a tiny sweep around 0 ... of dimension 0 only
    z = run.encode(split_float(run, "test", 1)[0]).clone()  # the evaluation binarisation, as traverse uses
    z[0, 0] = 0.0
    torch.testing.assert_close(result.images[0, 1], run.decode(z)[0], atol=1e-5, rtol=0)


def test_traversal_rejects_an_image_outside_the_split(runs):
    with pytest.raises(ConfigError, match="--index 180 is out of range: the test split has 180 images"):
        traverse(runs["vae2"], index=180)


def test_joint_vae_traversal_shows_each_category(runs):
    result = traverse(runs["joint"], steps=5)
    assert result.names[-1] == "c0 (3 categories)"
    row = result.images[-1]
    assert len(row) == 5 and torch.all(row[3:] == 0.5)  # 3 categories, then grey padding
    assert_picture(result.grid())


def test_point_posteriors_and_conditional_models_traverse(runs):
    for name in ("ae", "pca", "cvae"):
        result = traverse(runs[name], steps=5)
        assert result.images.shape[1:] == (5, 1, 8, 8) and len(result.names) >= 1
        assert_picture(result.grid())


# -- interpolation ---------------------------------------------------------------------------------------------


def test_interpolation_starts_and_ends_at_the_reconstructions(runs):
    run = runs["vae4"]
    x = split_float(run, "test", 10)[0][[2, 9]]
    recon = run.decode(run.encode(x))
    for spherical in (False, True):
        images = interpolate(run, 2, 9, steps=6, spherical=spherical)
        assert images.shape == (8, 1, 8, 8)
        torch.testing.assert_close(images[[0, 7]], x)  # the images themselves at both ends
        torch.testing.assert_close(images[[1, 6]], recon, atol=1e-5, rtol=0)
    assert_picture(interpolation_grid(run, 2, 9, steps=6), shape=(TILE + 2, 8 * TILE + 2, 1))


def test_slerp_keeps_the_norm_where_lerp_cuts_through_the_middle():
    a, b, t = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(slerp(a, b, t).norm(dim=1), torch.ones(3))
    assert lerp(a, b, t)[1].norm().item() == pytest.approx(0.5**0.5)
    torch.testing.assert_close(slerp(a, 2 * a, t), lerp(a, 2 * a, t))  # parallel: linear


def test_interpolation_rejects_indices_outside_the_split(runs):
    with pytest.raises(ConfigError, match=r"both images must be in 0..179 \(the test split has 180\)"):
        interpolate(runs["vae2"], 0, 180)


def test_conditional_and_joint_models_interpolate(runs):
    for name in ("cvae", "joint"):
        assert_picture(interpolation_grid(runs[name], 0, 1, steps=4))


# -- latent maps -----------------------------------------------------------------------------------------------


def test_two_dimensional_latent_map_plots_the_means_themselves(runs):
    run = runs["vae2"]
    points = latent_points(run, n=50)
    assert points.method == "latents"
    np.testing.assert_allclose(points.points, run.encode(split_float(run, "test", 50)[0]).double().numpy(), atol=1e-5)
    assert_picture(latent_map(run))


def test_larger_latents_are_projected_by_pca_or_tsne(runs):
    assert latent_points(runs["vae4"]).method == "pca"
    tsne = latent_points(runs["vae4"], n=60, method="tsne")
    assert tsne.method == "tsne" and tsne.points.shape == (60, 2)
    assert_picture(latent_map(runs["vae4"], n=60, method="tsne"))


def test_codes_that_do_not_vary_are_projected_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        points, axes, method, _ = project(np.ones((20, 4)))
    assert method == "pca" and axes == ("PC1 (0% of variance)", "PC2 (0%)") and np.all(points == 0)


def test_manifold_grid_decodes_an_n_by_n_grid_of_prior_quantiles(runs):
    grid = manifold_grid(runs["vae2"], n=12).grid()
    assert_picture(grid, shape=(12 * 8, 12 * 8, 1))
    with pytest.raises(ConfigError, match="needs a 2-D latent space; this model has 4"):
        manifold_grid(runs["vae4"])
    assert_picture(manifold_grid(runs["joint"], n=5).grid())


def test_the_manifold_grid_has_axes_with_the_values_of_z0_and_z1(runs):
    result = manifold_grid(runs["vae2"], n=6)
    quantiles = torch.special.ndtri((torch.arange(6, dtype=torch.float64) + 0.5) / 6).tolist()
    assert [float(c) for c in result.columns] == pytest.approx(quantiles, abs=0.006)  # z0 rises to the right
    assert [float(name.removeprefix("z1 ")) for name in result.names] == pytest.approx(quantiles[::-1], abs=0.006)
    assert result.corner == "z0:"
    picture = result.labelled(scale=7)  # as in the report: 56 pixels a tile
    margin = picture.shape[1] - 6 * 8 * 7
    for k in range(6):
        centre = (k * 8 + 4) * 7
        assert has_text(picture[:BAND, margin + centre - 12 : margin + centre + 12]), f"column {k}"
        assert has_text(picture[BAND + centre - 6 : BAND + centre + 6, :margin]), f"row {k}"


# -- training: frames, GIF, latent statistics, curves ----------------------------------------------------------


def gif_frames(path):
    with Image.open(path) as image:
        return image.n_frames


def test_training_leaves_one_frame_per_epoch_and_a_gif(runs):
    run = runs["vae2"]
    frames = sorted(p.name for p in (run.images_dir / "frames").iterdir())
    assert frames == [f"{kind}-{e:04d}.png" for kind in ("epoch", "latent") for e in range(1, 5)]
    assert gif_frames(run.images_dir / "training.gif") == 4
    assert gif_frames(run.images_dir / "latent_map.gif") == 4  # 2-D latents: the latent map per epoch
    assert not (runs["vae4"].images_dir / "latent_map.gif").exists()
    first = np.asarray(Image.open(run.images_dir / "frames" / "epoch-0001.png"))
    assert first.ndim == 2 and first.shape[1] >= 200 and first.std() > 5


def test_frames_and_gif_survive_resume(tmp_path):
    part = train(None, overrides(tmp_path, "resumed", "model.latent_dim=2", "train.epochs=2", "train.report=false"))
    assert gif_frames(part.images_dir / "training.gif") == 2
    resumed = train(None, ["train.epochs=3"], resume=part.path)
    assert gif_frames(resumed.images_dir / "training.gif") == 3
    assert gif_frames(resumed.images_dir / "latent_map.gif") == 3
    assert [int(r["epoch"]) for r in read_latent_stats(resumed.path)] == [1, 2, 3]


def test_frames_can_be_turned_off(tmp_path):
    run = train(None, overrides(tmp_path, "no-frames", "train.epochs=1", "train.frames=false", "train.report=false"))
    assert not (run.images_dir / "frames").exists()
    assert not (run.images_dir / "training.gif").exists() and not (run.path / "latent_stats.csv").exists()
    assert not (run.path / "report.html").exists()


def test_latent_stats_hold_the_kl_of_each_dimension(runs):
    run = runs["vae4"]
    stats = read_latent_stats(run.path)
    assert [int(r["epoch"]) for r in stats] == [1, 2, 3, 4]
    kl = sum(stats[-1][f"kl_z{j}"] for j in range(4))
    assert kl == pytest.approx(run.metrics[-1]["val_kl"], rel=1e-4)  # all 162 validation images, analytic KL
    assert all(stats[-1][f"sigma_z{j}"] > 0 for j in range(4))
    assert "kl_c0" in read_latent_stats(runs["joint"].path)[-1]
    assert read_latent_stats(runs["ae"].path) == []  # point codes: no posterior statistics


def test_the_kl_heatmap_ticks_whole_epochs(runs):
    figure = kl_heatmap_figure(read_latent_stats(runs["vae4"].path))  # 4 epochs: matplotlib would tick 1.5, 2.5
    figure.canvas.draw()
    ax = figure.axes[0]
    low, high = ax.get_xlim()
    ticks = zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)
    assert [(t, label.get_text()) for t, label in ticks if low <= t <= high] == [(1, "1"), (2, "2"), (3, "3"), (4, "4")]


def test_curves_and_kl_heatmap_are_pictures(runs):
    run = runs["joint"]
    assert_picture(training_curves(run.metrics))
    assert_picture(kl_heatmap(read_latent_stats(run.path)))
    assert_picture(sigma_curves({"joint": read_latent_stats(run.path), "vae": read_latent_stats(runs["vae4"].path)}))
    assert_picture(training_curves(runs["pca"].metrics))  # a single epoch still draws


# -- report ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vae2", "vae4", "ae", "pca", "joint", "cvae"])
def test_every_model_gets_a_self_contained_report(runs, name):
    run = runs[name]
    text = (run.path / "report.html").read_text()
    outside_images = re.sub(r"data:image/(png|gif);base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"https?:|ftp:|//[a-z]|url\(|@import", outside_images, re.IGNORECASE), "an external URL"
    assert all(link.startswith("#") for link in re.findall(r'href="([^"]*)"', text))
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in sources)
    for picture in ("curves.png", "samples.png", "reconstructions.png", "traversal.png", "latent_map.png"):
        assert (run.images_dir / picture).is_file() and f"images/{picture}" in text
    assert "training.gif" in text and "<h2>Config</h2>" in text and "<h2>Metrics</h2>" in text
    assert ("manifold.png" in text) == (run.model.spec.continuous == 2)


def test_a_run_without_test_images_still_gets_its_pictures(tmp_path):
    run = train(None, overrides(tmp_path, "no-test", "data.test_fraction=0", "train.epochs=1"))
    assert len(run.data.test_x) == 0 and (run.path / "report.html").is_file()
    assert (run.images_dir / "traversal.png").is_file() and (run.images_dir / "latent_map.png").is_file()


def test_report_includes_eval_json_when_present(runs, tmp_path):
    from vaelab.evaluate import evaluate_run, write_eval

    run = runs["vae4"]
    write_eval(run, evaluate_run(run, "test", progress=False))
    text = write_report(run, pictures=False).read_text()
    assert '<section id="evaluation">' in text and "neg_elbo" in text and "test -ELBO" in text


def test_a_damaged_eval_json_is_named_in_the_report_and_rewritten_by_eval(runs):
    from vaelab.evaluate import evaluate_run, write_eval

    run = runs["vae4"]
    (run.path / "eval.json").write_text('{"test": {"neg_')  # e.g. a disk that filled up mid-write
    text = write_report(run, pictures=False).read_text()
    assert "eval.json</code> could not be read (damaged)" in text and "neg_elbo" not in text
    write_eval(run, evaluate_run(run, "test", progress=False))
    assert "neg_elbo" in write_report(run, pictures=False).read_text()


# -- TensorBoard -----------------------------------------------------------------------------------------------


def test_tensorboard_logs_scalars_and_frames(tmp_path):
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(None, overrides(tmp_path, "tb", "train.epochs=2", "train.tensorboard=true", "train.report=false"))
    events = EventAccumulator(str(run.path / "tensorboard")).Reload()
    assert {"loss/train", "kl/val", "recon/val", "run/seconds"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2]
    assert [e.step for e in events.Images("frames")] == [1, 2]


def test_missing_tensorboard_is_a_clear_error_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r"needs the tensorboard package.*pip install 'vaelab\[tensorboard\]'"):
        train(None, overrides(tmp_path, "no-tb", "train.tensorboard=true"))
    assert not (tmp_path / "no-tb").exists()


# -- the commands ----------------------------------------------------------------------------------------------


def test_picture_commands_write_pngs(runs, tmp_path, cli):
    run = runs["vae2"].path
    commands = {
        "traverse.png": ["traverse", run, "--dims", "auto", "--range", "2.5", "--steps", "9"],
        "interp.png": ["interpolate", run, "--pair", "3", "7", "--steps", "5", "--slerp"],
        "map.png": ["latent-map", run],
        "samples.png": ["sample", run, "-n", "16", "--temperature", "0.7", "--prior", "standard"],
        "recon.png": ["reconstruct", run, "-n", "8", "--temperature", "1"],
    }
    for name, args in commands.items():
        assert cli(*args, "-o", tmp_path / name)[0] == 0, name
        assert_picture(np.atleast_3d(np.asarray(Image.open(tmp_path / name))))
    assert (tmp_path / "map-manifold.png").is_file()
    assert cli("report", run)[0] == 0 and (run / "report.html").is_file()


def test_picture_commands_report_user_errors_in_one_line(runs, cli):
    code, err = cli("traverse", runs["vae4"].path, "--dims", "9")
    assert code == 2
    assert err.startswith("error: --dims [9]") and len(err.strip().splitlines()) == 1


def test_a_picture_path_must_end_in_png(tmp_path):
    with pytest.raises(ConfigError, match=r"s.jpg: the picture is a PNG image"):
        save_png(np.zeros((4, 4, 1), np.uint8), tmp_path / "s.jpg")
    assert not list(tmp_path.iterdir())


def test_the_gmm_sampler_draws_from_a_mixture_fitted_to_the_training_codes_and_keeps_it(tiny_overrides, cli):
    """`--prior gmm`: a 10-component full-covariance mixture fitted once to the training images' posterior means
    (kept in RUN/samplers/gmm.safetensors, read back on the next call), its draws decoded; its samples lie
    nearer the codes than an AE's N(0, I) draws do."""
    from vaelab import train
    from vaelab.evaluate.latents import STORED, encode_split
    from vaelab.samplers import GMM_FILE, fitted_gmm, gmm_latents

    run = train(None, tiny_overrides + ["model.name=ae", "train.epochs=3", "train.report=false"])
    gmm = fitted_gmm(run)
    assert (run.path / GMM_FILE).is_file() and gmm["means"].shape == (10, 3)
    codes = torch.from_numpy(encode_split(run.model, *run.data.split("train"), STORED).continuous_means).float()
    z = gmm_latents(run, 20_000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), codes.mean(0), atol=0.05 * codes.std(0).max().item(), rtol=0)
    torch.testing.assert_close(z.std(0), codes.std(0), rtol=0.1, atol=0)
    assert torch.equal(fitted_gmm(run)["means"], gmm["means"])  # read back, not refitted
    images = sample_images(run, 5, seed=1, prior="gmm")
    assert images.shape == (5, 1, 10, 10) and torch.equal(images, sample_images(run, 5, seed=1, prior="gmm"))
    code, err = cli("sample", run.path, "--sampler", "gmm", "-o", run.path / "gmm.png")
    assert code == 0, err
    assert_picture(np.asarray(Image.open(run.path / "gmm.png"))[..., None])


def test_the_two_stage_sampler_trains_a_second_vae_on_the_codes_and_keeps_it(tiny_overrides, monkeypatch):
    """`--sampler two-stage` (Dai & Wipf 2019): a VAE trained once on the training codes (kept in
    RUN/samplers/two-stage.safetensors; 600 steps here); its decoded draws have the codes' mean and spread to
    within a few tenths of their std, and the decoder's learned gamma fell below its starting 1."""
    import vaelab.samplers
    from vaelab import train
    from vaelab.samplers import TWO_STAGE_FILE, fitted_two_stage, training_codes, two_stage_latents

    monkeypatch.setattr(vaelab.samplers, "TWO_STAGE_STEPS", 600)
    run = train(None, tiny_overrides + ["model.name=ae", "train.epochs=3", "train.report=false"])
    stage = fitted_two_stage(run)
    assert (run.path / TWO_STAGE_FILE).is_file() and stage.log_gamma.item() < 0
    codes = training_codes(run).float()
    z = two_stage_latents(run, 5_000, torch.Generator().manual_seed(0))
    spread = codes.std(0)
    assert ((z.mean(0) - codes.mean(0)).abs() < 0.3 * spread).all()
    assert ((z.std(0) / spread - 1).abs() < 0.4).all()
    assert torch.equal(fitted_two_stage(run).log_gamma, stage.log_gamma)  # read back, not retrained
    images = sample_images(run, 4, seed=2, prior="two-stage")
    assert images.shape == (4, 1, 10, 10)
