"""One definition of an active unit (``unit_activity``: Burda et al.'s variance of the posterior mean over the
eval's images > 0.01): eval, the traversal's --dims auto, the report's traversal and the explorer agree on it."""

import html
import re

import numpy as np
import pytest
import torch

from vaelab import load_run, train
from vaelab.evaluate.latents import evaluate_latents, split_activity
from vaelab.viz import traverse, write_report
from vaelab.viz.pictures import TRAVERSAL_ROWS
from vaelab.web.explorer import Explorer

pytestmark = pytest.mark.slow  # end to end: a trained run read by eval, pictures, report and explorer

D = 14
STRONG = [1.0 + 0.1 * j for j in range(11)]  # dims 0-10: clearly active, KL ~1-3 nats each
FAINT = 0.02  # dim 11: active (0.02 > 0.01), with ~0.01 nats of KL, the kind of unit definitions disagree on
# dims 12, 13: posterior mean constant, inactive


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A digits VAE whose encoder head is set so that the variance of each posterior mean over the test images
    is known: 11 strong units, one faint active unit, two inactive ones."""
    out = tmp_path_factory.mktemp("active")
    keys = ["data.name=digits", f"model.latent_dim={D}", "model.hidden=[32]", "train.epochs=1", "train.threads=1",
            "train.progress=never", "train.report=false", "train.frames=false", f"train.out_dir={out}",
            "train.name=active"]  # fmt: skip
    loaded = load_run(train(None, keys).path)
    head = loaded.model.encoder_head  # outputs (B, 2D): mu, then logvar
    targets = [*STRONG, FAINT, 0.0, 0.0]
    with torch.no_grad():
        head.weight[D:] = 0
        head.bias[:] = 0
        head.bias[D : D + 11] = -4.0  # strong units: narrow posteriors; the faint one keeps std 1 (KL ~ var / 2)
        head.weight[D - 2 : D] = 0  # inactive: the mean is 0 for every image
        variance = split_activity(loaded, "test").variance
        for j, target in enumerate(targets[: D - 2]):
            head.weight[j] *= (target / variance[j]) ** 0.5
    return loaded


def test_the_run_has_the_activity_it_was_built_with(run):
    activity = split_activity(run, "test")
    np.testing.assert_allclose(activity.variance, [*STRONG, FAINT, 0.0, 0.0], rtol=1e-4, atol=1e-9)
    assert activity.count == 12 and activity.kl[11] < 0.05 < activity.kl[:11].min()


def test_eval_traversal_report_and_explorer_agree_on_which_units_are_active(run):
    n_test = len(run.data.split("test")[0])
    criterion = f"variance of the posterior mean over the {n_test} test images > 0.01, Burda et al. 2016"

    latent = evaluate_latents(run, "test", probes=False)["latent"]  # what vaelab eval and train report
    assert (latent["active_units"], latent["dims"]) == (12, D)

    auto = traverse(run, "auto", steps=3)  # vaelab traverse --dims auto
    assert len(auto.names) == 12 and not any("inactive" in name for name in auto.names)
    assert auto.names[-1].startswith("z11 ")  # the faint unit: active, and last by KL
    assert auto.note == f"the rows are all 12 active dimensions of {D}, largest KL first ({criterion})"

    page = write_report(run).read_text()  # the report's traversal: at most TRAVERSAL_ROWS of them, and says so
    caption = re.search(r'<section id="traversal">.*?<figcaption>(.*?)</figcaption>', page, re.S)
    assert TRAVERSAL_ROWS == 10 and caption is not None, "the report shows the traversal"
    words = html.unescape(caption[1])
    assert f"The rows are the 10 active dimensions of largest KL, of 12 active of {D} ({criterion})." in words

    info = Explorer(run).info()  # the explorer's sliders: the inactive ones are folded away
    assert sum(info.active) == 12 and info.active[11] and not info.active[12] and not info.active[13]
    assert info.order[:12] == [int(name.split()[0][1:]) for name in auto.names]
    assert info.active_summary == f"12 of {D} dimensions active ({criterion})"
