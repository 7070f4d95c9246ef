"""The explorer page in Debian's headless Chromium (Playwright), over a real server with four runs side by side
(2-D VAE, 4-D VAE with a PCA map, conditional VAE, JointVAE): a slider changes the decoded image, a click on the
map moves the sliders, an uploaded PNG comes back reconstructed, the class and category selectors work, and the
console stays free of errors with no request leaving the server.

$VAELAB_EXPLORER_RUNS (run folders separated by spaces) runs the same test on those runs instead, and
$VAELAB_EXPLORER_SCREENSHOT saves the page there (docs/figures/explorer.png is made this way, see docs/explorer.md)."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from tests.test_report_browser import CHROMIUM, browser  # noqa: F401 (a fixture), and the skip when it is missing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; `make test` does it as root)"
    ),
]
PIXELS = """id => {
  const img = document.getElementById(id);
  if (!img || !img.complete || !img.naturalWidth) return null;
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data).join(",");
}"""
CHANGED = f"([id, before]) => {{ const now = ({PIXELS})(id); return now !== null && now !== before; }}"
SLIDERS = "() => Array.from(document.querySelectorAll('.slider input')).map(s => s.value).join(',')"


@pytest.fixture(scope="module")
def explorer_url(request):
    paths = os.environ.get("VAELAB_EXPLORER_RUNS", "").split()
    if not paths:
        yield request.getfixturevalue("live_explorer")
        return
    from vaelab.web import load_explorers
    from vaelab.web.server import BackgroundServer

    with BackgroundServer(load_explorers(paths)) as url:
        yield url


def drawn_digit() -> bytes:
    """A PNG of a white '0' on black, 64x64, as a user would upload."""
    yy, xx = np.mgrid[:64, :64] - 32
    ring = (np.hypot(yy / 1.4, xx) > 10) & (np.hypot(yy / 1.4, xx) < 16)
    buffer = io.BytesIO()
    Image.fromarray(np.where(ring, 255, 0).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def pixels(page, image_id: str) -> str:
    page.wait_for_function(f"() => ({PIXELS})('{image_id}') !== null")
    return page.evaluate(PIXELS, image_id)


def test_the_explorer_page_drives_the_models(explorer_url, browser, tmp_path):  # noqa: F811
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors, foreign = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda r: None if r.url.startswith((explorer_url, "data:", "blob:")) else foreign.append(r.url))
    page.goto(explorer_url + "/")
    page.wait_for_selector("body[data-ready=true]")
    runs = page.evaluate("fetch('/api/runs').then(r => r.json())")
    assert page.locator(".panel").count() == len(runs)
    assert page.locator(".slider input").count() == max(r["latent_dim"] for r in runs)

    # the page says how many dimensions of each run are active, as vaelab eval counts them, and folds away the
    # sliders of ranks active in no run
    summary = page.text_content("#active-summary")
    assert all(f"{r['name']}: {r['active_summary']}" in summary for r in runs), summary
    ranks = range(max(r["latent_dim"] for r in runs))
    folded = [k for k in ranks if not any(k < r["latent_dim"] and r["active"][r["order"][k]] for r in runs)]
    assert page.locator("#inactive-sliders .slider").count() == len(folded)

    # a slider moves: the decoded image of every run changes
    before = [pixels(page, f"decoded-{k}") for k in range(len(runs))]
    page.focus("#slider-0")
    page.keyboard.press("End")
    for k in range(len(runs)):
        page.wait_for_function(CHANGED, arg=[f"decoded-{k}", before[k]])

    # a click on the map decodes that position and sets the sliders
    sliders = page.evaluate(SLIDERS)
    box = page.locator("#map-0").bounding_box()
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.7 * box["height"])
    page.wait_for_function(f"before => ({SLIDERS})() !== before", arg=sliders)

    # an uploaded PNG is encoded, reconstructed and shown in every panel
    page.set_input_files("#upload", files=[{"name": "zero.png", "mimeType": "image/png", "buffer": drawn_digit()}])
    for k in range(len(runs)):
        page.wait_for_function(f"() => ({PIXELS})('reconstruction-{k}') !== null")
        assert "your image" in page.text_content(f"#input-caption-{k}")

    # conditional models: the class selector; JointVAE: a selector per categorical
    conditional = [k for k, r in enumerate(runs) if r["num_classes"]]
    if conditional:
        before = pixels(page, f"decoded-{conditional[0]}")
        page.select_option("#label", "3" if page.eval_on_selector("#label", "s => s.value") == "7" else "7")
        page.wait_for_function(CHANGED, arg=[f"decoded-{conditional[0]}", before])
    joint = [k for k, r in enumerate(runs) if r["discrete"]]
    if joint:
        before = pixels(page, f"decoded-{joint[0]}")
        current = page.eval_on_selector("#categoricals select", "s => s.value")
        page.select_option("#categoricals select", "1" if current == "0" else "0")
        page.wait_for_function(CHANGED, arg=[f"decoded-{joint[0]}", before])

    page.click("#interpolate")
    page.wait_for_function("() => ({PIXELS})('strip-0') !== null".replace("{PIXELS}", PIXELS))
    page.click("#thumbnails img >> nth=2")
    page.wait_for_function("() => document.getElementById('input-caption-0').textContent.includes('test image 2')")
    page.wait_for_timeout(300)  # the last decodes land
    page.screenshot(path=tmp_path / "explorer.png", full_page=True)
    if os.environ.get("VAELAB_EXPLORER_SCREENSHOT"):
        page.screenshot(path=os.environ["VAELAB_EXPLORER_SCREENSHOT"])
    assert "failed" not in page.text_content("#status")
    page.close()
    assert errors == []
    assert foreign == []


LEGEND = """k => Array.from(document.querySelectorAll(`#legend-${k} li`)).map(item => [item.textContent,
  getComputedStyle(item.querySelector(".swatch")).backgroundColor, item.getBoundingClientRect().height])"""


def test_each_latent_map_has_a_legend_of_its_label_colours(explorer_url, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(explorer_url + "/")
    page.wait_for_selector("body[data-ready=true]")
    maps = page.evaluate("fetch('/api/runs').then(r => r.json()).then(runs => Promise.all(runs.map((_, k) => "
                         "fetch(`/api/runs/${k}/map`).then(r => r.json()))))")  # fmt: skip
    for k, latent_map in enumerate(maps):
        legend = page.evaluate(LEGEND, k)
        labels = sorted(set(latent_map["labels"] or []))
        assert len(legend) == len(labels) and page.is_visible(f"#legend-{k}") == bool(labels)
        for c, (text, colour, height) in zip(labels, legend, strict=True):
            names = latent_map["class_names"]
            assert text == (f"{c} {names[c]}" if names and names[c] != str(c) else str(c)) and height > 0
            hex_colour = latent_map["colours"][c]
            assert colour == "rgb({}, {}, {})".format(*(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)))
    page.close()
