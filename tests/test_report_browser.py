"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright, opens report.html with no
console errors, no network requests, every image loaded and no horizontal scrolling on a phone or a laptop, not
even inside the evaluation's text or the metrics' box."""

import os
import shutil

import pytest

from vaelab import train
from vaelab.evaluate import run_evaluation, write_eval
from vaelab.viz import write_report

CHROMIUM = os.environ.get("VAELAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1366, "height": 800}}

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; `make test` does it as root)"
    ),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """report.html of a small 2-D VAE with eval.json (its KL per dimension too): every kind of picture, both GIFs."""
    out = tmp_path_factory.mktemp("runs")
    keys = ["data.name=digits", "model.latent_dim=2", "model.hidden=[32]", "train.epochs=3", "train.batch_size=64"]
    run = train(None, [*keys, "train.progress=never", f"train.out_dir={out}", "train.name=browser"])
    write_eval(run, run_evaluation(run, "test", iw_samples=0, probes=False, fid=False))
    return write_report(run, pictures=False)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_report_opens_cleanly_in_headless_chromium(report, browser, device):
    page = browser.new_page(viewport=VIEWPORTS[device])
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    page.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert len(images) >= 8 and {alt for alt, _, _ in images} >= {"Training, epoch by epoch", "Manifold grid"}
    assert all(complete and width > 0 for _, complete, width in images), images
    assert widths[0] <= widths[1], f"the page scrolls sideways on a {device}: {widths}"


OVERFLOW = """() => Array.from(document.querySelectorAll("#evaluation pre, #metrics .scroll")).map(box => [
  box.textContent.slice(0, 40), box.scrollWidth, box.clientWidth,
  Math.max(...Array.from(box.children, c => c.getBoundingClientRect().right)) - box.getBoundingClientRect().right])"""


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_the_evaluation_text_and_the_metrics_fit_their_boxes(report, browser, device):
    page = browser.new_page(viewport=VIEWPORTS[device])
    page.goto(report.as_uri(), wait_until="load")
    boxes = page.evaluate(OVERFLOW)
    evaluation = page.text_content("#evaluation pre")
    tables = page.locator("#metrics table").count()
    page.close()
    assert len(boxes) == 3  # the evaluation's text, eval.json, the metrics tables
    for start, scroll_width, client_width, past_right in boxes:
        assert scroll_width <= client_width and past_right <= 1, f"{start!r} overflows its box on a {device}"
    assert "KL per dim (nats, largest first): z" in evaluation and tables >= 3  # the metrics in small tables
